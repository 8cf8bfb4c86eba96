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
from conftest import DEADLINE, REPO_ROOT, config_with, linked_copy, wait_for
from mxnet import gluon
from mxnet.gluon import nn

import train_googlenet
from pyimagesearch.run.checkpoints import list_checkpoints, read_manifest
from pyimagesearch.run.logs import TrainingLog, read_metrics
from pyimagesearch.settings import recipes
from pyimagesearch.training.loop import (
    EpochProgress,
    StopFlag,
    TrainingDiverged,
    TrainingSetup,
    train_epoch,
)
from pyimagesearch.training.optimizers import create_optimizer


@pytest.fixture(scope="module")
def faults_config(tiny_config, tmp_path_factory) -> str:
    """The session's tiny config read by two interleaved iterators (two decode threads:
    MXNet caps one iterator at one), so resume is checked across both streams."""
    folder = tmp_path_factory.mktemp("faults_config")
    return str(config_with(tiny_config, folder / "faults_config.py", DECODE_THREADS=2))


@pytest.fixture(scope="module")
def one_epoch(faults_config, tmp_path_factory) -> Path:
    """A run of one epoch on ``faults_config`` (checkpoint 1). Read-only: tests that resume
    or damage it work on a :func:`linked_copy`."""
    folder = tmp_path_factory.mktemp("one_epoch")
    assert train(faults_config, folder, "--end-epoch", 1) == 0
    return folder


def variant(config: str, folder: Path, name: str, **fields) -> str:
    return str(config_with(config, folder / f"{name}.py", **fields))


def train(config, folder, *extra):
    return train_googlenet.main(["--config", config, "--checkpoints", str(folder),
                                 "--prefix", "net", *map(str, extra)])


def arrays(folder, epoch, kind):
    return {k: v.asnumpy() for k, v in mx.nd.load(str(folder / f"net-{epoch:04d}.{kind}")).items()}


# --- resume is exact and honest ---------------------------------------------------------

@pytest.mark.slow
def test_one_plus_one_plus_one_epochs_equal_three_bitwise(faults_config, tmp_path):
    straight, pieces = tmp_path / "straight", tmp_path / "pieces"
    assert train(faults_config, straight, "--end-epoch", 3) == 0
    for start in range(3):
        assert train(faults_config, pieces, "--start-epoch", start, "--end-epoch", start + 1) == 0
    for kind in ("params", "states"):
        a, b = arrays(straight, 3, kind), arrays(pieces, 3, kind)
        assert a.keys() == b.keys()
        for name in a:
            assert a[name].tobytes() == b[name].tobytes(), name
    first, second = read_manifest(straight, "net", 3), read_manifest(pieces, "net", 3)
    assert (first["num_update"], first["lr"]) == (second["num_update"], second["lr"])
    assert first["optimizer_state"] == second["optimizer_state"]


def test_a_changed_config_is_refused_unless_overridden_and_then_the_new_rate_applies(
        faults_config, one_epoch, tmp_path, capsys):
    run = linked_copy(one_epoch, tmp_path / "run")
    changed = variant(faults_config, tmp_path, "changed",
                      RECIPE={"base": "book-googlenet-adam", "name": "demo-googlenet-adam",
                              "num_epochs": 10, "base_lr": 5e-4,
                              "schedule": {"kind": "epoch_table", "table": {0: 5e-4}}})
    capsys.readouterr()
    assert train(changed, run, "--start-epoch", 1, "--end-epoch", 2) == 2
    err = capsys.readouterr().err
    assert "differs from the checkpoint's" in err and "base_lr" in err and "--override" in err
    assert train(changed, run, "--start-epoch", 1, "--end-epoch", 2, "--override") == 0
    assert "Override (--override): recipe.base_lr" in (run / "training_1.log").read_text()
    # The rate the optimizer really used at the first update after the resume.
    record = read_metrics(run / "net-metrics.jsonl")[-1]
    assert record["epoch"] == 1 and record["lr"] == pytest.approx(5e-4)
    assert read_manifest(run, "net", 2)["num_update"] == 2 * 4


def test_a_changed_dataset_is_refused(faults_config, one_epoch, tmp_path, capsys):
    run = linked_copy(one_epoch, tmp_path / "run")
    other = variant(faults_config, tmp_path, "other", SEED=4)
    capsys.readouterr()
    assert train(other, run, "--start-epoch", 1, "--end-epoch", 2) == 2
    assert "seed: checkpoint 3, now 4" in capsys.readouterr().err


@pytest.mark.parametrize("edit, problem", [
    (lambda m: m.update(num_update=999), "num_update 999 disagrees with the optimizer state's"),
    (lambda m: m.update(epoch=7), "epoch 7 where its name says 1"),
    (lambda m: m["optimizer_state"].update(num_update=1), "disagrees with the optimizer state's"),
    (lambda m: m["files"]["params"].update(file="../net-0001.params"), "the params entry"),
    (lambda m: m.pop("files"), "'files' does not list"),
    (lambda m: [m.pop("num_update"), m.pop("optimizer_state")], "records no update count"),
])
def test_a_hand_edited_checkpoint_manifest_is_refused_naming_it(faults_config, one_epoch,
                                                                tmp_path, capsys, edit,
                                                                problem):
    run = linked_copy(one_epoch, tmp_path / "run")
    manifest_file = run / "net-0001.json"
    manifest = json.loads(manifest_file.read_text())
    edit(manifest)
    manifest_file.write_text(json.dumps(manifest))
    capsys.readouterr()
    assert train(faults_config, run, "--start-epoch", 1, "--end-epoch", 2) == 2
    err = capsys.readouterr().err
    assert str(manifest_file) in err and problem in err
    assert not (run / "net-0002.json").exists()


def test_missing_or_damaged_optimizer_state_needs_reset_optimizer(faults_config, one_epoch,
                                                                  tmp_path, capsys):
    run = linked_copy(one_epoch, tmp_path / "run")
    states = run / "net-0001.states"
    damaged = states.read_bytes()[:-8] + b"garbage!"
    states.unlink()  # a new file: the hard-linked original stays intact
    states.write_bytes(damaged)
    capsys.readouterr()
    assert train(faults_config, run, "--start-epoch", 1, "--end-epoch", 2) == 2
    err = capsys.readouterr().err
    assert "net-0001.states does not match its checksum" in err and "--reset-optimizer" in err
    states.unlink()
    assert train(faults_config, run, "--start-epoch", 1, "--end-epoch", 2) == 2
    assert "states file" in capsys.readouterr().err
    assert train(faults_config, run, "--start-epoch", 1, "--end-epoch", 2,
                 "--reset-optimizer") == 0
    log = (run / "training_1.log").read_text()
    assert "optimizer state reset" in log and "schedule continues at update 4" in log
    assert read_manifest(run, "net", 2)["num_update"] == 8


# --- checkpoint faults ------------------------------------------------------------------

def _run(command, **kwargs):
    return subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}, **kwargs)


class Saves:
    """What a checkpoint folder shows of one process's saves.

    A save is under way while that process's temporary files exist: the exported symbol
    and weights and the optimizer state as ``.net.tmp<pid>-*``, renamed into place, then
    the manifest as ``net-NNNN.json.partial-<pid>``.
    """

    def __init__(self, folder: Path, pid: int) -> None:
        self.folder, self.pid = folder, pid

    def temporary(self) -> list[str]:
        return [name for name in os.listdir(self.folder)
                if name.startswith(f".net.tmp{self.pid}-") or
                name.endswith(f".partial-{self.pid}")]

    def phase(self, epoch: int) -> str:
        """How far the save of checkpoint ``epoch`` got."""
        if (self.folder / f"net-{epoch:04d}.json").exists():
            return "complete"
        left = self.temporary()
        if any(name.endswith(f".partial-{self.pid}") for name in left):
            return "writing the manifest"
        if (self.folder / f"net-{epoch:04d}.params").exists():
            return "renaming into place"
        if any(name.endswith(".states") for name in left):
            return "writing the optimizer state"
        return "exporting the network"


@pytest.mark.slow
def test_sigkill_during_checkpoint_saves_never_leaves_a_broken_checkpoint(tiny_config,
                                                                          tmp_path):
    """SIGKILL at random moments across the saves this test watches: a first process
    times one save from its first temporary file to its manifest; every trial then kills
    a process that much into a save, at offsets spread over that window, so each phase of
    a save is hit whatever the machine's speed. Every checkpoint left must be complete
    and intact, the next start must clear the dead save's files, and the run must resume
    from the newest."""
    rng = random.Random(7)
    trials = 6  # one fraction of the save window each: every phase of a save gets hit
    fractions = [(i + rng.random()) / trials for i in range(trials)]
    rng.shuffle(fractions)
    window, phases = None, []
    for trial, fraction in enumerate(fractions):
        latest = list_checkpoints(tmp_path, "net")
        start = latest[-1] if latest else 0
        process = _run([sys.executable, str(REPO_ROOT / "train_googlenet.py"),
                        "--config", tiny_config, "--checkpoints", str(tmp_path),
                        "--prefix", "net", "--start-epoch", str(start),
                        "--end-epoch", "1000"])
        saves = Saves(tmp_path, process.pid)
        try:
            if window is None:
                wait_for(saves.temporary, "first checkpoint save", process=process,
                           interval=0.002)
                began = time.monotonic()
                first = tmp_path / f"net-{start + 1:04d}.json"
                wait_for(first.exists, "first checkpoint", process=process, interval=0.002)
                window = time.monotonic() - began
            # A save missed between two looks (a busy machine) is no loss: the next one counts.
            wait_for(saves.temporary, "checkpoint save", process=process, interval=0.002)
            epoch = max(list_checkpoints(tmp_path, "net"), default=0) + 1
            time.sleep(fraction * window)
            process.send_signal(signal.SIGKILL)
            process.communicate(timeout=DEADLINE)
        finally:
            process.kill()
            process.communicate()
        phases.append(saves.phase(epoch))
        for done in list_checkpoints(tmp_path, "net"):
            manifest = read_manifest(tmp_path, "net", done)  # files match their hashes
            assert manifest["epoch"] == done
            mx.nd.load(str(tmp_path / f"net-{done:04d}.params"))
            mx.nd.load(str(tmp_path / f"net-{done:04d}.states"))
        # This trial's process removed at its start what the previous kill had left.
        strays = [name for name in os.listdir(tmp_path)
                  if (".tmp" in name or ".partial-" in name) and str(process.pid) not in name]
        assert not strays, f"an earlier save's leftovers survived a start: {strays}"
        for log in tmp_path.glob("training_*.log"):
            log.rename(log.with_suffix(f".trial{trial}"))  # each trial starts a fresh log
    assert any(phase != "complete" for phase in phases), \
        f"no kill landed inside a save (save window {window:.3f} s): {phases}"
    latest = list_checkpoints(tmp_path, "net")[-1]
    assert train(tiny_config, tmp_path, "--start-epoch", latest, "--end-epoch", latest + 1) == 0
    assert list_checkpoints(tmp_path, "net")[-1] == latest + 1
    assert not [name for name in os.listdir(tmp_path) if ".tmp" in name or ".partial-" in name]


def _limit_file_size(limit: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write fails with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


@pytest.mark.slow
def test_a_full_disk_while_saving_keeps_the_previous_checkpoint(faults_config, one_epoch,
                                                                tmp_path):
    run = linked_copy(one_epoch, tmp_path / "run")
    before = {p.name: p.read_bytes() for p in run.glob("net-0001.*")}
    params_size = (run / "net-0001.params").stat().st_size
    process = _run([sys.executable, str(REPO_ROOT / "train_googlenet.py"), "--config",
                    faults_config, "--checkpoints", str(run), "--prefix", "net",
                    "--start-epoch", "1", "--end-epoch", "3"],
                   preexec_fn=_limit_file_size(params_size // 2))
    out, err = process.communicate(timeout=DEADLINE)
    assert process.returncode == 2, err
    assert "could not write checkpoint 2" in err and "earlier checkpoints are untouched" in err
    assert err.rstrip().endswith("--end-epoch 3 --start-epoch 1")  # the resume command
    assert list_checkpoints(run, "net") == [1]
    assert {p.name: p.read_bytes() for p in run.glob("net-0001.*")} == before
    read_manifest(run, "net", 1)
    assert not [p for p in run.iterdir() if "tmp" in p.name or "partial" in p.name]


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


def test_metrics_jsonl_counts_skipped_steps(one_epoch):
    record = json.loads((one_epoch / "net-metrics.jsonl").read_text().splitlines()[-1])
    assert record["skipped_steps"] == 0 and record["lr"] == pytest.approx(1e-3)
