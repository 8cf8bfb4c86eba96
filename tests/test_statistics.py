"""Statistics over runs and the run overlay plot, on synthetic run folders (no training)."""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pytest

from pyimagesearch.commands.cifar_stats import main as stats_main
from pyimagesearch.commands.plot_log import main as plot_main
from pyimagesearch.evaluation.statistics import (
    Summary,
    collect_setting,
    find_runs,
    format_setting,
    format_table,
    last_k_errors,
    published,
)
from pyimagesearch.reporting.plots import band_limits, plot_runs
from pyimagesearch.run.logs import TrainingLog, append_metrics, stitch_logs
from pyimagesearch.run.paths import log_path

METRICS = {"accuracy": 0.5, "top_k_accuracy_5": 0.9, "cross-entropy": 1.0}


def fake_run(folder, prefix, seed, val_accuracies, test_accuracy=None, depth=20,
             variant="original", shortcut="A"):
    """A run folder as train_cifar.py leaves it: metrics JSONL, a last checkpoint (the
    manifest and placeholder files) and, optionally, its saved test result."""
    folder.mkdir(parents=True)
    for epoch, accuracy in enumerate(val_accuracies):
        append_metrics(folder / f"{prefix}-metrics.jsonl",
                       {"epoch": epoch, "start_epoch": 0, "run": "r",
                        "train": METRICS, "val": {**METRICS, "accuracy": accuracy}})
    last = len(val_accuracies)
    files = {"symbol": f"{prefix}-symbol.json", "params": f"{prefix}-{last:04d}.params",
             "states": f"{prefix}-{last:04d}.states"}
    for name in files.values():
        (folder / name).write_bytes(b"")
    (folder / f"{prefix}-{last:04d}.json").write_text(json.dumps({
        "epoch": last, "seed": seed, "recipe": {"name": "paper-cifar-resnet"},
        "files": {kind: {"file": name, "bytes": 0, "sha256": hashlib.sha256().hexdigest()}
                  for kind, name in files.items()},
        "identity": {"model_params": {"depth": depth, "num_classes": 10,
                                      "shortcut": shortcut, "variant": variant}}}))
    if test_accuracy is not None:
        (folder / f"{prefix}-{last:04d}-test.json").write_text(json.dumps(
            {"accuracy": test_accuracy, "images": 10000}))


@pytest.fixture
def setting(tmp_path):
    root = tmp_path / "resnet20"
    tests = [0.9100, 0.9150, 0.9200]
    for k, test in enumerate(tests):
        fake_run(root / f"seed{k + 1}", "r", k + 1, [0.80, 0.85, 0.90, 0.91 - 0.01 * k, 0.92],
                 test)
    return root, [100 * (1 - t) for t in tests]


def test_summary_is_mean_sample_std_median_min_max():
    s = Summary.of([9.0, 8.0, 8.5, math.nan, None])
    assert (s.n, s.mean, s.median, s.min, s.max) == (3, 8.5, 8.5, 8.0, 9.0)
    assert s.std == pytest.approx(0.5)  # n - 1, as the paper's 6.61 ± 0.16
    assert math.isnan(Summary.of([7.0]).std) and Summary.of([]).n == 0


def test_last_k_takes_the_last_epochs_trained():
    errors = {0: 20.0, 1: 15.0, 2: 9.0, 3: 8.0}
    assert last_k_errors(errors, 2) == [9.0, 8.0]
    assert last_k_errors(errors, 10) == [20.0, 15.0, 9.0, 8.0]


def test_collect_setting_reads_every_run(setting):
    root, errors = setting
    result = collect_setting(root, "r", k=3, evaluate_missing=False)
    assert [r.seed for r in result.runs] == [1, 2, 3]
    assert [r.last_epoch for r in result.runs] == [5, 5, 5]
    assert [r.test_error for r in result.runs] == pytest.approx(errors)
    assert result.test.mean == pytest.approx(np.mean(errors))
    assert result.test.std == pytest.approx(np.std(errors, ddof=1))
    assert result.test.median == pytest.approx(np.median(errors))
    run = result.runs[2]  # val errors of the last 3 epochs: 10, 11, 8
    assert run.last_k.mean == pytest.approx(np.mean([10.0, 11.0, 8.0]))
    assert (run.last_k.min, run.last_k.max) == pytest.approx((8.0, 11.0))
    assert result.model_params["depth"] == 20 and result.recipe == "paper-cifar-resnet"
    text = format_setting(result, 3)
    assert "final test error over 3 run(s): 8.50 ± 0.50 %" in text
    assert "median 8.50, min 8.00, max 9.00" in text
    assert "within the last 3 epochs of a run: up to 3.00 points" in text


def test_find_runs_orders_seed_folders_numerically_and_accepts_one_run(setting, tmp_path):
    root, _ = setting
    fake_run(root / "seed10", "r", 10, [0.9], 0.9)
    assert [p.name for p in find_runs(root, "r")] == ["seed1", "seed2", "seed3", "seed10"]
    assert find_runs(root / "seed2", "r") == [root / "seed2"]
    (tmp_path / "empty").mkdir()
    assert find_runs(tmp_path / "empty", "r") == []


def test_table_sits_beside_the_published_numbers(setting, tmp_path):
    root, _ = setting
    fake_run(tmp_path / "r110" / "seed1", "r", 1, [0.9], 0.935, depth=110)
    fake_run(tmp_path / "variant" / "seed1", "r", 1, [0.9], 0.9, variant="bn_after_add")
    settings = [collect_setting(p, "r", 5, evaluate_missing=False)
                for p in (root, tmp_path / "r110", tmp_path / "variant")]
    table = format_table(settings, 5).splitlines()
    assert "8.50 ± 0.50" in table[3] and "8.75" in table[3] and "8.45" in table[3]
    assert "6.43 (6.61 ± 0.16)" in table[4] and "6.79" in table[4]
    assert table[5].rstrip().endswith("8.35")  # the Torch reproduction's 20-layer variant
    assert published({"depth": 56}) == ("6.97", "6.35")
    assert published({"depth": 20, "shortcut": "B"}) == ("-", "-")
    assert published({"depth": 1202}) == ("7.93", "-")


def test_stats_main_without_evaluation_marks_unevaluated_runs(setting, tmp_path, capsys):
    root, _ = setting
    fake_run(root / "seed4", "r", 4, [0.5, 0.6], None)
    report = tmp_path / "s.json"
    assert stats_main([str(root), "-p", "r", "--no-evaluate", "--json", str(report)]) == 0
    out = capsys.readouterr().out
    assert "(not evaluated)" in out and "final test error over 3 run(s)" in out
    assert "warning: the runs stopped at different epochs" in out
    data = json.loads(report.read_text())
    assert data["settings"][0]["test"]["n"] == 3
    assert data["settings"][0]["runs"][3]["test_error"] is None
    assert stats_main([str(tmp_path / "nothing"), "-p", "r"]) == 2
    assert "does not exist" in capsys.readouterr().err


def write_log(folder, start, epochs, accuracy):
    log = TrainingLog(log_path(folder, start), console=False)
    log.start(start, "test")
    for epoch in epochs:
        log.learning_rate(epoch, 0.1)
        log.epoch_metrics(epoch, "Train", {**METRICS, "accuracy": accuracy(epoch)})
        log.epoch_metrics(epoch, "Validation", {**METRICS, "accuracy": accuracy(epoch) - 0.05})
    log.close()


def test_band_limits_minmax_and_std_with_gaps():
    table = np.array([[1.0, 2.0, np.nan], [3.0, 6.0, 5.0]])
    mean, low, high = band_limits(table, "minmax")
    np.testing.assert_allclose(mean, [2.0, 4.0, 5.0])
    np.testing.assert_allclose(low, [1.0, 2.0, 5.0])
    np.testing.assert_allclose(high, [3.0, 6.0, 5.0])
    mean, low, high = band_limits(table, "std")
    np.testing.assert_allclose(high - mean, [np.sqrt(2), np.sqrt(8), 0.0])
    with pytest.raises(ValueError):
        band_limits(table, "iqr")


def test_overlay_plot_writes_pngs_and_single_runs_still_work(tmp_path, capsys):
    runs = []
    for k in range(3):
        run = tmp_path / f"seed{k}"
        write_log(run, 0, range(4), lambda e, k=k: 0.5 + 0.1 * e + 0.01 * k)
        write_log(run, 2, range(2, 5), lambda e, k=k: 0.6 + 0.05 * e - 0.01 * k)  # a restart
        runs.append(run)
    paths = plot_runs([stitch_logs(sorted(r.glob("training_*.log"))) for r in runs],
                      tmp_path / "out", "r20", band="std", error=True)
    assert [p.name for p in paths] == ["r20_runs_rank1.png", "r20_runs_rank5.png",
                                       "r20_runs_loss.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths)
    assert plot_main(["--runs", *map(str, runs), "--prefix", "r20"]) == 0
    assert (tmp_path / "r20_runs_rank1.png").is_file()  # the runs' common parent
    assert "3 runs overlaid (5-5 epochs each), band minmax" in capsys.readouterr().out
    assert plot_main(["--checkpoints", str(runs[0]), "--prefix", "one"]) == 0
    assert (runs[0] / "one_rank1.png").is_file()
    with pytest.raises(SystemExit):
        plot_main(["--runs", str(runs[0]), "--checkpoints", str(runs[1])])
