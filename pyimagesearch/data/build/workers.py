"""A pool of worker processes for the build, with a watchdog: results in input order, and a
worker that dies or hangs stops the build instead of stalling it.

A job is a module-level function ``job(settings, item)`` (workers are spawned, so it travels
by name) whose items name their image by a ``path`` attribute. Why and how: docs/data.md.
"""

from __future__ import annotations

import multiprocessing
import signal
import warnings
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from contextlib import suppress
from typing import Any, TypeVar

import cv2

from pyimagesearch import settings
from pyimagesearch.errors import EXIT_BUILD_FAILED, ProjectError

# Seconds one chunk of items (at most MAX_CHUNK) may take in a worker process before the
# build is stopped as hung; the config's BUILD_WORKER_TIMEOUT overrides it.
DEFAULT_WORKER_TIMEOUT: float = settings.default("BUILD_WORKER_TIMEOUT")
MAX_CHUNK = 32

Item = TypeVar("Item")
Result = TypeVar("Result")


class BuildError(ProjectError, RuntimeError):
    """The build could not finish (a worker died or hung, a file could not be written)."""

    exit_status = EXIT_BUILD_FAILED


class WorkerError(BuildError):
    """A worker process died or stopped answering."""


def _run_chunk(job: Callable[[Any, Item], Result], job_settings: Any,
               items: list[Item]) -> list[Result]:
    return [job(job_settings, item) for item in items]


def _init_worker() -> None:
    # Ctrl-C goes to every process of the terminal's group; only the main process acts on
    # it (see ImageWorkers.__exit__), a worker interrupted while sending a result would
    # hang the pool.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The processes are the parallelism; OpenCV's own threads would oversubscribe cores.
    cv2.setNumThreads(1)
    warnings.simplefilter("ignore")


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
                initializer=_init_worker)
        return self

    def __exit__(self, *exc_info: object) -> None:
        executor, self._executor = self._executor, None
        if executor is not None:
            # On failure too: queued chunks are cancelled and the few already handed to
            # workers finish (well under a second). Terminating healthy workers instead can
            # kill one mid-way through sending a result, and the executor then waits
            # forever for the rest of that message (hung workers are killed in _kill_workers).
            executor.shutdown(wait=True, cancel_futures=True)

    def _kill_workers(self) -> None:
        executor = self._executor
        if executor is None:
            return
        # The executor keeps its processes in a private dict; there is no public way to
        # stop a hung one. With every worker dead, the executor marks itself broken and
        # shutdown() returns at once.
        for process in list((getattr(executor, "_processes", None) or {}).values()):
            with suppress(OSError, ValueError):  # already gone
                process.kill()
        executor.shutdown(wait=True, cancel_futures=True)

    def _result(self, chunk: list[Item], future: Future[list[Result]]) -> list[Result]:
        try:
            return future.result(timeout=self.timeout)
        except FutureTimeout:
            self._kill_workers()
            raise WorkerError(
                f"an image worker has not finished {_describe_images(chunk)} within "
                f"{self.timeout:g} s (BUILD_WORKER_TIMEOUT): a worker hangs or an image takes "
                f"pathologically long; the workers were stopped") from None
        except BrokenProcessPool as exc:
            raise self._died(chunk) from exc

    def _died(self, chunk: list[Item]) -> WorkerError:
        self._kill_workers()
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
                future = self._executor.submit(_run_chunk, job, job_settings, chunk)
            except BrokenProcessPool as exc:  # a worker died before we asked for its result
                raise self._died(pending[0][0] if pending else chunk) from exc
            pending.append((chunk, future))
            if len(pending) >= self.workers * 4:
                yield from self._result(*pending.popleft())
        while pending:
            yield from self._result(*pending.popleft())
