"""Decoding in a process per epoch (pyimagesearch.data.decoder): the very batches the trainer's
own iterators give, clear errors, bounded waits, and no process or shared memory left behind."""

from __future__ import annotations

import multiprocessing
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from conftest import REPO_ROOT

from pyimagesearch.config import load_config
from pyimagesearch.data import decoder
from pyimagesearch.data.dataset import check_dataset
from pyimagesearch.data.decoder import (
    STOP_GRACE,
    DecoderError,
    DecodingStopped,
    EpochDecoders,
    ProcessIter,
    SlotLayout,
    segment_prefix,
)
from pyimagesearch.data.iterators import (
    evaluation_iterator_params,
    record_iterator,
    training_iterator_params,
)

SHM = Path("/dev/shm")


@pytest.fixture(scope="module")
def data(tiny_dataset_config):
    config = load_config(str(tiny_dataset_config))
    return config, check_dataset(config, ("train", "val"))


def batches(data_iter) -> list[tuple[np.ndarray, np.ndarray, int]]:
    return [(b.data[0].asnumpy(), b.label[0].asnumpy(), b.pad) for b in data_iter]


def assert_same(got, expected) -> None:
    assert len(got) == len(expected) > 0
    for (data, label, pad), (data_e, label_e, pad_e) in zip(got, expected):
        assert data.dtype == data_e.dtype == np.uint8
        np.testing.assert_array_equal(data, data_e)
        np.testing.assert_array_equal(label, label_e)
        assert pad == pad_e


def shared_memory_names(pid: int | None = None) -> set[str]:
    """The shared memory in /dev/shm that process ``pid`` (this one) created: another
    program's, or another test run's, is none of these tests' business."""
    prefix = segment_prefix(os.getpid() if pid is None else pid)
    return {p.name for p in SHM.glob(f"{prefix}*")} if SHM.is_dir() else set()


@pytest.mark.skipif(not SHM.is_dir(), reason="no /dev/shm")
def test_shared_memory_names_tell_the_process_that_made_them():
    memory = decoder._create_shared_memory(4096, "a test")
    try:
        assert shared_memory_names() == {memory.name}  # what the checks below look for
        assert len(memory.name) <= 14
    finally:
        memory.close()
        memory.unlink()
    assert shared_memory_names() == set()


def test_a_process_decodes_exactly_what_the_iterators_give_in_the_trainer(data):
    config, info = data
    cases = {
        # two interleaved streams of 16 records, batch 12: each ends with a wrapped batch
        "streams": training_iterator_params(config, info, 12, epoch=2, seed=5, streams=2),
        "worker part": training_iterator_params(config, info, 8, epoch=2, seed=5, num_parts=2,
                                                part_index=1),
        "validation": evaluation_iterator_params(config, info, "val", 8),
    }
    pads = []
    for name, params in cases.items():
        expected = batches(record_iterator(params))
        decoded = ProcessIter(params, name)
        assert_same(batches(decoded), expected)
        assert next(decoded, None) is None  # stays exhausted
        decoded.close()
        pads += [pad for *_, pad in expected]
    assert max(pads) > 0  # the wrap-around was part of it


def test_epochs_are_started_ahead_and_every_process_is_closed(data):
    config, info = data
    before = shared_memory_names()
    params = lambda epoch: training_iterator_params(config, info, 8, epoch, seed=5)  # noqa: E731
    validation = evaluation_iterator_params(config, info, "val", 8)
    with EpochDecoders(params, validation, range(3, 5)) as decoders:
        assert_same(batches(decoders.train(3)), batches(record_iterator(params(3))))
        assert_same(batches(decoders.validation()), batches(record_iterator(validation)))
        assert len(multiprocessing.active_children()) == 4  # epoch 4's are under way
        assert_same(batches(decoders.train(4)), batches(record_iterator(params(4))))
        assert len(multiprocessing.active_children()) == 2  # epoch 3's are gone
        assert shared_memory_names() == before  # unlinked once the processes attached
    assert multiprocessing.active_children() == []

    with pytest.raises(KeyError), EpochDecoders(params, None, range(10)) as decoders:
        next(decoders.train(0))
        raise KeyError("a failure in the loop")
    assert multiprocessing.active_children() == []
    with pytest.raises(RuntimeError, match="validation"):
        EpochDecoders(params, None, range(1)).validation()


def test_a_process_that_dies_or_fails_raises_a_clear_error(data, tmp_path):
    config, info = data
    decoded = ProcessIter(training_iterator_params(config, info, 8, 0, seed=5), "epoch 0",
                          slots=1)
    next(decoded)
    os.kill(decoded.process.pid, signal.SIGKILL)
    with pytest.raises(DecoderError, match=r"the process decoding epoch 0 \(pid \d+\) was "
                                           r"killed by SIGKILL"):
        for _ in decoded:
            pass
    decoded.close()

    broken = tmp_path / "broken.rec"
    broken.write_bytes(b"not a record file at all")
    params = training_iterator_params(config, info, 8, 0, seed=5)
    params = [{**p, "path_imgrec": str(broken)} for p in params]
    with pytest.raises(DecoderError, match="broken records"):
        list(ProcessIter(params, "broken records"))
    assert multiprocessing.active_children() == []


def stalled_after_one_batch(params, **options) -> ProcessIter:
    """A process stopped (SIGSTOP: a hung network read, a frozen container) after its first
    batch; with one slot it cannot have decoded more than the next."""
    decoded = ProcessIter(params, "training epoch 0", slots=1, **options)
    next(decoded)
    os.kill(decoded.process.pid, signal.SIGSTOP)
    return decoded


def test_a_stalled_process_is_reported_in_one_line_within_the_deadline(data):
    config, info = data
    decoded = stalled_after_one_batch(training_iterator_params(config, info, 8, 0, seed=5),
                                      timeout=0.1)  # 0.1 s x 32 images
    began = time.monotonic()
    try:
        with pytest.raises(DecoderError) as caught:
            for _ in decoded:
                pass
    finally:
        decoded.close()  # also kills a stopped process
    assert 3.2 <= time.monotonic() - began < 3.2 + 60
    assert re.fullmatch(r"the process decoding training epoch 0 \(pid \d+, stopped\) has sent "
                        r"nothing for \d+ s \(DECODE_TIMEOUT 0.1 s x 32 images\): it is "
                        r"stopped or hung; check that the records' filesystem answers and that "
                        r"the machine is not frozen or swamped \(or raise DECODE_TIMEOUT\); "
                        r"resume from the last checkpoint", str(caught.value))
    assert multiprocessing.active_children() == []


def test_a_trainer_that_is_stopping_gives_a_stalled_process_seconds(data):
    config, info = data
    stopping = [False]
    decoded = stalled_after_one_batch(training_iterator_params(config, info, 8, 0, seed=5),
                                      stopping=lambda: stopping[0])
    stopping[0] = True
    began = time.monotonic()
    try:
        with pytest.raises(DecodingStopped, match="the process decoding training epoch 0"):
            for _ in decoded:
                pass
    finally:
        decoded.close()
    assert STOP_GRACE <= time.monotonic() - began < STOP_GRACE + 60  # not the 64 s deadline
    assert multiprocessing.active_children() == []


def test_closing_while_a_traceback_holds_a_batch_is_clean(data, monkeypatch):
    """A Ctrl-C inside next() leaves a slot's pixels referenced by the traceback's frames;
    closing the iterator then must neither fail nor leave anything behind."""
    config, info = data
    decoded = ProcessIter(training_iterator_params(config, info, 8, 0, seed=5), "epoch 0")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt
    monkeypatch.setattr(decoder.mx.nd, "array", interrupted)
    with pytest.raises(KeyboardInterrupt) as caught:
        next(decoded)
    decoded.close()
    assert caught.value.__traceback__ is not None  # still holding the frames
    assert multiprocessing.active_children() == []
    assert shared_memory_names() == set()


def test_too_little_shared_memory_says_what_the_run_needs_and_how_to_get_it(data,
                                                                             monkeypatch):
    config, info = data
    params = lambda epoch: training_iterator_params(config, info, 8, epoch, seed=5)  # noqa: E731
    validation = evaluation_iterator_params(config, info, "val", 8)
    statvfs = os.statvfs
    monkeypatch.setattr(os, "statvfs", lambda path: SimpleNamespace(f_bavail=4, f_frsize=4096)
                        if str(path) == str(SHM) else statvfs(path))  # 16 KiB free
    needs = [SlotLayout.of(p[0]).total_bytes for p in (params(0), validation)]
    with pytest.raises(DecoderError) as caught, EpochDecoders(params, validation,
                                                             range(3)) as decoders:
        decoders.train(0)
    assert str(caught.value) == (
        f"/dev/shm has 0.02 MiB free, but decoding needs {needs[0] / 2**20:.2f} MiB of shared "
        f"memory for the batches of training epoch 0, and the run "
        f"{2 * sum(needs) / 2**20:.2f} MiB at once (the batches of this epoch, the next and "
        f"validation): give the container more (docker run --shm-size=64m) or lower "
        f"BATCH_SIZE")
    assert multiprocessing.active_children() == []


def test_shared_memory_that_cannot_be_had_is_a_clear_error(data):
    """A file-size limit (ulimit -f) also limits shared memory: refused by name, no crash."""
    import resource

    config, info = data
    params = training_iterator_params(config, info, 8, 0, seed=5)
    previous = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1024, previous[1]))
    try:
        with pytest.raises(DecoderError, match=r"could not create [\d.]+ MiB of shared memory "
                                               r"for the batches of epoch 0: File too large"):
            ProcessIter(params, "epoch 0")
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, previous)
        signal.signal(signal.SIGXFSZ, handler)
    assert multiprocessing.active_children() == []


# A trainer's loop as the training loop watches for signals: Python's own handler raises
# KeyboardInterrupt wherever the main thread is, and one that lands in a finalizer (MXNet's
# NDArray.__del__, run for every batch dropped) is lost (tests/test_interrupts.py).
CTRL_C_SCRIPT = """
import sys
import pyimagesearch
from pyimagesearch.config import load_config
from pyimagesearch.data.decoder import EpochDecoders
from pyimagesearch.data.dataset import check_dataset
from pyimagesearch.data.iterators import training_iterator_params
from pyimagesearch.training.loop import stop_on_signals

if __name__ == "__main__":
    config = load_config(sys.argv[1])
    info = check_dataset(config, ("train",))
    params = lambda epoch: training_iterator_params(config, info, 8, epoch, seed=5)
    with stop_on_signals() as stop, \\
            EpochDecoders(params, None, range(10**6), stopping=stop.requested) as decoders:
        for epoch in range(10**6):
            for batch in decoders.train(epoch):
                print("batch", flush=True)
                if stop.requested():
                    raise KeyboardInterrupt
"""


def group_members(group: int) -> list[int]:
    members = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == group:
                    members.append(int(entry.name))
            except ProcessLookupError:
                pass
    return members


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads processes from /proc")
@pytest.mark.parametrize("how", ["ctrl-c to the group", "SIGKILL to the trainer"])
def test_no_process_or_shared_memory_outlives_the_trainer(tiny_dataset_config, how):
    process = subprocess.Popen([sys.executable, "-c", CTRL_C_SCRIPT, str(tiny_dataset_config)],
                               cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, start_new_session=True,
                               env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    try:
        assert process.stdout.readline() == "batch\n", process.communicate()
        assert len(group_members(process.pid)) >= 4  # fork server, decoders, tracker
        if how == "ctrl-c to the group":
            os.killpg(process.pid, signal.SIGINT)  # what a terminal sends
            _, err = process.communicate(timeout=60)
            assert "KeyboardInterrupt" in err and "DecoderError" not in err
        else:
            process.kill()
            process.wait(timeout=60)
        deadline = time.time() + 60
        while group_members(process.pid):
            assert time.time() < deadline, f"left running: {group_members(process.pid)}"
            time.sleep(0.1)
    finally:
        if group_members(process.pid):
            os.killpg(process.pid, signal.SIGKILL)
    assert shared_memory_names(process.pid) == set()
