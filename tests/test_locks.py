"""One writer per folder: the lock, two trainings or two builds at once, a crash's leftovers.

Every second writer here is refused while the first really runs (a subprocess, held at a
known point by a wrapper script), and every crash is a real SIGKILL.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
from conftest import REPO_ROOT, config_with, make_ilsvrc_tree, wait_for, write_config
from model_use_fixtures import FAST

import build_imagenet
import train_googlenet
from pyimagesearch.config import load_config
from pyimagesearch.data.dataset import load_manifest
from pyimagesearch.locks import BUILD_LOCK_NAME, FolderBusy, FolderLock, LockError
from pyimagesearch.run.checkpoints import list_checkpoints, read_manifest


def holder_pid(lock_file: Path) -> int | None:
    try:
        return int(json.loads(lock_file.read_text())["pid"])
    except (OSError, ValueError, KeyError):
        return None


def start(script: Path, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(script), *args], cwd=REPO_ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})


def kill(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=60)


def run_quietly(main: Callable[[list[str]], int], *args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(list(args))
    return code, out.getvalue(), err.getvalue()


# --- the lock itself ------------------------------------------------------------------------

def test_the_lock_names_its_holder_and_a_second_writer_is_refused(tmp_path):
    with FolderLock(tmp_path / "run", ".net.lock", "the training 'net'") as lock:
        written = json.loads(lock.path.read_text())
        assert written["pid"] == os.getpid() and written["host"] == socket.gethostname()
        assert written["command"].startswith(sys.executable) and written["started"]
        # A second writer (another open file: flock excludes it even in this process).
        with pytest.raises(FolderBusy) as refused:
            FolderLock(tmp_path / "run", ".net.lock", "the training 'net'").acquire()
        message = str(refused.value)
        assert "\n" not in message
        assert f"{tmp_path / 'run'} is in use: the training 'net' is already running" in message
        assert f"pid {os.getpid()} on {socket.gethostname()} since {written['started']}" \
            in message
        # Another prefix in the same folder is another run.
        with FolderLock(tmp_path / "run", ".other.lock", "the training 'other'"):
            pass
    assert not lock.path.exists()  # removed by its holder, then free again
    FolderLock(tmp_path / "run", ".net.lock", "the training 'net'").acquire().release()


def test_a_folder_that_cannot_be_written_is_one_clear_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(LockError, match=r"cannot create the lock file .*file/run/\.net\.lock"):
        FolderLock(blocker / "run", ".net.lock", "the training 'net'").acquire()


# --- two trainings on one folder and prefix -------------------------------------------------

# The real train script, held inside its first checkpoint save (the optimizer state is
# written under its temporary name, nothing renamed yet) until the test kills it.
HELD_IN_SAVE = """
import os, runpy, sys, threading
from pathlib import Path
from pyimagesearch.run import checkpoints
original = checkpoints.save_optimizer_state
def held(trainer, path):
    counters = original(trainer, path)
    Path({marker!r}).write_text(str(os.getpid()))
    threading.Event().wait()
checkpoints.save_optimizer_state = held
sys.argv = [{script!r}] + sys.argv[1:]
runpy.run_path({script!r}, run_name="__main__")
"""


@pytest.fixture(scope="module")
def small_config(tiny_dataset_config, tmp_path_factory) -> str:
    """The tiny dataset with a depth-8 ResNet: an epoch in about a second."""
    folder = tmp_path_factory.mktemp("locks_config")
    return str(config_with(tiny_dataset_config, folder / "config.py", **FAST,
                           MODEL="cifar_resnet", MODEL_PARAMS={"depth": 8, "shortcut": "A"}))


def test_a_second_training_of_the_folder_is_refused_and_a_crash_leaves_nothing_stale(
        small_config, tmp_path):
    run, marker = tmp_path / "run", tmp_path / "saving"
    script = tmp_path / "held_in_save.py"
    script.write_text(HELD_IN_SAVE.format(marker=str(marker),
                                          script=str(REPO_ROOT / "train_googlenet.py")))
    arguments = ["--config", small_config, "--checkpoints", str(run), "--prefix", "net"]
    first = start(script, *arguments, "--end-epoch", "2")
    try:
        lock_file = run / ".net.lock"
        wait_for(lambda: holder_pid(lock_file) == first.pid, "lock naming the first run",
                 first)

        code, _, err = run_quietly(train_googlenet.main, *arguments, "--end-epoch", "1")
        assert code == 2
        assert err.startswith(f"[ERROR] {run} is in use: the training 'net' is already "
                              f"running there (pid {first.pid} on {socket.gethostname()} since ")
        assert "train_googlenet.py --config" in err and err.count("\n") == 1

        wait_for(marker.exists, "first checkpoint save under way", first)
        # The refused run wrote nothing: the one log is the first run's.
        assert sorted(p.name for p in run.glob("training_*.log")) == ["training_0.log"]
        kill(first)
    finally:
        if first.poll() is None:
            kill(first)
    leftovers = sorted(p.name for p in run.glob(f".net.tmp{first.pid}-*"))
    assert leftovers == [f".net.tmp{first.pid}-{name}"
                         for name in ("0001.params", "0001.states", "symbol.json")]
    assert holder_pid(lock_file) == first.pid  # the dead holder's file, its lock released
    assert list_checkpoints(run, "net") == []

    # The next start takes the lock over and removes the killed save's files.
    code, _, err = run_quietly(train_googlenet.main, *arguments, "--end-epoch", "1")
    assert code == 0, err
    assert not list(run.glob(".net.tmp*")) and not lock_file.exists()
    assert list_checkpoints(run, "net") == [1]
    read_manifest(run, "net", 1)


# --- two builds into one folder -------------------------------------------------------------

# The real build script, held after packing the training split (its .partial-<pid> files
# written) until the test kills it.
HELD_IN_BUILD = """
import sys, threading
from pathlib import Path
sys.path.insert(0, {repo!r})
from pyimagesearch.data.build import builder as build
original = build.pack_records
def held(*args, **kwargs):
    result = original(*args, **kwargs)
    Path({marker!r}).write_text("packed")
    threading.Event().wait()
build.pack_records = held
import build_imagenet
sys.exit(build_imagenet.main(["--config", {config!r}]))
"""


def test_a_second_build_into_the_folder_is_refused_and_a_crash_leaves_nothing_stale(tmp_path):
    tree = make_ilsvrc_tree(tmp_path / "ILSVRC2015")
    out, marker = tmp_path / "out", tmp_path / "packed"
    config = write_config(tmp_path / "c.py", tree.base, out)
    script = tmp_path / "held_in_build.py"
    script.write_text(HELD_IN_BUILD.format(repo=str(REPO_ROOT), marker=str(marker),
                                           config=str(config)))
    first = start(script)
    try:
        # Records and lists lie in two folders: the build holds both.
        locks = [out / "lists" / BUILD_LOCK_NAME, out / "rec" / BUILD_LOCK_NAME]
        wait_for(lambda: all(holder_pid(lock) == first.pid for lock in locks),
                 "build locks naming the first build", first)
        code, _, err = run_quietly(build_imagenet.main, "--config", str(config))
        assert code == 2
        assert err.startswith(f"error: {out / 'lists'} is in use: a dataset build is already "
                              f"running there (pid {first.pid} on ")
        wait_for(marker.exists, "first build's training split packed", first)
        kill(first)
    finally:
        if first.poll() is None:
            kill(first)
    partials = sorted(p.name for p in out.rglob(f"*.partial-{first.pid}"))
    assert {"train.lst.partial", "train.rec.partial", "train.idx.partial"} <= \
        {name.rsplit("-", 1)[0] for name in partials}

    code, _, err = run_quietly(build_imagenet.main, "--config", str(config))
    assert code == 0, err
    assert not list(out.rglob("*.partial-*"))
    assert not [lock for lock in locks if lock.exists()]
    load_manifest(load_config(str(config)))
