"""Training faults: exact and honest resume, checkpoint damage, kills, full disks, NaNs."""

from __future__ import annotations

import json
import os
import random
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import mxnet as mx
import numpy as np
import pytest
from conftest import REPO_ROOT
from mxnet import gluon
from mxnet.gluon import nn

import train_googlenet
from pyimagesearch.checkpoints import list_checkpoints, read_manifest
from pyimagesearch.training import recipes
from pyimagesearch.training.logs import TrainingLog, read_metrics
from pyimagesearch.training.loop import (
    EpochProgress,
    StopFlag,
    TrainingDiverged,
    TrainingSetup,
    train_epoch,
)
from pyimagesearch.training.optimizers import create_optimizer

# Two decode threads: two interleaved iterators on this 2-core machine (MXNet caps one at 1).
TINY = {"BATCH_SIZE": 8, "LOG_INTERVAL": 2, "DECODE_THREADS": 2, "SEED": 3}


@pytest.fixture(scope="module")
def tiny_config(tiny_dataset_config, tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("faults_config") / "faults_config.py"
    path.write_text(tiny_dataset_config.read_text() + "".join(
        f"{name} = {value!r}\n" for name, value in TINY.items()))
    return str(path)


def variant(tiny_config: str, folder: Path, name: str, extra: str) -> str:
    path = folder / f"{name}.py"
    path.write_text(Path(tiny_config).read_text() + extra)
    return str(path)


def train(config, folder, *extra):
    return train_googlenet.main(["--config", config, "--checkpoints", str(folder),
                                 "--prefix", "net", *map(str, extra)])


def arrays(folder, epoch, kind):
    return {k: v.asnumpy() for k, v in mx.nd.load(str(folder / f"net-{epoch:04d}.{kind}")).items()}


# --- resume is exact and honest ---------------------------------------------------------

def test_one_plus_one_plus_one_epochs_equal_three_bitwise(tiny_config, tmp_path):
    straight, pieces = tmp_path / "straight", tmp_path / "pieces"
    assert train(tiny_config, straight, "--end-epoch", 3) == 0
    for start in range(3):
        assert train(tiny_config, pieces, "--start-epoch", start, "--end-epoch", start + 1) == 0
    for kind in ("params", "states"):
        a, b = arrays(straight, 3, kind), arrays(pieces, 3, kind)
        assert a.keys() == b.keys()
        for name in a:
            assert a[name].tobytes() == b[name].tobytes(), name
    first, second = read_manifest(straight, "net", 3), read_manifest(pieces, "net", 3)
    assert (first["num_update"], first["lr"]) == (second["num_update"], second["lr"])
    assert first["optimizer_state"] == second["optimizer_state"]


def test_a_changed_config_is_refused_unless_overridden_and_then_the_new_rate_applies(
        tiny_config, tmp_path, capsys):
    assert train(tiny_config, tmp_path, "--end-epoch", 1) == 0
    changed = variant(tiny_config, tmp_path, "changed",
                      "RECIPE = {'base': 'book-googlenet-adam', 'name': 'demo-googlenet-adam', "
                      "'num_epochs': 10, 'base_lr': 5e-4, "
                      "'schedule': {'kind': 'epoch_table', 'table': {0: 5e-4}}}\n")
    capsys.readouterr()
    assert train(changed, tmp_path, "--start-epoch", 1, "--end-epoch", 2) == 2
    err = capsys.readouterr().err
    assert "differs from the checkpoint's" in err and "base_lr" in err and "--override" in err
    assert train(changed, tmp_path, "--start-epoch", 1, "--end-epoch", 2, "--override") == 0
    assert "Override (--override): recipe.base_lr" in (tmp_path / "training_1.log").read_text()
    # The rate the optimizer really used at the first update after the resume.
    record = read_metrics(tmp_path / "net-metrics.jsonl")[-1]
    assert record["epoch"] == 1 and record["lr"] == pytest.approx(5e-4)
    assert read_manifest(tmp_path, "net", 2)["num_update"] == 2 * 4


def test_a_changed_dataset_is_refused(tiny_config, tmp_path, capsys):
    assert train(tiny_config, tmp_path, "--end-epoch", 1) == 0
    other = variant(tiny_config, tmp_path, "other", "SEED = 4\n")
    capsys.readouterr()
    assert train(other, tmp_path, "--start-epoch", 1, "--end-epoch", 2) == 2
    assert "seed: checkpoint 3, now 4" in capsys.readouterr().err


def test_missing_or_damaged_optimizer_state_needs_reset_optimizer(tiny_config, tmp_path, capsys):
    assert train(tiny_config, tmp_path, "--end-epoch", 1) == 0
    states = tmp_path / "net-0001.states"
    states.write_bytes(states.read_bytes()[:-8] + b"garbage!")
    capsys.readouterr()
    assert train(tiny_config, tmp_path, "--start-epoch", 1, "--end-epoch", 2) == 2
    err = capsys.readouterr().err
    assert "net-0001.states does not match its checksum" in err and "--reset-optimizer" in err
    states.unlink()
    assert train(tiny_config, tmp_path, "--start-epoch", 1, "--end-epoch", 2) == 2
    assert "states file" in capsys.readouterr().err
    assert train(tiny_config, tmp_path, "--start-epoch", 1, "--end-epoch", 2,
                 "--reset-optimizer") == 0
    log = (tmp_path / "training_1.log").read_text()
    assert "optimizer state reset" in log and "schedule continues at update 4" in log
    assert read_manifest(tmp_path, "net", 2)["num_update"] == 8


# --- checkpoint faults ------------------------------------------------------------------

def _run(command, **kwargs):
    return subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, **kwargs)


def test_sigkill_at_random_moments_never_leaves_a_broken_checkpoint(tiny_config, tmp_path):
    rng = random.Random(7)
    trials = 10
    for trial in range(trials):
        latest = list_checkpoints(tmp_path, "net")
        start = latest[-1] if latest else 0
        process = _run([sys.executable, str(REPO_ROOT / "train_googlenet.py"),
                        "--config", tiny_config, "--checkpoints", str(tmp_path),
                        "--prefix", "net", "--start-epoch", str(start),
                        "--end-epoch", "1000"])
        try:
            # Wait for training to be under way (a log exists), then kill at a random moment.
            deadline = time.time() + 60
            while not list(tmp_path.glob(f"training_{start}*.log")) and time.time() < deadline:
                time.sleep(0.05)
            time.sleep(rng.uniform(0.2, 2.5))
            process.send_signal(signal.SIGKILL)
            process.communicate(timeout=30)
        finally:
            process.kill()
        for epoch in list_checkpoints(tmp_path, "net"):
            manifest = read_manifest(tmp_path, "net", epoch)  # files match their hashes
            assert manifest["epoch"] == epoch
            mx.nd.load(str(tmp_path / f"net-{epoch:04d}.params"))
            mx.nd.load(str(tmp_path / f"net-{epoch:04d}.states"))
        for log in tmp_path.glob("training_*.log"):
            log.rename(log.with_suffix(f".trial{trial}"))  # each trial starts a fresh log
    assert list_checkpoints(tmp_path, "net"), "no trial got as far as a checkpoint"


def _limit_file_size(limit: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_a_full_disk_while_saving_keeps_the_previous_checkpoint(tiny_config, tmp_path):
    assert train(tiny_config, tmp_path, "--end-epoch", 1) == 0
    before = {p.name: p.read_bytes() for p in tmp_path.glob("net-0001.*")}
    params_size = (tmp_path / "net-0001.params").stat().st_size
    process = _run([sys.executable, str(REPO_ROOT / "train_googlenet.py"), "--config",
                    tiny_config, "--checkpoints", str(tmp_path), "--prefix", "net",
                    "--start-epoch", "1", "--end-epoch", "3"],
                   preexec_fn=_limit_file_size(params_size // 2))
    out, err = process.communicate(timeout=120)
    assert process.returncode == 2, err
    assert "could not write checkpoint 2" in err and "earlier checkpoints are untouched" in err
    assert err.rstrip().endswith("--end-epoch 3 --start-epoch 1")  # the resume command
    assert list_checkpoints(tmp_path, "net") == [1]
    assert {p.name: p.read_bytes() for p in tmp_path.glob("net-0001.*")} == before
    read_manifest(tmp_path, "net", 1)
    assert not [p for p in tmp_path.iterdir() if "tmp" in p.name or "partial" in p.name]


# --- numerical faults ----------------------------------------------------------------------

def small_setup(tmp_path, **kwargs):
    mx.random.seed(0)
    net = nn.HybridSequential(prefix="small_")
    with net.name_scope():
        net.add(nn.Dense(16, in_units=12), nn.Activation("relu"), nn.Dense(3, in_units=16))
    net.initialize(mx.init.Xavier())
    net.hybridize(static_alloc=True, static_shape=True)
    trainer = gluon.Trainer(net.collect_params(),
                            create_optimizer(recipes.BOOK_GOOGLENET_SGD, 10),
                            update_on_kvstore=False)
    log = TrainingLog(tmp_path / f"training_{time.time_ns()}.log", console=False)
    return TrainingSetup(net=net, trainer=trainer, contexts=[mx.cpu()], batch_size=4, log=log,
                         log_interval=100, seed=0, **kwargs)


def batches(count, nan_batches=()):
    rng = np.random.RandomState(0)
    data = rng.randn(4 * count, 12).astype("float32")
    for index in nan_batches:
        data[4 * index + 1, 3] = np.nan
    return mx.io.NDArrayIter(data, rng.randint(0, 3, 4 * count).astype("float32"), batch_size=4)


def test_a_nan_batch_is_skipped_and_counted(tmp_path):
    setup = small_setup(tmp_path)
    progress = EpochProgress(0)
    metrics = train_epoch(setup, batches(6, nan_batches=[2]), 0, StopFlag(), progress)
    assert progress.skipped == 1 and setup.trainer.optimizer.num_update == 5
    assert np.isfinite(list(metrics.values())).all()
    assert "Epoch[0] Batch [3]\tSkipped:" in setup.log.path.read_text()
    setup.log.close()


def test_a_nan_every_step_stops_the_run(tmp_path):
    setup = small_setup(tmp_path, max_nonfinite_steps=3)
    with pytest.raises(TrainingDiverged, match="3 steps in a row .* at epoch 0, batch 3"):
        train_epoch(setup, batches(6, nan_batches=range(6)), 0, StopFlag(), EpochProgress(0))
    assert setup.trainer.optimizer.num_update == 0
    setup.log.close()


def test_a_nan_bias_hidden_by_relu_is_caught_by_the_weight_check(tmp_path):
    setup = small_setup(tmp_path, weight_check_interval=2)
    bias = setup.net[0].bias
    bias.set_data(mx.nd.array([np.nan] + [0.0] * 15))
    # The fused ReLU on the CPU hides the NaN: the output (and so the loss) stays finite.
    assert np.isfinite(setup.net(mx.nd.ones((4, 12))).asnumpy()).all()
    with pytest.raises(TrainingDiverged, match=r"weights small_dense0_bias are not finite at "
                                               r"epoch 0, batch 2"):
        train_epoch(setup, batches(6), 0, StopFlag(), EpochProgress(0))
    setup.log.close()


def test_metrics_jsonl_counts_skipped_steps(tiny_config, tmp_path):
    assert train(tiny_config, tmp_path, "--end-epoch", 1) == 0
    record = json.loads((tmp_path / "net-metrics.jsonl").read_text().splitlines()[-1])
    assert record["skipped_steps"] == 0 and record["lr"] == pytest.approx(1e-3)
