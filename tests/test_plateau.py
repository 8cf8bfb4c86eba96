"""The plateau detector: when it warns, what it suggests, its log line both ways, a real run."""

from __future__ import annotations

import pytest

import train_googlenet
from pyimagesearch.config import ConfigError
from pyimagesearch.reporting.page import render
from pyimagesearch.reporting.run_data import collect
from pyimagesearch.settings import validate
from pyimagesearch.training.plateau import (
    PlateauDetector,
    PlateauSettings,
    format_plateau_line,
    parse_plateau_lines,
    plateau_settings,
)


def warnings_of(detector: PlateauDetector, values, lrs=None, key="accuracy"):
    """(epoch, details) of every warning over epochs 0.. with these metric values."""
    lrs = lrs or [0.01] * len(values)
    found = []
    for epoch, (value, lr) in enumerate(zip(values, lrs)):
        details = detector.observe(epoch, {key: value}, lr)
        if details is not None:
            found.append((epoch, details))
    return found


def test_settings_come_from_the_config_with_defaults():
    config = validate({}, "test-config")
    assert plateau_settings(config) == PlateauSettings("rank1", 0.005, 5)
    assert plateau_settings(config.replace(PLATEAU={"patience": 2})) == \
        PlateauSettings("rank1", 0.005, 2)
    assert plateau_settings(config.replace(PLATEAU=None)) is None
    for bad in ({"metric": "rank-1"}, {"patience": 0}, {"min_delta": -1}, {"patient": 3}):
        with pytest.raises(ConfigError, match="PLATEAU"):
            config.replace(PLATEAU=bad)


def test_warns_after_patience_epochs_without_a_real_improvement():
    detector = PlateauDetector(PlateauSettings("rank1", min_delta=0.01, patience=3),
                               resume_command=lambda epoch, lr: f"RESUME {epoch} {lr:g}")
    # Epoch 2 is the best; 3..5 improve by less than min_delta; then again every 3 epochs.
    found = warnings_of(detector, [0.30, 0.40, 0.50, 0.505, 0.509, 0.50, 0.50, 0.50, 0.50])
    assert [epoch for epoch, _ in found] == [5, 8]
    details = found[0][1]
    assert "validation rank-1 50.00% has not improved by 0.01" in details
    assert "50.00% at epoch 2, for 3 epochs at learning rate 0.01" in details
    assert details.endswith("resume from checkpoint 6: RESUME 6 0.001")


def test_a_rate_change_gets_patience_epochs_and_loss_must_fall():
    detector = PlateauDetector(PlateauSettings("loss", min_delta=0.1, patience=2))
    found = warnings_of(detector, [2.0, 1.5, 1.45, 1.5, 1.48, 1.47, 1.46], key="cross-entropy",
                        lrs=[1e-2] * 3 + [1e-3] * 4)
    # One stalled epoch (2) at 1e-2; the drop at epoch 3 restarts the count, so the
    # warning comes after epochs 3 and 4 at 1e-3, and again two epochs later.
    assert [epoch for epoch, _ in found] == [4, 6]
    assert "--start-epoch 5 --lr 0.0001" in found[0][1]
    assert "learning rate 0.001" in found[0][1]


def test_replay_takes_earlier_epochs_silently_and_later_records_win():
    detector = PlateauDetector(PlateauSettings("rank1", min_delta=0.01, patience=2))
    records = [{"epoch": 0, "lr": 0.1, "val": {"accuracy": 0.2}},
               {"epoch": 1, "lr": 0.1, "val": {"accuracy": 0.9}},   # replaced below
               {"epoch": 1, "lr": 0.1, "val": {"accuracy": 0.2}},   # a restart's epoch 1
               {"epoch": 2, "lr": 0.1, "val": {"accuracy": 0.2}}]
    detector.replay(records)
    assert (detector.best, detector.best_epoch) == (0.2, 0)
    details = detector.observe(3, {"accuracy": 0.2}, 0.1)
    assert details is None  # epochs 1..3 stalled, the warning was epoch 2's (replayed)
    assert detector.observe(4, {"accuracy": 0.2}, 0.1) is not None


def test_log_lines_round_trip(tmp_path):
    path = tmp_path / "training_0.log"
    lines = [format_plateau_line(12, "validation rank-1 40.00% has not improved"),
             "Epoch[12] Validation-accuracy=0.400000",
             "INFO:root:" + format_plateau_line(13, "again")]
    path.write_text("\n".join(lines) + "\n")
    assert lines[0] == "Epoch[12]\tWarning: plateau: validation rank-1 40.00% has not improved"
    assert [(w.epoch, w.details) for w in parse_plateau_lines(path)] == \
        [(12, "validation rank-1 40.00% has not improved"), (13, "again")]


def test_a_rate_too_small_to_learn_is_reported_with_the_resume_command(tiny_dataset_config,
                                                                       tmp_path):
    config = tmp_path / "stalled.py"
    config.write_text(tiny_dataset_config.read_text() + (
        "BATCH_SIZE = 8\nHEALTH = None\n"
        "RECIPE = {'base': 'book-googlenet-adam', 'name': 'too-small', 'num_epochs': 3, "
        "'base_lr': 1e-9, 'schedule': {'kind': 'constant'}}\n"
        "PLATEAU = {'patience': 2, 'min_delta': 0.05}\n"))
    out = tmp_path / "run"
    common = ["--config", str(config), "--checkpoints", str(out), "--prefix", "net"]
    assert train_googlenet.main([*common, "--end-epoch", "2"]) == 0
    first = (out / "training_0.log").read_text()
    assert "Plateau detector: warns when validation rank-1 has not improved by 0.05 for 2 " \
           "epochs" in first
    assert parse_plateau_lines(out / "training_0.log") == []  # epoch 1: one stalled epoch
    # The resumed start reads epochs 0 and 1 back: epoch 2 is the second stalled one.
    assert train_googlenet.main([*common, "--start-epoch", "2"]) == 0
    (warning,) = parse_plateau_lines(out / "training_2.log")
    assert warning.epoch == 2
    assert "for 2 epochs at learning rate 1e-09" in warning.details
    assert warning.details.endswith(
        f"--config {config} --checkpoints {out} --prefix net --start-epoch 3 --lr 1e-10")

    page = render(collect(out, "net"), {})
    assert "Plateau detector: warns when validation rank-1" in page
    assert "Validation stopped improving, first reported at epoch 2" in page
