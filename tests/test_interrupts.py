"""Ctrl-C and stalled decoding, on real trainings: SIGINT to the process group ends a run
within seconds in every phase, with its usual message and exit status 130, and a decoding
process that stalls stops the run in one line within DECODE_TIMEOUT; nothing is left.

A phase is held by a wrapper around the real train script until the run's handler has seen
the signal (then it goes on as it would); a stall is a decoding process that stops itself
(SIGSTOP, as a hung network read or a frozen container looks) before its first batch.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mxnet as mx
import pytest
from conftest import DEADLINE, REPO_ROOT, LineReader, config_with, wait_for
from model_use_fixtures import FAST
from test_decoder import group_members, shared_memory_names

from pyimagesearch.data.decoder import STOP_GRACE
from pyimagesearch.training.loop import StopFlag, fit, stop_on_ctrl_c

pytestmark = pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads processes from /proc")

# Runs train_googlenet.py's main; the decoding processes import it too (as __mp_main__),
# which is where a stall or a slow start of epoch 1's training process is put.
WRAPPER = """
import multiprocessing, os, signal, sys, time
from pathlib import Path

import mxnet as mx

import train_googlenet
from pyimagesearch.data import decoder
from pyimagesearch.training import experiment, loop

STATUS, PHASE = Path({status!r}), {phase!r}


def hold(module, name):
    original = getattr(module, name)

    def held(*args, **kwargs):
        if not STATUS.exists():
            STATUS.write_text(PHASE)
            # In the phase, doing what it does (arrays made and dropped), until the run's
            # handler has seen the signal; then the phase goes on as it would have.
            end = time.monotonic() + 300
            while getattr(signal.getsignal(signal.SIGINT), "signum", None) is None:
                assert time.monotonic() < end, "no signal came"
                mx.nd.ones((256,)).asnumpy()
                time.sleep(0.005)
        return original(*args, **kwargs)
    setattr(module, name, held)


if __name__ == "__mp_main__" and \\
        multiprocessing.current_process().name == "decode training epoch 1":
    if PHASE == "decoder start":  # still importing this script: signals not yet ignored
        STATUS.write_text(PHASE)
        end = time.monotonic() + 300
        while time.monotonic() < end:
            time.sleep(0.01)
    elif PHASE in ("decoding", "stall"):
        original = decoder._decode

        def stalled(*args):
            STATUS.write_text(PHASE)
            os.kill(os.getpid(), signal.SIGSTOP)
            original(*args)
        decoder._decode = stalled

if __name__ == "__main__":
    where = {{"start-up": (experiment, "build_network"), "step": (loop, "_backward"),
              "validation": (loop, "evaluate"), "save": (loop, "save_checkpoint")}}
    if PHASE in where:
        hold(*where[PHASE])
    sys.exit(train_googlenet.main())
"""


@pytest.fixture(scope="module")
def small_config(tiny_dataset_config, tmp_path_factory) -> str:
    """The tiny dataset with a depth-8 ResNet (an epoch in about a second), and stalls
    reported after 0.5 s x 32 images."""
    folder = tmp_path_factory.mktemp("interrupts_config")
    return str(config_with(tiny_dataset_config, folder / "config.py", **FAST,
                           MODEL="cifar_resnet", MODEL_PARAMS={"depth": 8, "shortcut": "A"},
                           DECODE_TIMEOUT=0.5))


class Run:
    """A training under the wrapper, in a process group of its own."""

    def __init__(self, tmp_path: Path, config: str, phase: str) -> None:
        self.status, self.folder = tmp_path / "status", tmp_path / "run"
        script = tmp_path / "wrapped_train.py"
        script.write_text(WRAPPER.format(status=str(self.status), phase=phase))
        self.process = subprocess.Popen(
            [sys.executable, str(script), "--config", config, "--checkpoints",
             str(self.folder), "--prefix", "net", "--end-epoch", "3"],
            cwd=REPO_ROOT, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True, env={**os.environ, "PYTHONPATH": str(REPO_ROOT),
                                         "PYTHONUNBUFFERED": "1"})
        self.out, self.err = LineReader(self.process.stdout), LineReader(self.process.stderr)

    def wait_for_status(self) -> None:
        wait_for(self.status.exists, "the phase", process=self.process)

    def interrupt(self) -> float:
        """SIGINT to the group, as a terminal sends it; the seconds until the run exited."""
        os.killpg(self.process.pid, signal.SIGINT)
        sent = time.monotonic()
        self.process.wait(DEADLINE)
        return time.monotonic() - sent

    def finish(self) -> str:
        """stderr, once every process of the group is gone; nothing of it may be left."""
        try:
            wait_for(lambda: not group_members(self.process.pid), "an empty process group")
        finally:
            for pid in group_members(self.process.pid):
                os.kill(pid, signal.SIGKILL)
        assert not shared_memory_names(self.process.pid)
        return "\n".join(self.err.rest())


# What each phase's Ctrl-C prints (the run's usual messages).
STOPPED = {
    "start-up": "[INFO] stopped before training began; no checkpoint was written",
    "decoder start": "[INFO] stopped: SIGINT received during epoch 0, batch 0; no checkpoint "
                     "was written yet",
    "step": "[INFO] stopped: SIGINT received during epoch 0, batch 1; no checkpoint was "
            "written yet",
    "decoding": "[INFO] stopped: SIGINT received during epoch 1, batch 0; the last complete "
                "checkpoint is epoch 1",
    "validation": "[INFO] stopped: SIGINT received during epoch 0, batch 4; the last complete "
                  "checkpoint is epoch 1",
    "save": "[INFO] stopped: SIGINT received during epoch 0, batch 4; the last complete "
            "checkpoint is epoch 1",
}


@pytest.mark.slow
@pytest.mark.parametrize("phase", STOPPED)
def test_ctrl_c_ends_the_run_within_seconds_in_every_phase(small_config, tmp_path, phase):
    run = Run(tmp_path, small_config, phase)
    try:
        run.wait_for_status()
        if phase == "decoding":  # epoch 1's process stopped itself: its first batch never comes
            run.out.wait_for("Epoch[1] Learning-rate")
        seconds = run.interrupt()
    finally:
        if run.process.poll() is None:
            os.killpg(run.process.pid, signal.SIGKILL)
    err = run.finish()
    assert run.process.returncode == 128 + signal.SIGINT, err
    assert STOPPED[phase] in err
    assert "Traceback" not in err and "DecoderError" not in err and "[ERROR]" not in err
    # Seconds: the grace a stalled process gets, and the closing of the processes.
    assert seconds < STOP_GRACE + 30, f"{seconds:.0f} s after the signal"


@pytest.mark.slow
def test_a_stalled_decoding_process_stops_the_run_in_one_line_within_the_deadline(
        small_config, tmp_path):
    run = Run(tmp_path, small_config, "stall")
    try:
        run.wait_for_status()
        run.out.wait_for("Epoch[1] Learning-rate")
        began = time.monotonic()
        run.process.wait(DEADLINE)
        seconds = time.monotonic() - began
    finally:
        if run.process.poll() is None:
            os.killpg(run.process.pid, signal.SIGKILL)
    err = run.finish()
    assert run.process.returncode == 2, err
    lines = [line for line in err.splitlines() if line.startswith("[ERROR]")]
    assert len(lines) == 1 and err.rstrip().endswith(lines[0]), err
    assert lines[0].startswith("[ERROR] the process decoding training epoch 1 (pid ")
    assert ", stopped) has sent nothing for " in lines[0]
    assert "(DECODE_TIMEOUT 0.5 s x 32 images): it is stopped or hung; check that the " \
           "records' filesystem answers" in lines[0]
    assert "Traceback" not in err
    # The deadline is 16 s; closing the processes adds a few.
    assert seconds < 16 + 30, f"{seconds:.0f} s"


class _Dropped:
    """An object whose finalizer is where Python runs the signal handler."""

    def __del__(self) -> None:
        signal.raise_signal(signal.SIGINT)
        mx.nd.zeros((1,))  # bytecode: the handler runs here, inside the finalizer


def test_a_ctrl_c_swallowed_by_a_finalizer_still_stops_the_start_up(monkeypatch):
    """Python's own handler raises KeyboardInterrupt wherever the main thread is; inside a
    finalizer (MXNet's NDArray.__del__ runs for every array dropped) it is printed as
    "Exception ignored" and lost. The run's flag notes the signal, and ``fit`` raises it
    again before the first epoch."""
    lost: list[type] = []
    monkeypatch.setattr(sys, "unraisablehook", lambda unraisable: lost.append(
        type(unraisable.exc_value)))
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _Dropped()  # no KeyboardInterrupt comes out of this line
    finally:
        signal.signal(signal.SIGINT, previous)
    assert lost == [KeyboardInterrupt]
    with stop_on_ctrl_c() as stop:
        _Dropped()
        assert lost == [KeyboardInterrupt] * 2 and stop.requested()
        with pytest.raises(KeyboardInterrupt):
            fit(None, 0, 1, None, None, 0, None, {}, "", "", "", stop=stop)


def test_signals_after_the_loop_are_noted_only():
    flag = StopFlag(starting=True)
    with pytest.raises(KeyboardInterrupt):
        flag(signal.SIGINT, None)
    with pytest.raises(KeyboardInterrupt):
        flag(signal.SIGINT, None)  # before the loop, every one stops at once
    flag.starting, flag.closing = False, True
    flag(signal.SIGINT, None)
    flag(signal.SIGINT, None)  # the run is closing: no KeyboardInterrupt into its cleanup
    assert flag.signum == signal.SIGINT and not flag.forced
