"""Writes that fail and signals that insist: every door says what is wrong.

A full disk is ``RLIMIT_FSIZE`` with ``SIGXFSZ`` ignored (writes fail with EFBIG), lowered
by a wrapper around the real train script at a chosen moment; Ctrl-C is a real SIGINT
sent while the run is inside its checkpoint save; a read-only folder is a real ``chmod``
(for root, run without ``CAP_DAC_OVERRIDE``).
"""

from __future__ import annotations

import ctypes
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT, config_with, wait_for
from model_use_fixtures import FAST, train_run

from pyimagesearch.run.checkpoints import list_checkpoints, read_manifest
from pyimagesearch.run.logs import parse_log, read_metrics
from pyimagesearch.training.loop import StopFlag

TRAIN = str(REPO_ROOT / "train_googlenet.py")


@pytest.fixture(scope="module")
def small_config(tiny_dataset_config, tmp_path_factory) -> str:
    """The tiny dataset with a depth-8 ResNet: an epoch in about a second."""
    folder = tmp_path_factory.mktemp("write_faults_config")
    return str(config_with(tiny_dataset_config, folder / "config.py", **FAST,
                           MODEL="cifar_resnet", MODEL_PARAMS={"depth": 8, "shortcut": "A"}))


def run_script(tmp_path: Path, source: str, *args: str) -> subprocess.Popen:
    script = tmp_path / "wrapped_train.py"
    script.write_text(source + f"sys.argv = [{TRAIN!r}] + sys.argv[1:]\n"
                      f"runpy.run_path({TRAIN!r}, run_name='__main__')\n")
    return subprocess.Popen([sys.executable, str(script), *args], cwd=REPO_ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(REPO_ROOT),
                                 "PYTHONUNBUFFERED": "1"})


# --- a full disk while appending the metrics record or a log line --------------------------

# After epoch ``{epoch}``'s checkpoint the "disk" fills: the metrics file may grow by 16
# more bytes (its record then fails half-written), or the log by 40 (a line of the next
# epoch fails half-written).
DISK_FILLS = """
import resource, runpy, signal, sys
from pathlib import Path
from pyimagesearch.training import loop
original, calls = loop.append_metrics, []
def filling(path, record):
    calls.append(record)
    if {what!r} == "metrics" and len(calls) == 2:
        limit(Path(path).stat().st_size + 16)
    original(path, record)
    if {what!r} == "log" and len(calls) == 1:
        log = Path(path).parent / "training_0.log"
        limit(log.stat().st_size + 40)
def limit(size):
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
loop.append_metrics = filling
"""


# The file-size limit covers shared memory too, so the run must end before it would start
# another epoch's decoding process (the log case: epoch 1 is the last).
@pytest.mark.parametrize(("what", "resume", "end"), [("metrics", 2, 3), ("log", 1, 2)])
def test_a_full_disk_on_a_metrics_or_log_append_stops_with_the_resume_command(
        small_config, tmp_path, what, resume, end):
    run = tmp_path / "run"
    process = run_script(tmp_path, DISK_FILLS.format(what=what), "--config", small_config,
                         "--checkpoints", str(run), "--prefix", "net", "--end-epoch", str(end))
    out, err = process.communicate(timeout=300)
    assert process.returncode == 2, err
    failed = run / ("net-metrics.jsonl" if what == "metrics" else "training_0.log")
    assert (f"[ERROR] could not write {failed} ([Errno 27] File too large: the disk is full, "
            f"or a quota or a file-size limit (ulimit -f) was reached)") in err
    assert f"[INFO] resume with: {sys.executable} {TRAIN} --config" in err
    assert err.rstrip().endswith(f"--end-epoch {end} --start-epoch {resume}")
    assert "Traceback" not in err
    # Every complete checkpoint verifies; neither file ends in half a line.
    assert list_checkpoints(run, "net") == list(range(1, resume + 1))
    for epoch in list_checkpoints(run, "net"):
        read_manifest(run, "net", epoch)
    for path in (run / "net-metrics.jsonl", run / "training_0.log"):
        assert path.read_text().endswith("\n")
    assert [r["epoch"] for r in read_metrics(run / "net-metrics.jsonl")] == [0]
    if what == "metrics":
        assert "checkpoint 2 is complete, only epoch 1's line is missing" in err
    else:
        assert sorted(parse_log(run / "training_0.log").epochs) == [0, 1]  # 1: begun


# --- Ctrl-C twice (or three times) during a checkpoint save ------------------------------------

# Holds the run inside its first save, after the symbol file is in place and before the
# weights are, and reports in a status file how many signals the run's handler has seen.
# With {finish} signals seen the save goes on; the signal that the handler turns into
# KeyboardInterrupt (the third) raises in here, as it would in any line of the save.
HELD_IN_SAVE = """
import runpy, signal, sys, time
from pathlib import Path
from pyimagesearch.run import checkpoints
original = checkpoints.commit_file
def held(temporary, final):
    if str(final).endswith(".params"):
        flag, status, seen = signal.getsignal(signal.SIGINT), Path({status!r}), -1
        while seen < {finish}:
            count = (flag.signum is not None) + flag.repeated_while_saving + flag.forced
            if count != seen:
                seen = count
                status.write_text(str(count))
            time.sleep(0.01)
    original(temporary, final)
checkpoints.commit_file = held
"""


def signal_when(process: subprocess.Popen, status: Path, counts: range) -> None:
    """Send SIGINT each time the status file shows the previous one was handled."""
    for count in counts:
        wait_for(lambda c=count: status.exists() and status.read_text() == str(c),
                 f"the run to have seen {count} signal(s)", process)
        process.send_signal(signal.SIGINT)


@pytest.mark.parametrize("signals", [2, 3])
def test_ctrl_c_during_a_save_completes_it_or_leaves_nothing_that_looks_complete(
        small_config, tmp_path, signals):
    run, status = tmp_path / "run", tmp_path / "status"
    process = run_script(tmp_path, HELD_IN_SAVE.format(status=str(status), finish=signals),
                         "--config", small_config, "--checkpoints", str(run), "--prefix",
                         "net", "--end-epoch", "3")
    try:
        signal_when(process, status, range(signals))
        out, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 128 + signal.SIGINT, err
    assert "Traceback" not in err
    assert not [p for p in run.iterdir() if ".tmp" in p.name or ".partial-" in p.name]
    if signals == 2:
        assert ("a second signal came while checkpoint 1 was being saved, which was finished "
                "first; the last complete checkpoint is epoch 1") in err
        assert err.rstrip().endswith("--end-epoch 3 --start-epoch 1")
        assert list_checkpoints(run, "net") == [1]
        read_manifest(run, "net", 1)
    else:
        assert ("a third signal abandoned the save of checkpoint 1, which does not count; no "
                "checkpoint was written yet") in err
        assert list_checkpoints(run, "net") == [] and not (run / "net-0001.json").exists()
        assert "resume with" not in err


# --- a read-only checkpoint folder when test_*.py saves its result -----------------------------

def _without_dac_override() -> None:
    """For root: drop the capability that writes through a read-only mode (children too)."""
    pr_capbset_drop, cap_dac_override = 24, 1
    if ctypes.CDLL(None, use_errno=True).prctl(pr_capbset_drop, cap_dac_override, 0, 0, 0):
        raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


# Both forms of test_googlenet.py in one process (one MXNet start), each exit status
# printed after its output.
EVALUATE_TWICE = """
import sys
import test_googlenet
for which in (["--epoch", "1"], ["--all-epochs"]):
    code = test_googlenet.main([*sys.argv[1:], *which])
    print(f"=== exit {code}", flush=True)
"""


def each_run(text: str) -> list[tuple[str, str]]:
    """(output, exit status) of each evaluation of EVALUATE_TWICE."""
    parts = re.split(r"^=== exit (\d+)\n", text, flags=re.MULTILINE)
    return list(zip(parts[0::2], parts[1::2]))


def test_a_read_only_folder_prints_the_result_then_names_the_file_it_could_not_write(
        small_config, tmp_path):
    run = train_run(small_config, tmp_path / "run", "net", end_epoch=1)
    before = sorted(p.name for p in run.iterdir())
    run.chmod(0o555)
    try:
        result = subprocess.run(
            [sys.executable, "-c", EVALUATE_TWICE, "--config", small_config,
             "--checkpoints", str(run), "--prefix", "net"],
            cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            timeout=300, env={**os.environ, "PYTHONPATH": str(REPO_ROOT),
                              "PYTHONUNBUFFERED": "1"},  # the two streams in their order
            preexec_fn=_without_dac_override if os.geteuid() == 0 else None)
    finally:
        run.chmod(0o755)
    assert result.returncode == 0, result.stdout
    runs = each_run(result.stdout)
    assert [code for _, code in runs] == ["5", "5"], result.stdout
    for which, (output, _) in zip(("--epoch", "--all-epochs"), runs):
        lines = output.splitlines()
        assert "Traceback" not in output
        written = run / ("net-0001-test.json" if which == "--epoch" else "net-0001-val.json")
        # The figures first, then one line naming the file that could not be written.
        assert lines[-4].startswith("[INFO] rank-1: ") and lines[-3].startswith("[INFO] rank-5")
        assert lines[-1] == (
            f"[ERROR] could not write {written} ([Errno 13] Permission denied: {run} is "
            f"read-only or not writable by this user)"
            + (" (and 2 more file(s))" if which == "--all-epochs" else "")
            + "; the figures above were not saved")
    assert sorted(p.name for p in run.iterdir()) == before


def test_the_stop_flag_lets_a_save_finish_before_a_repeated_signal_counts():
    outside = StopFlag()
    outside(signal.SIGTERM, None)
    assert outside.signum == signal.SIGTERM  # the first: stop after the step
    with pytest.raises(KeyboardInterrupt):
        outside(signal.SIGINT, None)  # the second, outside a save: at once
    outside(signal.SIGINT, None)  # later ones find the run already stopping

    saving = StopFlag()
    saving.saving = True
    saving(signal.SIGINT, None)
    saving(signal.SIGINT, None)  # the second waits for the save
    assert saving.repeated_while_saving and not saving.forced
    with pytest.raises(KeyboardInterrupt):
        saving(signal.SIGINT, None)  # the third abandons it
