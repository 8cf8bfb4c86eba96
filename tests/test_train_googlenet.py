"""train_googlenet.py / test_googlenet.py / plot_log.py end to end on a tiny record dataset."""

from __future__ import annotations

import functools
import json
import math
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import mxnet as mx
import numpy as np
import pytest
from conftest import (
    DEADLINE,
    REPO_ROOT,
    config_with,
    linked_copy,
    rewrite_checkpoint_params,
    run_config,
    wait_for,
    write_config,
)

import plot_log
import test_googlenet
import train_googlenet
from pyimagesearch.config import load_config
from pyimagesearch.run.checkpoints import list_checkpoints, read_manifest
from pyimagesearch.run.logs import parse_log, read_metrics


def train(config, folder, *extra):
    return train_googlenet.main(["--config", config, "--checkpoints", str(folder),
                                 "--prefix", "net", *map(str, extra)])


def saved_arrays(folder, epoch, kind):
    return mx.nd.load(str(Path(folder) / f"net-{epoch:04d}.{kind}"))


@pytest.mark.slow
def test_two_plus_two_epochs_equal_four_uninterrupted(tiny_config, tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert train(tiny_config, straight, "--end-epoch", 4) == 0
    assert train(tiny_config, resumed, "--end-epoch", 2) == 0
    assert train(tiny_config, resumed, "--start-epoch", 2, "--end-epoch", 4) == 0

    for kind in ("params", "states"):
        a, b = saved_arrays(straight, 4, kind), saved_arrays(resumed, 4, kind)
        assert sorted(a) == sorted(b) and len(a) > 10
        for name in a:
            np.testing.assert_array_equal(a[name].asnumpy(), b[name].asnumpy(), err_msg=name)
    first, second = read_manifest(straight, "net", 4), read_manifest(resumed, "net", 4)
    assert first["num_update"] == second["num_update"] == 4 * 4  # 32 images / batch 8
    assert first["lr"] == second["lr"]
    assert first["metrics"] == second["metrics"]
    # The resumed run's logs: one per start, both in Module.fit format.
    starts = sorted(p.name for p in resumed.glob("training_*.log"))
    assert starts == ["training_0.log", "training_2.log"]
    assert sorted(parse_log(resumed / "training_2.log").epochs) == [2, 3]
    assert [r["epoch"] for r in read_metrics(resumed / "net-metrics.jsonl")] == [0, 1, 2, 3]


def test_checkpoint_is_a_standard_mxnet_checkpoint(tiny_run):
    symbol, args, auxs = mx.model.load_checkpoint(str(tiny_run / "net"), 1)
    assert "data" in symbol.list_arguments()
    assert any(name.endswith("running_mean") for name in auxs)
    manifest = read_manifest(tiny_run, "net", 1)
    assert set(manifest["files"]) == {"symbol", "params", "states"}
    assert manifest["identity"]["model"] == "googlenet"
    assert manifest["config"]["BATCH_SIZE"] == 8
    assert not list(tiny_run.glob(".*tmp*")), "temporary files left behind"


def test_lr_set_on_resume_is_logged_and_kept_by_later_resumes(tiny_run, tmp_path):
    # The shared run was restarted at checkpoint 1 with --lr 1e-4 and trained to 3.
    run = linked_copy(tiny_run, tmp_path / "run")
    assert train(run_config(tiny_run), run, "--start-epoch", 3, "--end-epoch", 4) == 0
    assert parse_log(run / "training_1.log").epochs[1].lr == pytest.approx(1e-4)
    assert "set by hand to 0.0001" in (run / "training_1.log").read_text()
    assert parse_log(run / "training_3.log").epochs[3].lr == pytest.approx(1e-4)
    assert read_manifest(run, "net", 4)["lr_overrides"] == [{"epoch": 1, "lr": 1e-4}]


def test_evaluation_scores_exactly_the_test_images(tiny_run, tmp_path, capsys):
    run, config = linked_copy(tiny_run, tmp_path / "run"), run_config(tiny_run)
    (run / "net-0003-test.json").unlink()  # the shared run's own evaluation
    capsys.readouterr()
    assert test_googlenet.main(["--config", config, "--checkpoints", str(run),
                                "--prefix", "net", "--epoch", "last"]) == 0
    out = capsys.readouterr().out
    assert "rank-1:" in out and "rank-5:" in out
    result = json.loads((run / "net-0003-test.json").read_text())
    assert result["images"] == 8  # NUM_TEST_IMAGES, though a batch holds 8 and wraps
    assert 0.0 <= result["accuracy"] <= result["top_k_accuracy_5"] <= 1.0
    # The demo's success check: a rank-1 below the requirement fails the command.
    assert test_googlenet.main(["--config", config, "--checkpoints", str(run),
                                "--prefix", "net", "--epoch", "1",
                                "--require-rank1", "1.01"]) == 4
    assert "below the required 1.0100" in capsys.readouterr().err


def test_plot_log_stitches_a_restart(tiny_run, tmp_path, capsys):
    # The shared run: epochs 0-1, then a restart from checkpoint 1 with --lr 1e-4 to 3.
    run = linked_copy(tiny_run, tmp_path / "run")
    assert plot_log.main(["--checkpoints", str(run), "--prefix", "net"]) == 0
    for name in ("net_rank1.png", "net_rank5.png", "net_loss.png"):
        assert (run / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "3 epochs from 2 log(s); starts at 0 (lr 0.001), 1 (lr 0.0001)" in \
        capsys.readouterr().out


def test_bad_starts_fail_at_once_with_a_clear_message(tiny_run, tmp_path, capsys):
    run = linked_copy(tiny_run, tmp_path / "run")
    before = sorted(p.name for p in run.iterdir())
    capsys.readouterr()
    assert train(run_config(tiny_run), run, "--start-epoch", 7) == 2
    assert "complete checkpoints of 'net' there: 1, 2, 3" in capsys.readouterr().err
    assert train(run_config(tiny_run), run) == 2
    assert "already holds checkpoints" in capsys.readouterr().err
    assert sorted(p.name for p in run.iterdir()) == before  # at once: nothing written
    assert train(str(tmp_path / "missing_config.py"), tmp_path / "other") == 2
    assert f"config file not found: {tmp_path / 'missing_config.py'}" in capsys.readouterr().err


def test_missing_or_unfit_records_fail_before_training(tiny_dataset_config, tmp_path, capsys):
    unbuilt = write_config(tmp_path / "unbuilt.py", tmp_path / "ILSVRC2015", tmp_path / "none")
    assert train(str(unbuilt), tmp_path / "a") == 2
    err = capsys.readouterr().err
    assert "is missing" in err and "python build_imagenet.py --config" in err

    too_small = config_with(tiny_dataset_config, tmp_path / "too_small.py", INPUT_SIZE=40)
    assert train(str(too_small), tmp_path / "b") == 2
    err = capsys.readouterr().err
    assert "smaller than the 40 px crop" in err and "RESIZE >= 40" in err

    no_mean = config_with(tiny_dataset_config, tmp_path / "no_mean.py",
                          DATASET_MEAN=str(tmp_path / "gone.json"))
    assert train(str(no_mean), tmp_path / "c") == 2
    assert "mean file" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() or not list((tmp_path / "a").glob("*.params"))


def test_a_diverging_loss_stops_the_run_without_a_checkpoint(tiny_run, tmp_path, capsys):
    run = linked_copy(tiny_run, tmp_path / "run")
    capsys.readouterr()
    # Adam at 1e30 throws the weights to overflow within a step or two.
    assert train(run_config(tiny_run), run, "--start-epoch", 3, "--end-epoch", 5,
                 "--lr", 1e30) == 3
    err = capsys.readouterr().err
    assert "at epoch 3, batch" in err and "last good checkpoint is epoch 3" in err
    assert list_checkpoints(run, "net") == [1, 2, 3]


def test_sigterm_stops_cleanly_and_names_the_resume_command(tiny_run, tmp_path):
    run = linked_copy(tiny_run, tmp_path / "run")
    command = [sys.executable, str(REPO_ROOT / "train_googlenet.py"), "--config",
               run_config(tiny_run), "--checkpoints", str(run), "--prefix", "net",
               "--start-epoch", "3", "--end-epoch", "500"]
    process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    try:
        wait_for((run / "net-0004.json").exists, "checkpoint 4", process=process)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=DEADLINE)
    finally:
        process.kill()
    assert process.returncode == 128 + signal.SIGTERM
    assert "SIGTERM received during epoch" in err
    resume_epoch = list_checkpoints(run, "net")[-1]
    assert resume_epoch >= 4 and f"--start-epoch {resume_epoch}" in err
    for epoch in list_checkpoints(run, "net"):
        read_manifest(run, "net", epoch)  # every checkpoint complete and intact
    assert not list(run.glob(".*tmp*"))


def test_a_split_smaller_than_half_a_batch_is_refused_before_mxnet_aborts(tiny_config, tmp_path,
                                                                          capsys):
    huge_batch = config_with(tiny_config, tmp_path / "huge_batch.py", BATCH_SIZE=80)
    assert train(str(huge_batch), tmp_path / "run") == 2  # 32 training images
    assert "train.rec holds 32 records, fewer than half a batch of 80" in capsys.readouterr().err


def constant_classifier(arrays: dict, label: int, bias: float) -> None:
    """Make the classifier's output its bias alone: ``bias`` for ``label``, 0 elsewhere."""
    for name, array in arrays.items():
        if "_output_" in name and name.endswith("_weight"):
            arrays[name] = mx.nd.zeros(array.shape)
        elif "_output_" in name and name.endswith("_bias"):
            values = np.zeros(array.shape, np.float32)
            values[label] = bias
            arrays[name] = mx.nd.array(values)


def labels_of(lst: str) -> list[int]:
    return [int(float(line.split("\t")[1])) for line in Path(lst).read_text().splitlines()]


def test_all_epochs_chooses_the_best_on_validation_and_tests_only_that_one(tiny_run, tmp_path,
                                                                           capsys):
    """Each checkpoint made to predict one class whatever the image, so its validation
    figures follow from the class counts by hand: epochs 1 and 2 predict the same class
    (equal rank-1), epoch 2 less confidently (lower loss when most images are of another
    class); epoch 3 predicts a rarer class. The best is epoch 2: not the last one, and
    only the loss tells it from epoch 1."""
    config = load_config(run_config(tiny_run))
    val, test = labels_of(config.VAL_MX_LIST), labels_of(config.TEST_MX_LIST)
    counts = Counter(val)
    common, rare = counts.most_common()[0][0], counts.most_common()[-1][0]
    assert counts[common] > counts[rare]
    choices = {1: (common, 2.0), 2: (common, 1.0), 3: (rare, 3.0)}
    run = linked_copy(tiny_run, tmp_path / "run")
    (run / "net-0003-test.json").unlink()
    for epoch, (label, bias) in choices.items():
        rewrite_checkpoint_params(run, "net", epoch, functools.partial(
            constant_classifier, label=label, bias=bias))

    def loss(labels: list[int], label: int, bias: float) -> float:
        # softmax cross-entropy of logits (bias at `label`, 0 at the other classes)
        total = math.log(math.exp(bias) + config.NUM_CLASSES - 1)
        return total - bias * labels.count(label) / len(labels)

    capsys.readouterr()
    assert test_googlenet.main(["--config", run_config(tiny_run), "--checkpoints", str(run),
                                "--prefix", "net", "--all-epochs"]) == 0
    out = capsys.readouterr().out
    rows = (run / "net-epochs.csv").read_text().splitlines()
    assert rows[0] == "epoch,val_rank1,val_rank5,val_loss,images"
    table = [dict(zip(rows[0].split(","), map(float, row.split(",")))) for row in rows[1:]]
    assert [int(r["epoch"]) for r in table] == [1, 2, 3] and all(r["images"] == 11 for r in table)
    for row, (label, bias) in zip(table, choices.values()):
        assert row["val_rank1"] == pytest.approx(counts[label] / len(val), abs=1e-6)
        assert row["val_loss"] == pytest.approx(loss(val, label, bias), abs=1e-5)
    assert "best on validation: epoch 2" in out
    tested = sorted(p.name for p in run.glob("net-*-test.json"))
    assert tested == ["net-0002-test.json"]  # never the other epochs
    result = json.loads((run / "net-0002-test.json").read_text())
    assert result["accuracy"] == pytest.approx(test.count(common) / len(test), abs=1e-6)
    with pytest.raises(SystemExit):
        test_googlenet.main(["--config", run_config(tiny_run), "--checkpoints", str(run),
                             "--prefix", "net", "--all-epochs", "--epoch", "1"])


def test_all_epochs_scores_the_others_and_names_a_damaged_checkpoint(tiny_run, tmp_path, capsys):
    run = linked_copy(tiny_run, tmp_path / "run")
    (run / "net-0003-test.json").unlink()
    params = run / "net-0002.params"
    data = params.read_bytes()
    params.unlink()  # a new file: the hard-linked original stays as it was
    params.write_bytes(data[:-100] + bytes(100))
    capsys.readouterr()
    assert test_googlenet.main(["--config", run_config(tiny_run), "--checkpoints", str(run),
                                "--prefix", "net", "--all-epochs"]) == 0
    out, err = capsys.readouterr()
    rows = (run / "net-epochs.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows[1:]] == ["1", "3"]
    assert "[WARNING] checkpoint net-0002 was not scored: " in err
    assert f"{params} does not match its checksum" in err
    assert "best on validation: epoch" in out

