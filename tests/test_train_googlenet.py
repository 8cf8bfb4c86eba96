"""train_googlenet.py / test_googlenet.py / plot_log.py end to end on a tiny record dataset."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mxnet as mx
import numpy as np
import pytest
from conftest import REPO_ROOT, write_config

import plot_log
import test_googlenet
import train_googlenet
from pyimagesearch.checkpoints import list_checkpoints, read_manifest
from pyimagesearch.training.logs import parse_log, read_metrics

TINY = {"BATCH_SIZE": 8, "LOG_INTERVAL": 2, "DECODE_THREADS": 1, "SEED": 3}


@pytest.fixture(scope="module")
def tiny_config(tiny_dataset_config, tmp_path_factory) -> str:
    """The session's tiny dataset with small batches, as a config ``.py`` path."""
    folder = tmp_path_factory.mktemp("train_config")
    path = folder / "train_config.py"
    path.write_text(tiny_dataset_config.read_text() + "".join(
        f"{name} = {value!r}\n" for name, value in TINY.items()))
    return str(path)


def train(config, folder, *extra):
    return train_googlenet.main(["--config", config, "--checkpoints", str(folder),
                                 "--prefix", "net", *map(str, extra)])


def saved_arrays(folder, epoch, kind):
    return mx.nd.load(str(Path(folder) / f"net-{epoch:04d}.{kind}"))


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


def test_checkpoint_is_a_standard_mxnet_checkpoint(tiny_config, tmp_path):
    assert train(tiny_config, tmp_path, "--end-epoch", 1) == 0
    symbol, args, auxs = mx.model.load_checkpoint(str(tmp_path / "net"), 1)
    assert "data" in symbol.list_arguments()
    assert any(name.endswith("running_mean") for name in auxs)
    manifest = read_manifest(tmp_path, "net", 1)
    assert set(manifest["files"]) == {"symbol", "params", "states"}
    assert manifest["identity"]["model"] == "googlenet"
    assert manifest["config"]["BATCH_SIZE"] == 8
    assert not list(tmp_path.glob(".*tmp*")), "temporary files left behind"


def test_lr_set_on_resume_is_logged_and_kept_by_later_resumes(tiny_config, tmp_path):
    assert train(tiny_config, tmp_path, "--end-epoch", 1) == 0
    assert train(tiny_config, tmp_path, "--start-epoch", 1, "--end-epoch", 2,
                 "--lr", 3e-4) == 0
    assert train(tiny_config, tmp_path, "--start-epoch", 2, "--end-epoch", 3) == 0
    assert parse_log(tmp_path / "training_1.log").epochs[1].lr == pytest.approx(3e-4)
    assert "set by hand to 0.0003" in (tmp_path / "training_1.log").read_text()
    assert parse_log(tmp_path / "training_2.log").epochs[2].lr == pytest.approx(3e-4)
    assert read_manifest(tmp_path, "net", 3)["lr_overrides"] == [{"epoch": 1, "lr": 3e-4}]


def test_evaluation_scores_exactly_the_test_images(tiny_config, tmp_path, capsys):
    assert train(tiny_config, tmp_path, "--end-epoch", 1) == 0
    capsys.readouterr()
    assert test_googlenet.main(["--config", tiny_config, "--checkpoints", str(tmp_path),
                                "--prefix", "net", "--epoch", "last"]) == 0
    out = capsys.readouterr().out
    assert "rank-1:" in out and "rank-5:" in out
    result = json.loads((tmp_path / "net-0001-test.json").read_text())
    assert result["images"] == 8  # NUM_TEST_IMAGES, though a batch holds 8 and wraps
    assert 0.0 <= result["accuracy"] <= result["top_k_accuracy_5"] <= 1.0
    # The demo's success check: a rank-1 below the requirement fails the command.
    assert test_googlenet.main(["--config", tiny_config, "--checkpoints", str(tmp_path),
                                "--prefix", "net", "--epoch", "1",
                                "--require-rank1", "1.01"]) == 4
    assert "below the required 1.0100" in capsys.readouterr().err


def test_plot_log_stitches_a_restart(tiny_config, tmp_path, capsys):
    assert train(tiny_config, tmp_path, "--end-epoch", 2) == 0
    assert train(tiny_config, tmp_path, "--start-epoch", 1, "--end-epoch", 3,
                 "--lr", 1e-4) == 0
    assert plot_log.plot_main(["--checkpoints", str(tmp_path), "--prefix", "net"]) == 0
    for name in ("net_rank1.png", "net_rank5.png", "net_loss.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "3 epochs from 2 log(s); starts at 0 (lr 0.001), 1 (lr 0.0001)" in \
        capsys.readouterr().out


def test_bad_starts_fail_at_once_with_a_clear_message(tiny_config, tmp_path, capsys):
    assert train(tiny_config, tmp_path, "--end-epoch", 2) == 0
    capsys.readouterr()
    assert train(tiny_config, tmp_path, "--start-epoch", 7) == 2
    assert "complete checkpoints of 'net' there: 1, 2" in capsys.readouterr().err
    assert train(tiny_config, tmp_path) == 2
    assert "already holds checkpoints" in capsys.readouterr().err
    assert train(str(tmp_path / "missing_config.py"), tmp_path / "other") == 2
    assert f"config file not found: {tmp_path / 'missing_config.py'}" in capsys.readouterr().err


def test_missing_or_unfit_records_fail_before_training(tiny_dataset_config, tmp_path, capsys):
    unbuilt = write_config(tmp_path / "unbuilt.py", tmp_path / "ILSVRC2015", tmp_path / "none")
    assert train(str(unbuilt), tmp_path / "a") == 2
    err = capsys.readouterr().err
    assert "is missing" in err and "python build_imagenet.py --config" in err

    too_small = tmp_path / "too_small.py"
    too_small.write_text(tiny_dataset_config.read_text() + "INPUT_SIZE = 40\n")
    assert train(str(too_small), tmp_path / "b") == 2
    err = capsys.readouterr().err
    assert "smaller than the 40 px crop" in err and "RESIZE >= 40" in err

    no_mean = tmp_path / "no_mean.py"
    no_mean.write_text(tiny_dataset_config.read_text()
                       + f"DATASET_MEAN = {str(tmp_path / 'gone.json')!r}\n")
    assert train(str(no_mean), tmp_path / "c") == 2
    assert "mean file" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() or not list((tmp_path / "a").glob("*.params"))


def test_a_diverging_loss_stops_the_run_without_a_checkpoint(tiny_config, tmp_path, capsys):
    assert train(tiny_config, tmp_path, "--end-epoch", 1) == 0
    capsys.readouterr()
    # Adam at 1e30 throws the weights to overflow within a step or two.
    assert train(tiny_config, tmp_path, "--start-epoch", 1, "--end-epoch", 3,
                 "--lr", 1e30) == 3
    err = capsys.readouterr().err
    assert "at epoch 1, batch" in err and "last good checkpoint is epoch 1" in err
    assert list_checkpoints(tmp_path, "net") == [1]


def test_sigterm_stops_cleanly_and_names_the_resume_command(tiny_config, tmp_path):
    command = [sys.executable, str(REPO_ROOT / "train_googlenet.py"), "--config", tiny_config,
               "--checkpoints", str(tmp_path), "--prefix", "net", "--end-epoch", "500"]
    process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    try:
        deadline = time.time() + 120
        while not (tmp_path / "net-0002.json").exists():
            assert process.poll() is None, process.communicate()
            assert time.time() < deadline, "no checkpoint within 120 s"
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 128 + signal.SIGTERM
    assert "SIGTERM received during epoch" in err
    resume_epoch = list_checkpoints(tmp_path, "net")[-1]
    assert f"--start-epoch {resume_epoch}" in err
    for epoch in list_checkpoints(tmp_path, "net"):
        read_manifest(tmp_path, "net", epoch)  # every checkpoint complete and intact
    assert not list(tmp_path.glob(".*tmp*"))


def test_a_split_smaller_than_half_a_batch_is_refused_before_mxnet_aborts(tiny_config, tmp_path,
                                                                          capsys):
    huge_batch = tmp_path / "huge_batch.py"
    huge_batch.write_text(Path(tiny_config).read_text() + "BATCH_SIZE = 80\n")  # 32 train images
    assert train(str(huge_batch), tmp_path / "run") == 2
    assert "train.rec holds 32 records, fewer than half a batch of 80" in capsys.readouterr().err


def test_all_epochs_chooses_the_best_on_validation_and_tests_only_that_one(tiny_config,
                                                                           tmp_path, capsys):
    assert train(tiny_config, tmp_path, "--end-epoch", 3) == 0
    capsys.readouterr()
    assert test_googlenet.main(["--config", tiny_config, "--checkpoints", str(tmp_path),
                                "--prefix", "net", "--all-epochs"]) == 0
    out = capsys.readouterr().out
    rows = (tmp_path / "net-epochs.csv").read_text().splitlines()
    assert rows[0] == "epoch,val_rank1,val_rank5,val_loss,images"
    table = [dict(zip(rows[0].split(","), map(float, row.split(",")))) for row in rows[1:]]
    assert [int(r["epoch"]) for r in table] == [1, 2, 3] and all(r["images"] == 11 for r in table)
    best = max(table, key=lambda r: (r["val_rank1"], -r["val_loss"]))
    assert f"best on validation: epoch {int(best['epoch'])}" in out
    tested = sorted(p.name for p in tmp_path.glob("net-*-test.json"))
    assert tested == [f"net-{int(best['epoch']):04d}-test.json"]  # never the other epochs
    with pytest.raises(SystemExit):
        test_googlenet.main(["--config", tiny_config, "--checkpoints", str(tmp_path),
                             "--prefix", "net", "--all-epochs", "--epoch", "1"])
