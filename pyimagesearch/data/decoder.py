"""Each epoch's record iterators in a process of their own (MXNet 1.9's ImageRecordIter
leaks every instance), batches handed over through shared memory, every wait bounded
(``DECODE_TIMEOUT``), a stall or a dead process one ``DecoderError`` line. How and why:
docs/data.md, "Decoding processes".
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import multiprocessing.connection
import os
import secrets
import signal
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing import shared_memory
from pathlib import Path
from typing import Any

import mxnet as mx
import numpy as np

from pyimagesearch import settings
from pyimagesearch.data.dataset import DatasetError
from pyimagesearch.data.iterators import record_iterator
from pyimagesearch.runtime import DECODING_SERVER_VARIABLE, SERVER_SIGNALS, describe_returncode

# Batches a process may have decoded ahead of the trainer (besides MXNet's own prefetch).
SLOTS = 3
_ALIGN = 64
# Seconds per image of a batch that a wait may last (DECODE_TIMEOUT), counted for at
# least MIN_IMAGES images: a process's start costs the same for any batch.
DEFAULT_TIMEOUT: float = settings.default("DECODE_TIMEOUT")
MIN_IMAGES = 32
# Once the trainer is stopping, a process has this long to answer: a healthy one needs a
# fraction of it, and a stalled one must not hold up a Ctrl-C.
STOP_GRACE = 5.0
_POLL = 0.1  # seconds between looks at stopping()


class DecoderError(DatasetError):
    """A decoding process failed, died or stalled."""


class DecodingStopped(Exception):
    """The trainer is stopping and a decoding process did not answer within ``STOP_GRACE``."""


def _never() -> bool:
    return False


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

    @property
    def total_bytes(self) -> int:
        return self.slots * self.slot_bytes

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
    from multiprocessing import forkserver, resource_tracker
    os.environ[DECODING_SERVER_VARIABLE] = str(os.getpid())
    # Blocked here, a Ctrl-C waits for us (and is not lost); the server starts with the
    # signals blocked, so one cannot kill it before it ignores them (runtime). The
    # resource tracker first: starting it unblocks them.
    resource_tracker.ensure_running()
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, SERVER_SIGNALS)
    try:
        forkserver.ensure_running()
    finally:
        os.environ.pop(DECODING_SERVER_VARIABLE, None)
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def _serve(conn: multiprocessing.connection.Connection, params: list[dict[str, Any]],
           memory_name: str, layout: SlotLayout) -> None:
    """The decoding process: attach the slots, decode into them, exit when told or orphaned."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)  # spawned (no fork server): the trainer stops us
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
              unlinked: list[bool], views: list[tuple[np.ndarray, np.ndarray]],
              until: list[float]) -> None:
    views.clear()  # numpy arrays over the memory keep it from closing
    conn.close()  # the process exits when it notices (at once unless it is decoding)
    if process.pid is not None:  # None: never started, or its start is stuck in the server
        process.join(max(until[0] - time.monotonic(), 0) if until else 2)
        if process.is_alive():
            process.kill()  # also a stopped process
            process.join(5)  # its exit status comes from the fork server, which may be stuck
        if process.exitcode is not None:
            process.close()
    try:
        memory.close()
    except BufferError:
        # A traceback still holds a view of a slot (an interrupt inside next()): drop our
        # references, and the mapping goes with the last view. (SharedMemory has no public
        # way; its __del__ would otherwise fail the same way, "Exception ignored".)
        memory._buf = memory._mmap = None  # type: ignore[attr-defined]
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


def segment_prefix(pid: int) -> str:
    """How the names of the shared memory that process ``pid`` creates begin (at most 14
    characters in all, as on BSD)."""
    return f"psm{pid:x}_"


def _size(size: int) -> str:
    return f"{size / 2**20:.{2 if size < 10 * 2**20 else 1}f} MiB"


def _create_shared_memory(size: int, label: str,
                          run_needs: int | None = None) -> shared_memory.SharedMemory:
    """The batch slots; a shared-memory folder too small for them is a clear error.

    tmpfs lets a file grow past the space it has and the process then dies of SIGBUS on
    its first write (a container's default 64 MiB ``/dev/shm`` is the usual cause), so
    the free space is checked before, not discovered after. ``run_needs``: what the run
    holds at once (this epoch's processes, the next's and validation), for the message.
    """
    need = f"{_size(size)} of shared memory for the batches of {label}"
    folder = Path("/dev/shm")
    if folder.is_dir():
        stats = os.statvfs(folder)
        free = stats.f_bavail * stats.f_frsize
        if free < size:
            total = max(size, run_needs or 0)
            suggested = -(-2 * total // 2**26) * 64  # MiB: room to spare, in 64 MiB steps
            raise DecoderError(
                f"{folder} has {_size(free)} free, but decoding needs {need}, and the run "
                f"{_size(total)} at once (the batches of this epoch, the next and "
                f"validation): give the container more (docker run "
                f"--shm-size={suggested}m) or lower BATCH_SIZE")
    while True:
        try:
            return shared_memory.SharedMemory(f"{segment_prefix(os.getpid())}"
                                              f"{secrets.token_hex(2)}", create=True, size=size)
        except FileExistsError:
            continue  # another of ours has the name
        except OSError as exc:
            raise DecoderError(f"could not create {need}: {exc.strerror or exc} (a full "
                               f"{folder}, or a file-size limit: ulimit -f)") from None


_STATES = {"T": "stopped", "t": "stopped", "D": "waiting on a disk or network filesystem",
           "R": "running", "S": "sleeping", "Z": "exited"}


def _state(pid: int | None) -> str:
    """``, stopped`` and the like, read from /proc (empty where there is none)."""
    try:
        code = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""
    return f", {_STATES.get(code, code)}"


class ProcessIter(mx.io.DataIter):
    """The batches of ``record_iterator(params)``, decoded in a child process.

    Batches are ``uint8`` (or the parameters' dtype) NDArrays on the CPU with the labels
    and ``pad`` of the iterator itself. Like the iterators it replaces it cannot be reset;
    ``close()`` stops the process (also when the object is collected). ``timeout`` and
    ``stopping`` bound the waits (module doc); ``run_needs`` is what the run holds in
    shared memory at once, for the message when there is too little.
    """

    def __init__(self, params: list[dict[str, Any]], label: str, slots: int = SLOTS,
                 timeout: float = DEFAULT_TIMEOUT, stopping: Callable[[], bool] = _never,
                 run_needs: int | None = None) -> None:
        self.layout = SlotLayout.of(params[0], slots)
        super().__init__(self.layout.data_shape[0])
        self.label, self.timeout, self.stopping = label, timeout, stopping
        self._done = False
        memory = _create_shared_memory(self.layout.total_bytes, label, run_needs)
        unlinked = [False]
        start_server()
        context = _context()
        self._conn, child_conn = context.Pipe()
        self.process = context.Process(target=_serve, name=f"decode {label}",
                                       args=(child_conn, params, memory.name, self.layout))
        self._views: list[tuple[np.ndarray, np.ndarray]] = []
        self._until: list[float] = []  # when _close_all's shared time to exit ends
        self._finalizer = weakref.finalize(self, _shutdown, self.process, self._conn, memory,
                                           unlinked, self._views, self._until)
        try:
            self._start()
            self._receive("ready")
        except BaseException:
            self._until[:] = [0.0]  # a process that failed its start gets no time to exit
            self.close()
            raise
        finally:
            child_conn.close()
            _unlink(memory, unlinked)
        self._views.extend(self.layout.views(memory.buf))

    @property
    def provide_data(self) -> list[mx.io.DataDesc]:
        return [mx.io.DataDesc("data", self.layout.data_shape, self.layout.data_dtype)]

    @property
    def provide_label(self) -> list[mx.io.DataDesc]:
        return [mx.io.DataDesc("softmax_label", self.layout.label_shape, np.float32)]

    def _start(self) -> None:
        """``process.start()`` in a thread: through the fork server it waits for the server
        to fork, which a stopped server never does."""
        failure: list[BaseException] = []

        def start() -> None:
            try:
                self.process.start()
            except BaseException as exc:  # handed to the waiting thread
                failure.append(exc)

        def started(seconds: float) -> bool:
            starter.join(seconds)
            return not starter.is_alive()

        starter = threading.Thread(target=start, name=f"start {self.process.name}", daemon=True)
        starter.start()
        self._wait(started)
        if failure:
            raise DecoderError(f"could not start the decoding process for {self.label}: "
                               f"{failure[0]}") from None

    def _wait(self, done: Callable[[float], bool]) -> None:
        """Until ``done(seconds)``, which blocks at most that long, says so; a stall (the
        deadline) raises DecoderError, ``stopping()`` for STOP_GRACE DecodingStopped."""
        images = max(self.batch_size, MIN_IMAGES)
        start = time.monotonic()
        stopping_since = None
        while not done(_POLL):
            now = time.monotonic()
            if stopping_since is None and self.stopping():
                stopping_since = now
            if stopping_since is not None and now - stopping_since >= STOP_GRACE:
                raise DecodingStopped(f"gave up waiting for the process decoding {self.label}")
            if now - start >= self.timeout * images:
                pid = self.process.pid
                who = (f"the process decoding {self.label} (pid {pid}{_state(pid)})"
                       if pid is not None else
                       f"the fork server, starting the process decoding {self.label},")
                raise DecoderError(
                    f"{who} has sent nothing for {now - start:.0f} s (DECODE_TIMEOUT "
                    f"{self.timeout:g} s x {images} images): it is stopped or hung; check that "
                    f"the records' filesystem answers and that the machine is not frozen or "
                    f"swamped (or raise DECODE_TIMEOUT); resume from the last checkpoint")

    def _receive(self, expected: str | None = None) -> tuple:
        handles = [self._conn, self.process.sentinel]
        try:
            self._wait(lambda seconds: bool(multiprocessing.connection.wait(handles, seconds)))
            if self._conn.poll():
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


def _close_all(iterators: list[ProcessIter]) -> None:
    """Close ``iterators`` together: their processes share the 2 s they have to exit (a
    stopped one never does, and is killed)."""
    until = time.monotonic() + 2
    for data_iter in iterators:
        data_iter._conn.close()  # each process exits when it notices
        data_iter._until[:] = [until]
    for data_iter in iterators:
        data_iter.close()


@dataclass
class _Epoch:
    train: ProcessIter
    validation: ProcessIter | None

    @property
    def iterators(self) -> list[ProcessIter]:
        return [self.train] + ([self.validation] if self.validation is not None else [])


class EpochDecoders:
    """Each epoch's training and validation batches, from processes started an epoch ahead.

    ``train_params(epoch)`` and ``validation_params`` are ``ImageRecordIter`` parameters
    (``training_iterator_params``, ``evaluation_iterator_params``); ``validation_params``
    None means this process does not validate (a distributed worker other than 0).
    ``train(epoch)`` and ``validation()`` are what ``fit`` calls; an epoch's processes are
    closed when the next epoch begins, and all of them by ``close()``. ``timeout`` and
    ``stopping``: see :class:`ProcessIter`.
    """

    def __init__(self, train_params: Callable[[int], list[dict[str, Any]]],
                 validation_params: list[dict[str, Any]] | None, epochs: range,
                 timeout: float = DEFAULT_TIMEOUT,
                 stopping: Callable[[], bool] = _never) -> None:
        self.train_params, self.validation_params, self.epochs = (train_params,
                                                                  validation_params, epochs)
        self.timeout, self.stopping = timeout, stopping
        self._epochs: dict[int, _Epoch] = {}
        self._current: int | None = None
        start_server()

    def _start(self, epoch: int) -> _Epoch:
        params = self.train_params(epoch)
        per_epoch = [params] + ([self.validation_params] if self.validation_params else [])
        options: dict[str, Any] = {
            "timeout": self.timeout, "stopping": self.stopping,
            "run_needs": sum(SlotLayout.of(p[0]).total_bytes for p in per_epoch)
            * min(len(self.epochs), 2)}
        train = ProcessIter(params, f"training epoch {epoch}", **options)
        try:
            validation = (None if self.validation_params is None else
                          ProcessIter(self.validation_params, f"validation after epoch {epoch}",
                                      **options))
        except BaseException:
            train.close()
            raise
        return _Epoch(train, validation)

    def train(self, epoch: int) -> ProcessIter:
        """Epoch ``epoch``'s training batches; starts the next epoch's processes."""
        done = [e for e in self._epochs if e < epoch]
        _close_all([it for e in done for it in self._epochs.pop(e).iterators])
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
        _close_all([it for epoch in self._epochs.values() for it in epoch.iterators])
        self._epochs.clear()

    def __enter__(self) -> EpochDecoders:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
