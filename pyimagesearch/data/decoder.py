"""Record iterators that run in a child process, one process per epoch, batches handed over
through shared memory.

MXNet 1.9.1's ``ImageRecordIter`` keeps about 9 MiB for every instance created at 224 px
and never gives it back (apache/mxnet#15218; ``benchmarks/PROFILE.md``), and exact resume
needs new iterators every epoch (``data.iterators``): over 90 epochs a training process
would grow by gigabytes. Here each epoch's iterators live in a process of their own that
exits when the epoch is over, and the leak goes with it. The process builds exactly the
iterators the trainer would have built (the same ``ImageRecordIter`` parameters, seeds
included), so batches, order and augmentation are bit for bit the same.

- **Processes** are forked by multiprocessing's fork server, a clean process that has
  imported MXNet once: a new one costs milliseconds rather than the seconds of an MXNet
  import, and never inherits the trainer's threads or a GPU context. ``EpochDecoders``
  starts the next epoch's processes when an epoch begins, so their start and first
  batches are ready by the time they are needed. As with every multiprocessing start
  method but fork, each process imports the trainer's script (not as ``__main__``), so a
  script that trains must keep its work under ``if __name__ == "__main__":`` (ours do;
  the build's worker processes need it too). Where there is no fork server (Windows)
  the processes are spawned, each importing MXNet: slower to start, the same batches.
- **Hand-over**: a few batch-sized slots of shared memory; the process decodes into a
  free slot and says which, the trainer copies the slot into an ``NDArray`` and gives the
  slot back. Its name is unlinked as soon as the process has attached it, so nothing is
  left in ``/dev/shm`` whatever happens later (multiprocessing's resource tracker removes
  it if the trainer dies before that).
- **Signals**: the processes ignore SIGINT and SIGTERM, which a terminal or a job
  scheduler sends to the whole process group: the trainer finishes its step, stops, and
  closes them. They also exit on their own when the trainer is gone (their pipe closes).
- **Failures**: a Python error in the process (a bad parameter, MXNet's own error) comes
  back as its message; a process that dies (killed, out of memory, a crash in the
  decoder) is reported with its exit status; both raise ``DecoderError``.
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import multiprocessing.connection
import os
import signal
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing import shared_memory
from pathlib import Path
from typing import Any

import mxnet as mx
import numpy as np

from pyimagesearch.data.dataset import DatasetError
from pyimagesearch.data.iterators import record_iterator
from pyimagesearch.runtime import describe_returncode

# Batches a process may have decoded ahead of the trainer (besides MXNet's own prefetch).
SLOTS = 3
_ALIGN = 64


class DecoderError(DatasetError):
    """A decoding process failed or died."""


@dataclass(frozen=True)
class SlotLayout:
    """Where a batch's pixels and labels sit in the shared memory."""

    data_shape: tuple[int, ...]
    data_dtype: str
    label_shape: tuple[int, ...]
    slots: int = SLOTS

    @classmethod
    def of(cls, params: dict[str, Any], slots: int = SLOTS) -> SlotLayout:
        batch = int(params["batch_size"])
        width = int(params.get("label_width", 1))
        return cls((batch, *map(int, params["data_shape"])), str(params.get("dtype", "float32")),
                   (batch,) if width == 1 else (batch, width), slots)

    @property
    def _data_bytes(self) -> int:
        return math.prod(self.data_shape) * np.dtype(self.data_dtype).itemsize

    @property
    def slot_bytes(self) -> int:
        return _aligned(_aligned(self._data_bytes) + math.prod(self.label_shape) * 4)

    def views(self, buffer: memoryview) -> list[tuple[np.ndarray, np.ndarray]]:
        """(pixels, labels) arrays of every slot, over ``buffer``."""
        views = []
        for slot in range(self.slots):
            start = slot * self.slot_bytes
            data = np.frombuffer(buffer, self.data_dtype, math.prod(self.data_shape), start)
            label = np.frombuffer(buffer, np.float32, math.prod(self.label_shape),
                                  start + _aligned(self._data_bytes))
            views.append((data.reshape(self.data_shape), label.reshape(self.label_shape)))
        return views


def _aligned(size: int) -> int:
    return -(-size // _ALIGN) * _ALIGN


def _context() -> multiprocessing.context.BaseContext:
    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    return multiprocessing.get_context(method)


def start_server() -> None:
    """Start the fork server now (it imports MXNet, a few seconds), so that it is ready
    when the first epoch needs a decoding process. Harmless when it already runs."""
    context = _context()
    if context.get_start_method() != "forkserver":
        return
    context.set_forkserver_preload([__name__])
    from multiprocessing import forkserver
    forkserver.ensure_running()


def _serve(conn: multiprocessing.connection.Connection, params: list[dict[str, Any]],
           memory_name: str, layout: SlotLayout) -> None:
    """The decoding process: attach the slots, decode into them, exit when told or orphaned."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)  # the trainer stops us (see module doc)
    memory = shared_memory.SharedMemory(memory_name)
    try:
        conn.send(("ready",))
        _decode(conn, params, layout.views(memory.buf))
        while True:  # until the trainer closes the pipe
            conn.recv()
    except (EOFError, OSError):
        pass  # the trainer is done with us, or gone
    finally:
        memory.close()


def _decode(conn: multiprocessing.connection.Connection, params: list[dict[str, Any]],
            views: list[tuple[np.ndarray, np.ndarray]]) -> None:
    """Fill free slots with the iterator's batches; the trainer sends slots back."""
    try:
        batches = record_iterator(params)
        free = list(range(len(views)))
        for batch in batches:
            while not free or conn.poll():
                free.append(conn.recv())
            slot = free.pop()
            data, label = views[slot]
            np.copyto(data, batch.data[0].asnumpy())
            np.copyto(label, batch.label[0].asnumpy().reshape(label.shape))
            conn.send(("batch", slot, int(batch.pad or 0)))
    except (EOFError, OSError):
        raise
    except Exception as exc:  # MXNet's errors (a bad record, a wrong parameter)
        lines = str(exc).strip().splitlines() or [""]
        conn.send(("error", f"{type(exc).__name__}: {lines[0]}"))
        return
    conn.send(("end",))


def _shutdown(process: multiprocessing.process.BaseProcess,
              conn: multiprocessing.connection.Connection, memory: shared_memory.SharedMemory,
              unlinked: list[bool], views: list[tuple[np.ndarray, np.ndarray]]) -> None:
    views.clear()  # numpy arrays over the memory keep it from closing
    conn.close()  # the process exits when it notices (at once unless it is decoding)
    if process.pid is not None:
        process.join(2)
        if process.is_alive():
            process.kill()
            process.join()
        process.close()
    memory.close()
    _unlink(memory, unlinked)


def _unlink(memory: shared_memory.SharedMemory, unlinked: list[bool]) -> None:
    if not unlinked[0]:
        unlinked[0] = True
        memory.unlink()


def _exit_in_words(code: int | None) -> str:
    if code is None:  # join() timed out: the process is alive but silent
        return "stopped answering"
    return f"was {describe_returncode(code)}" if code < 0 else \
        f"exited with {describe_returncode(code)}"


def _create_shared_memory(size: int, label: str) -> shared_memory.SharedMemory:
    """The batch slots; a shared-memory folder too small for them is a clear error.

    tmpfs lets a file grow past the space it has and the process then dies of SIGBUS on
    its first write (a container's default 64 MiB ``/dev/shm`` is the usual cause), so
    the free space is checked before, not discovered after.
    """
    need = f"{size / 2**20:.1f} MiB of shared memory for the batches of {label}"
    folder = Path("/dev/shm")
    if folder.is_dir():
        stats = os.statvfs(folder)
        free = stats.f_bavail * stats.f_frsize
        if free < size:
            raise DecoderError(f"{folder} has {free / 2**20:.1f} MiB free, but decoding needs "
                               f"{need}; enlarge it (docker run --shm-size=1g) or lower "
                               f"BATCH_SIZE")
    try:
        return shared_memory.SharedMemory(create=True, size=size)
    except OSError as exc:
        raise DecoderError(f"could not create {need}: {exc.strerror or exc} (a full "
                           f"{folder}, or a file-size limit: ulimit -f)") from None


class ProcessIter(mx.io.DataIter):
    """The batches of ``record_iterator(params)``, decoded in a child process.

    Batches are ``uint8`` (or the parameters' dtype) NDArrays on the CPU with the labels
    and ``pad`` of the iterator itself. Like the iterators it replaces it cannot be reset;
    ``close()`` stops the process (also when the object is collected).
    """

    def __init__(self, params: list[dict[str, Any]], label: str, slots: int = SLOTS) -> None:
        self.layout = SlotLayout.of(params[0], slots)
        super().__init__(self.layout.data_shape[0])
        self.label = label
        self._done = False
        memory = _create_shared_memory(self.layout.slots * self.layout.slot_bytes, label)
        unlinked = [False]
        context = _context()
        self._conn, child_conn = context.Pipe()
        self.process = context.Process(target=_serve, name=f"decode {label}",
                                       args=(child_conn, params, memory.name, self.layout))
        self._views: list[tuple[np.ndarray, np.ndarray]] = []
        self._finalizer = weakref.finalize(self, _shutdown, self.process, self._conn, memory,
                                           unlinked, self._views)
        try:
            self.process.start()
        except Exception as exc:
            self.close()
            raise DecoderError(f"could not start the decoding process for {label}: "
                               f"{exc}") from None
        finally:
            child_conn.close()
        try:
            self._receive("ready")
        except BaseException:
            self.close()
            raise
        finally:
            _unlink(memory, unlinked)
        self._views.extend(self.layout.views(memory.buf))

    @property
    def provide_data(self) -> list[mx.io.DataDesc]:
        return [mx.io.DataDesc("data", self.layout.data_shape, self.layout.data_dtype)]

    @property
    def provide_label(self) -> list[mx.io.DataDesc]:
        return [mx.io.DataDesc("softmax_label", self.layout.label_shape, np.float32)]

    def _receive(self, expected: str | None = None) -> tuple:
        try:
            ready = multiprocessing.connection.wait([self._conn, self.process.sentinel])
            if self._conn in ready:
                message = self._conn.recv()
                if message[0] == "error":
                    raise DecoderError(f"decoding {self.label} failed: {message[1]}")
                if expected is None or message[0] == expected:
                    return message
        except (EOFError, OSError):
            pass
        self.process.join(5)
        raise DecoderError(
            f"the process decoding {self.label} (pid {self.process.pid}) "
            f"{_exit_in_words(self.process.exitcode)} (out of memory, or a crash in MXNet's "
            f"decoder: its messages, if any, are above); resume from the last checkpoint")

    def next(self) -> mx.io.DataBatch:
        if self._done:
            raise StopIteration
        message = self._receive()
        if message[0] == "end":
            self._done = True
            raise StopIteration
        _, slot, pad = message
        data, label = self._views[slot]
        # Synchronous copies: the slot can go back at once.
        batch = mx.io.DataBatch([mx.nd.array(data, dtype=data.dtype)],
                                [mx.nd.array(label, dtype=np.float32)], pad=pad)
        with contextlib.suppress(OSError):  # a dead process: the next batch reports it
            self._conn.send(slot)
        return batch

    def reset(self) -> None:
        raise RuntimeError(f"the iterator of {self.label} cannot be reset: create a new one")

    def close(self) -> None:
        """Stop the process and release the shared memory (idempotent)."""
        self._finalizer()


@dataclass
class _Epoch:
    train: ProcessIter
    validation: ProcessIter | None

    def close(self) -> None:
        self.train.close()
        if self.validation is not None:
            self.validation.close()


class EpochDecoders:
    """Each epoch's training and validation batches, from processes started an epoch ahead.

    ``train_params(epoch)`` and ``validation_params`` are ``ImageRecordIter`` parameters
    (``training_iterator_params``, ``evaluation_iterator_params``); ``validation_params``
    None means this process does not validate (a distributed worker other than 0).
    ``train(epoch)`` and ``validation()`` are what ``fit`` calls; an epoch's processes are
    closed when the next epoch begins, and all of them by ``close()``.
    """

    def __init__(self, train_params: Callable[[int], list[dict[str, Any]]],
                 validation_params: list[dict[str, Any]] | None, epochs: range) -> None:
        self.train_params, self.validation_params, self.epochs = (train_params,
                                                                  validation_params, epochs)
        self._epochs: dict[int, _Epoch] = {}
        self._current: int | None = None
        start_server()

    def _start(self, epoch: int) -> _Epoch:
        train = ProcessIter(self.train_params(epoch), f"training epoch {epoch}")
        try:
            validation = (None if self.validation_params is None else
                          ProcessIter(self.validation_params, f"validation after epoch {epoch}"))
        except BaseException:
            train.close()
            raise
        return _Epoch(train, validation)

    def train(self, epoch: int) -> ProcessIter:
        """Epoch ``epoch``'s training batches; starts the next epoch's processes."""
        for old in [e for e in self._epochs if e < epoch]:
            self._epochs.pop(old).close()
        if epoch not in self._epochs:
            self._epochs[epoch] = self._start(epoch)
        self._current = epoch
        if epoch + 1 in self.epochs and epoch + 1 not in self._epochs:
            self._epochs[epoch + 1] = self._start(epoch + 1)
        return self._epochs[epoch].train

    def validation(self) -> ProcessIter:
        """The current epoch's validation batches."""
        current = self._epochs.get(self._current) if self._current is not None else None
        if current is None or current.validation is None:
            raise RuntimeError("validation() needs a current epoch of a validating process "
                               "(call train(epoch) first; pass validation_params)")
        return current.validation

    def close(self) -> None:
        while self._epochs:
            self._epochs.popitem()[1].close()

    def __enter__(self) -> EpochDecoders:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
