"""Decoding in a process per epoch (pyimagesearch.data.decoder): the very batches the trainer's
own iterators give, clear errors, and no process or shared memory left behind."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO_ROOT

from pyimagesearch.config import load_config
from pyimagesearch.data.dataset import check_dataset
from pyimagesearch.data.decoder import DecoderError, EpochDecoders, ProcessIter
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


def shared_memory_names() -> set[str]:
    return {p.name for p in SHM.glob("psm_*")} if SHM.is_dir() else set()


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


CTRL_C_SCRIPT = """
import sys
import pyimagesearch
from pyimagesearch.config import load_config
from pyimagesearch.data.decoder import EpochDecoders
from pyimagesearch.data.dataset import check_dataset
from pyimagesearch.data.iterators import training_iterator_params

if __name__ == "__main__":
    config = load_config(sys.argv[1])
    info = check_dataset(config, ("train",))
    params = lambda epoch: training_iterator_params(config, info, 8, epoch, seed=5)
    with EpochDecoders(params, None, range(10**6)) as decoders:
        for epoch in range(10**6):
            for batch in decoders.train(epoch):
                print("batch", flush=True)
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
    before = shared_memory_names()
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
    assert shared_memory_names() <= before
