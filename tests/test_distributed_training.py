"""train_googlenet.py on the parameter server over loopback: 1 scheduler, 1 server, 2 workers."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from conftest import DEADLINE, REPO_ROOT

import train_googlenet
from pyimagesearch.distributed import launch
from pyimagesearch.run.checkpoints import list_checkpoints, read_manifest
from pyimagesearch.run.logs import parse_log

# A loopback cluster of four processes importing MXNet, training for epochs: tens of seconds.
pytestmark = pytest.mark.slow


def fingerprints(log: Path) -> dict[int, str]:
    lines = [line for line in log.read_text().splitlines() if "Weights-sha256=" in line]
    return {int(line.split("]")[0].split("[")[1]): line.rsplit("=", 1)[1] for line in lines}


def test_two_workers_train_one_model_and_worker_0s_checkpoint_resumes(tiny_config, tmp_path):
    folder = tmp_path / "run"
    command = [sys.executable, str(REPO_ROOT / "train_googlenet.py"), "--config", tiny_config,
               "--checkpoints", str(folder), "--prefix", "net", "--kvstore", "dist_sync",
               "--end-epoch", "4"]
    result = launch(command, workers=2, servers=1, timeout=DEADLINE, echo=False,
                    env={"PYTHONPATH": str(REPO_ROOT)})
    assert result.returncode == 0, result.message

    # Only worker 0 validates, saves and writes the main log; the other logs beside it.
    assert list_checkpoints(folder, "net") == [1, 2, 3, 4]
    main_log, other_log = folder / "training_0.log", folder / "worker1-training_0.log"
    assert "worker 0 of 2, reading part 1 of 2" in main_log.read_text()
    assert "worker 1 of 2, reading part 2 of 2" in other_log.read_text()
    assert "Validation-accuracy" not in other_log.read_text()
    # Both workers hold bit-identical weights after every epoch (BN statistics are per worker).
    assert fingerprints(main_log) == fingerprints(other_log) and len(fingerprints(main_log)) == 4
    # 32 training images, 2 workers x 8: 2 updates an epoch with a global batch of 16.
    manifest = read_manifest(folder, "net", 4)
    assert manifest["num_update"] == 8 and manifest["identity"]["batch_size"] == 16
    assert manifest["kvstore"] == "dist_sync" and manifest["workers"] == 2
    losses = [record.train["cross-entropy"] for _, record in
              sorted(parse_log(main_log).epochs.items())]
    assert losses[-1] < losses[0]

    # The same checkpoint resumes in one process (the batch differs, so --override).
    assert train_googlenet.main(["--config", tiny_config, "--checkpoints", str(folder),
                                 "--prefix", "net", "--start-epoch", "4", "--end-epoch", "5",
                                 "--override"]) == 0
    assert read_manifest(folder, "net", 5)["num_update"] == 8 + 4


def test_a_dying_worker_stops_the_job_with_a_clear_message(tiny_config, tmp_path):
    # A wrapper around the real script that SIGKILLs the non-main worker as its second
    # epoch starts, while worker 0 waits for its gradients.
    script = tmp_path / "die_after_first_epoch.py"
    script.write_text(
        "import os, signal, sys, runpy\n"
        "from pyimagesearch.training import loop\n"
        "original = loop.train_epoch\n"
        "def dying(setup, data_iter, epoch, stop, progress):\n"
        "    if epoch == 1 and not setup.is_main:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "    return original(setup, data_iter, epoch, stop, progress)\n"
        "loop.train_epoch = dying\n"
        f"sys.argv = [{str(REPO_ROOT / 'train_googlenet.py')!r}] + sys.argv[1:]\n"
        f"runpy.run_path({str(REPO_ROOT / 'train_googlenet.py')!r}, run_name='__main__')\n")
    command = [sys.executable, str(script), "--config", tiny_config, "--checkpoints",
               str(tmp_path / "run"), "--prefix", "net", "--kvstore", "dist_sync",
               "--end-epoch", "50"]
    result = launch(command, workers=2, servers=1, timeout=DEADLINE, grace=5, echo=False,
                    env={"PYTHONPATH": str(REPO_ROOT)})
    # "failed", not "timeout": the death ended the job.
    assert result.outcome == "failed" and result.returncode != 0
    assert "killed by SIGKILL" in result.message and result.failed.startswith("worker")
