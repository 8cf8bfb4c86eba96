"""The log format: written and parsed by one module, restarts stitched, book logs read."""

import json
import math

import pytest

from pyimagesearch.run.logs import (
    LogWriteError,
    TrainingLog,
    append_metrics,
    parse_log,
    read_metrics,
    stitch_logs,
)
from pyimagesearch.run.paths import log_path

METRICS = {"accuracy": 0.412, "top_k_accuracy_5": 0.671, "cross-entropy": 2.731}


def write_run(folder, start, epochs, lr, offset=0.0):
    log = TrainingLog(log_path(folder, start), console=False)
    log.start(start, "test")
    for epoch in epochs:
        log.learning_rate(epoch, lr)
        log.batch(epoch, 500, 412.37, METRICS)
        log.epoch_metrics(epoch, "Train", {k: v + epoch + offset for k, v in METRICS.items()})
        log.time_cost(epoch, 1234.567)
        log.epoch_metrics(epoch, "Validation", {k: v - epoch for k, v in METRICS.items()})
    log.close()
    return log.path


def test_written_lines_are_module_fit_lines_and_parse_back(tmp_path):
    path = write_run(tmp_path, 3, [3], 1.5e-05)
    lines = path.read_text().splitlines()
    assert "Epoch[3] Batch [500]\tSpeed: 412.37 samples/sec\taccuracy=0.412000\t" \
           "top_k_accuracy_5=0.671000\tcross-entropy=2.731000" in lines
    assert "Epoch[3] Train-accuracy=3.412000" in lines
    assert "Epoch[3] Time cost=1234.567" in lines
    assert "Epoch[3] Validation-cross-entropy=-0.269000" in lines
    parsed = parse_log(path)
    assert parsed.start_epoch == 3 and parsed.started_at
    record = parsed.epochs[3]
    assert record.lr == pytest.approx(1.5e-05)  # not 1.5, as MXNet's parse_log.py reads it
    assert record.train["accuracy"] == pytest.approx(3.412)
    assert record.val["top_k_accuracy_5"] == pytest.approx(-2.329)
    assert record.time == pytest.approx(1234.567)
    assert parsed.batches == [(3, 500, pytest.approx(412.37), pytest.approx(METRICS))]


def test_book_logs_with_logging_prefix_nan_and_a_truncated_last_line(tmp_path):
    path = tmp_path / "training_0.log"
    path.write_text(
        "INFO:root:Epoch[0] Batch [500]\tSpeed: 182.81 samples/sec\taccuracy=0.003353\t"
        "top_k_accuracy_5=0.016487\tcross-entropy=6.840302\n"
        "INFO:root:Epoch[0] Train-accuracy=0.004567\n"
        "INFO:root:Epoch[0] Train-cross-entropy=nan\n"
        "INFO:root:Epoch[0] Time cost=5812.342\n"
        "INFO:root:Saved checkpoint to \"googlenet-0001.params\"\n"
        "INFO:root:Epoch[0] Validation-accuracy=2e-03\n"
        "INFO:root:Epoch[1] Train-accur")
    parsed = parse_log(path)
    assert parsed.start_epoch == 0 and parsed.started_at is None
    assert list(parsed.epochs) == [0]
    assert parsed.epochs[0].train["accuracy"] == pytest.approx(0.004567)
    assert math.isnan(parsed.epochs[0].train["cross-entropy"])
    assert parsed.epochs[0].val["accuracy"] == pytest.approx(0.002)
    assert parsed.batches[0][:3] == (0, 500, pytest.approx(182.81))


def test_a_later_start_replaces_every_epoch_from_its_start_on(tmp_path):
    write_run(tmp_path, 0, range(0, 6), 1e-2)
    write_run(tmp_path, 3, range(3, 5), 1e-3, offset=100)   # restarted at 3, crashed after 4
    history = stitch_logs(sorted(tmp_path.glob("training_*.log")))
    assert sorted(history.epochs) == [0, 1, 2, 3, 4]      # epoch 5 of the first start is gone
    assert history.epochs[2].train["accuracy"] == pytest.approx(2.412)
    assert history.epochs[3].train["accuracy"] == pytest.approx(103.412)
    assert [(r.epoch, r.lr) for r in history.restarts] == [(0, 1e-2), (3, 1e-3)]


def test_a_repeated_start_gets_a_new_file_and_wins(tmp_path):
    first = write_run(tmp_path, 0, [0, 1], 1e-2)
    second = write_run(tmp_path, 0, [0], 1e-3, offset=50)
    assert first.name == "training_0.log" and second.name == "training_0.2.log"
    history = stitch_logs([second, first])
    assert list(history.epochs) == [0]
    assert history.epochs[0].lr == 1e-3


def test_book_logs_without_start_stamps_are_ordered_by_start_epoch(tmp_path):
    (tmp_path / "training_20.log").write_text("Epoch[20] Train-accuracy=0.5\n")
    (tmp_path / "training_0.log").write_text(
        "Epoch[0] Train-accuracy=0.1\nEpoch[20] Train-accuracy=0.2\nEpoch[21] Train-accuracy=0.3\n")
    history = stitch_logs(sorted(tmp_path.glob("training_*.log")))
    assert history.epochs[20].train["accuracy"] == 0.5
    assert 21 not in history.epochs


def test_metrics_jsonl_stitches_restarts_and_skips_a_torn_line(tmp_path):
    path = tmp_path / "net-metrics.jsonl"
    for epoch in range(4):
        append_metrics(path, {"epoch": epoch, "start_epoch": 0, "run": "a", "val": {"x": epoch}})
    append_metrics(path, {"epoch": 2, "start_epoch": 2, "run": "b", "val": {"x": float("nan")}})
    with open(path, "a") as handle:
        handle.write('{"epoch": 3, "start_ep')
    records = read_metrics(path)
    assert [r["epoch"] for r in records] == [0, 1, 2]
    assert records[2]["run"] == "b" and records[2]["val"]["x"] is None
    assert json.loads(path.read_text().splitlines()[0])["epoch"] == 0


def test_a_record_after_a_torn_line_is_kept_and_a_full_device_is_one_clear_error(tmp_path):
    path = tmp_path / "net-metrics.jsonl"
    append_metrics(path, {"epoch": 0, "start_epoch": 0, "run": "a"})
    with open(path, "a") as handle:  # a process killed in the middle of its line
        handle.write('{"epoch": 1, "start_ep')
    append_metrics(path, {"epoch": 1, "start_epoch": 1, "run": "b"})  # the resumed run
    assert [(r["epoch"], r["run"]) for r in read_metrics(path)] == [(0, "a"), (1, "b")]

    with pytest.raises(LogWriteError) as full:  # a device that is always full
        append_metrics("/dev/full", {"epoch": 2})
    assert str(full.value) == ("could not write /dev/full ([Errno 28] No space left on device: "
                               "the disk is full, or a quota or a file-size limit (ulimit -f) "
                               "was reached)")
