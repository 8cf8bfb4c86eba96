"""A pool of worker processes for the build, with a watchdog: results in input order, a
worker that dies or hangs stops the build instead of stalling it, and an interrupt or a
failure stops the workers within seconds.

A job is a module-level function ``job(settings, item)`` (workers are spawned, so it travels
by name) whose items name their image by a ``path`` attribute. Why and how: docs/data.md.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import threading
import warnings
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager, suppress
from types import FrameType
from typing import Any, TypeVar

import cv2

from pyimagesearch import settings
from pyimagesearch.errors import EXIT_BUILD_FAILED, ProjectError

# Seconds one chunk of items (at most MAX_CHUNK) may take in a worker process before the
# build is stopped as hung; the config's BUILD_WORKER_TIMEOUT overrides it.
DEFAULT_WORKER_TIMEOUT: float = settings.default("BUILD_WORKER_TIMEOUT")
MAX_CHUNK = 32
# How the build asks its workers to give up their images, and how long one may take to do so
# before it is killed (one stuck in a decoder's C code cannot act on the request).
STOP_SIGNAL = signal.SIGUSR1
STOP_GRACE_SECONDS = 5.0

Item = TypeVar("Item")
Result = TypeVar("Result")


class BuildError(ProjectError, RuntimeError):
    """The build could not finish (a worker died or hung, a file could not be written)."""

    exit_status = EXIT_BUILD_FAILED


class WorkerError(BuildError):
    """A worker process died or stopped answering."""


class _Stopped(BaseException):
    """Raised in a worker when the build asks it to stop: it gives up the chunk in hand."""


_busy = False      # in a worker: running a chunk's jobs
_stopping = False  # in a worker: the build asked it to stop
# What a worker must not be interrupted by before its handlers are set (it inherits the
# mask of the thread that starts it): the build's interrupts, and its stop request.
_HELD_SIGNALS = {signal.SIGINT, signal.SIGTERM, STOP_SIGNAL}
_PR_SET_PDEATHSIG = 1  # Linux prctl(2)


def _run_chunk(job: Callable[[Any, Item], Result], job_settings: Any,
               items: list[Item]) -> list[Result]:
    global _busy
    if _stopping:
        raise _Stopped
    _busy = True
    try:
        return [job(job_settings, item) for item in items]
    finally:
        _busy = False


def _stop_requested(signum: int, frame: FrameType | None) -> None:
    global _stopping
    _stopping = True
    # Idle, or sending a result: a worker stopped half-way through a result would hang the
    # pool, so only a running job is given up (the next chunk is refused at once).
    if _busy:
        raise _Stopped


def _init_worker(parent: int) -> None:
    # Ctrl-C goes to every process of the terminal's group, SIGTERM may too; only the main
    # process acts on them, and stops the workers itself (ImageWorkers.stop).
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    signal.signal(STOP_SIGNAL, _stop_requested)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _HELD_SIGNALS)
    # A worker that outlived a killed build would wait for work forever: the kernel kills
    # it with the build.
    with suppress(OSError, AttributeError):  # not Linux
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the build died before that
        os._exit(1)
    # The processes are the parallelism; OpenCV's own threads would oversubscribe cores.
    cv2.setNumThreads(1)
    warnings.simplefilter("ignore")


@contextmanager
def _signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM (and the stop request) until the block is done, then act on
    them as they would have acted: a worker started meanwhile inherits them blocked, and a
    second Ctrl-C cannot interrupt the stopping of the workers."""
    caught: list[int] = []
    main = threading.current_thread() is threading.main_thread()
    previous = {signum: signal.signal(signum, lambda number, _: caught.append(number))
                for signum in (signal.SIGINT, signal.SIGTERM)} if main else {}
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, _HELD_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        for signum in dict.fromkeys(caught):
            signal.raise_signal(signum)


def _kill(processes: list[multiprocessing.process.BaseProcess]) -> None:
    for process in processes:
        with suppress(OSError, ValueError):  # already gone
            process.kill()


def _describe_images(chunk: Sequence[Any]) -> str:
    """The images of a chunk, for a message (an item names its image by ``path``)."""
    if len(chunk) == 1:
        return str(chunk[0].path)
    return f"{len(chunk)} images from {chunk[0].path} to {chunk[-1].path}"


class ImageWorkers:
    """A pool of ``workers`` spawned processes (one: the calling process, no watchdog) that
    returns results in input order and serves several lists and jobs in turn.

    A worker that dies, or does not deliver the oldest chunk within ``timeout`` seconds,
    raises :class:`WorkerError` naming the chunk's images; the other workers are killed.
    """

    def __init__(self, workers: int, timeout: float | None = DEFAULT_WORKER_TIMEOUT) -> None:
        self.workers = max(int(workers), 1)
        self.timeout = timeout
        self._executor: ProcessPoolExecutor | None = None

    def __enter__(self) -> ImageWorkers:
        if self.workers > 1:
            self._executor = ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=_init_worker, initargs=(os.getpid(),))
        return self

    def __exit__(self, kind: type[BaseException] | None, *exc_info: object) -> None:
        if kind is not None:
            self.stop()
        elif self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def stop(self) -> None:
        """Stop the workers at once (a failure, Ctrl-C, SIGTERM): each gives up its images;
        one that cannot within :data:`STOP_GRACE_SECONDS` (a hang, a decoder's C code) is
        killed. Queued chunks are cancelled."""
        executor, self._executor = self._executor, None
        if executor is None:
            return
        with _signals_held():
            # The executor keeps its processes in a private dict; there is no public way
            # to stop one. A killed worker breaks the pool, and shutdown() returns.
            processes = list((getattr(executor, "_processes", None) or {}).values())
            for process in processes:
                with suppress(OSError, ValueError):  # already gone
                    if process.is_alive():
                        os.kill(process.pid, STOP_SIGNAL)
            killer = threading.Timer(STOP_GRACE_SECONDS, _kill, [processes])
            killer.start()
            try:
                executor.shutdown(wait=True, cancel_futures=True)
            finally:
                killer.cancel()

    def _result(self, chunk: list[Item], future: Future[list[Result]]) -> list[Result]:
        try:
            return future.result(timeout=self.timeout)
        except FutureTimeout:
            self.stop()
            raise WorkerError(
                f"an image worker has not finished {_describe_images(chunk)} within "
                f"{self.timeout:g} s (BUILD_WORKER_TIMEOUT): a worker hangs or an image takes "
                f"pathologically long; the workers were stopped") from None
        except BrokenProcessPool as exc:
            raise self._died(chunk) from exc

    def _died(self, chunk: list[Item]) -> WorkerError:
        self.stop()
        return WorkerError(
            f"an image worker process died while the build waited for {_describe_images(chunk)} "
            f"(killed by a signal, out of memory, a crash in an image decoder, or a script "
            f"started without an `if __name__ == \"__main__\":` guard, which spawned "
            f"workers need); the other workers were stopped")

    def map(self, job: Callable[[Any, Item], Result], job_settings: Any,
            items: Sequence[Item]) -> Iterator[Result]:
        """``job(job_settings, item)`` for every item, in order; see the class docstring."""
        if self._executor is None:
            for item in items:
                yield job(job_settings, item)
            return
        chunk_size = max(1, min(MAX_CHUNK, len(items) // (self.workers * 8)))
        chunks = (list(items[i:i + chunk_size]) for i in range(0, len(items), chunk_size))
        pending: deque[tuple[list[Item], Future[list[Result]]]] = deque()
        for chunk in chunks:
            try:
                with _signals_held():  # submit() may start a worker
                    future = self._executor.submit(_run_chunk, job, job_settings, chunk)
            except BrokenProcessPool as exc:  # a worker died before we asked for its result
                raise self._died(pending[0][0] if pending else chunk) from exc
            pending.append((chunk, future))
            if len(pending) >= self.workers * 4:
                yield from self._result(*pending.popleft())
        while pending:
            yield from self._result(*pending.popleft())
