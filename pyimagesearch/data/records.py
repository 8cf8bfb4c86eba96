"""Pack a list of images into an MXNet RecordIO ``.rec``/``.idx`` pair with worker processes.

Worker processes decode, resize and encode (:mod:`pyimagesearch.data.images`); the main
process writes records in list order, so a ``.rec`` is byte-for-byte the same whatever
``BUILD_THREADS`` is. Every listed file that cannot be read is skipped and reported by
path and reason, so ``written + skipped == listed``. On request the per-image channel
means of the images as stored (resized, JPEG-encoded, decoded again) are accumulated,
which is what the book computes and what ``mx.io.ImageRecordIter`` will subtract.

The files are written exactly where asked: :mod:`pyimagesearch.data.build` picks the
temporary names and commits them.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
import time
import warnings
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from pyimagesearch.data.images import UnreadableImage, prepare_image, stored_image_mean
from pyimagesearch.data.lists import ListEntry
from pyimagesearch.utils.imagenethelper import DatasetError

logger = logging.getLogger(__name__)


# --- the worker side ---------------------------------------------------------------------
@dataclass(frozen=True)
class _Settings:
    image_root: str
    resize: int
    quality: int
    compute_mean: bool


# (index, label, jpeg or None, skip reason or None, (R, G, B) mean or None)
_Result = tuple[int, int, bytes | None, str | None, tuple[float, float, float] | None]


def _process_one(settings: _Settings, entry: ListEntry) -> _Result:
    try:
        jpeg = prepare_image(os.path.join(settings.image_root, entry.path),
                             settings.resize, settings.quality)
    except UnreadableImage as exc:
        return entry.index, entry.label, None, str(exc), None
    mean = stored_image_mean(jpeg) if settings.compute_mean else None
    return entry.index, entry.label, jpeg, None, mean


def _process_chunk(settings: _Settings, entries: list[ListEntry]) -> list[_Result]:
    return [_process_one(settings, entry) for entry in entries]


def _init_worker() -> None:
    # Ctrl-C goes to every process of the terminal's group; only the main process acts on
    # it (see ImageWorkers.__exit__), a worker interrupted while sending a result would
    # hang the pool.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The processes are the parallelism; OpenCV's own threads would oversubscribe cores.
    cv2.setNumThreads(1)
    warnings.simplefilter("ignore")


class ImageWorkers:
    """A pool of image-processing processes that returns results in input order.

    ``workers == 1`` processes in the calling process (no pool). Otherwise processes are
    started with the ``spawn`` method: forking a parent that already runs MXNet's engine
    or OpenCV's thread pool can deadlock. At most a few chunks per worker are in flight,
    so memory stays flat however long the list is.
    """

    def __init__(self, workers: int) -> None:
        self.workers = max(int(workers), 1)
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
            # workers finish (well under a second). Terminating workers instead can kill
            # one mid-way through sending a result, and the executor then waits forever
            # for the rest of that message.
            executor.shutdown(wait=True, cancel_futures=True)

    def map(self, settings: _Settings, entries: Sequence[ListEntry]) -> Iterator[_Result]:
        if self._executor is None:
            for entry in entries:
                yield _process_one(settings, entry)
            return
        chunk_size = max(1, min(32, len(entries) // (self.workers * 8)))
        chunks = (list(entries[i:i + chunk_size]) for i in range(0, len(entries), chunk_size))
        pending: deque[Future[list[_Result]]] = deque()
        try:
            for chunk in chunks:
                pending.append(self._executor.submit(_process_chunk, settings, chunk))
                if len(pending) >= self.workers * 4:
                    yield from pending.popleft().result()
            while pending:
                yield from pending.popleft().result()
        except BrokenProcessPool as exc:
            raise RuntimeError(
                "an image worker process died (killed, out of memory, or started from a "
                "script without an `if __name__ == \"__main__\":` guard, which spawned "
                "workers need)") from exc


# --- progress ----------------------------------------------------------------------------
class Progress:
    """A tqdm bar when stderr is a terminal, otherwise a log line every ``interval`` s."""

    def __init__(self, total: int, description: str, interval: float = 30.0) -> None:
        self.total = total
        self.description = description
        self.interval = interval
        self.done = 0
        self._started = self._last = time.monotonic()
        self._bar = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, desc=description, unit="img", leave=False)

    def update(self, count: int = 1) -> None:
        self.done += count
        if self._bar is not None:
            self._bar.update(count)
            return
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            rate = self.done / max(now - self._started, 1e-9)
            logger.info("%s: %d/%d images (%.0f%%), %.0f img/s", self.description, self.done,
                        self.total, 100.0 * self.done / max(self.total, 1), rate)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


# --- packing -----------------------------------------------------------------------------
@dataclass
class PackResult:
    """What :func:`pack_records` did with one list."""

    listed: int
    written: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)
    mean_sum: np.ndarray = field(default_factory=lambda: np.zeros(3))  # R, G, B
    seconds: float = 0.0

    @property
    def mean(self) -> dict[str, float]:
        """Average of the per-image (R, G, B) means (needs ``compute_mean=True``)."""
        if self.written == 0:
            raise DatasetError("no image could be read, so there is no mean")
        red, green, blue = (self.mean_sum / self.written).tolist()
        return {"R": red, "G": green, "B": blue}


def idx_path_for(rec_path: str | Path) -> Path:
    """``train.rec`` -> ``train.idx``, the convention of im2rec and ImageRecordIter."""
    return Path(rec_path).with_suffix(".idx")


def pack_records(entries: Sequence[ListEntry], image_root: str | Path, rec_path: str | Path,
                 idx_path: str | Path, *, resize: int, quality: int,
                 workers: int | ImageWorkers = 1, compute_mean: bool = False,
                 description: str = "records") -> PackResult:
    """Write every readable image of ``entries`` to ``rec_path``/``idx_path``.

    Each record is ``mx.recordio.pack(IRHeader(0, label, index, 0), jpeg)`` stored under
    key ``index``; records follow list order. Unreadable files are skipped and reported.
    The files are written exactly where asked: the caller picks temporary names.

    Parameters
    ----------
    entries : sequence of ListEntry
        The list (paths relative to ``image_root``).
    resize : int
        Shorter side of every stored image.
    quality : int
        JPEG quality, 1-100.
    workers : int or ImageWorkers
        Number of worker processes, or a running pool to share between lists.
    compute_mean : bool
        Accumulate the per-image channel means of the stored images.
    """
    # Imported here so that the spawned worker processes, which import this module,
    # do not pay for MXNet.
    import mxnet as mx

    settings = _Settings(str(image_root), int(resize), int(quality), compute_mean)
    result = PackResult(listed=len(entries))
    by_index = {entry.index: entry for entry in entries}
    started = time.monotonic()
    pool_context = (nullcontext(workers) if isinstance(workers, ImageWorkers)
                    else ImageWorkers(workers))
    record = mx.recordio.MXIndexedRecordIO(str(idx_path), str(rec_path), "w")
    progress = Progress(len(entries), description)
    try:
        with pool_context as pool:
            for index, label, jpeg, reason, mean in pool.map(settings, entries):
                if jpeg is None:
                    path = by_index[index].path
                    logger.warning("%s: skipped %s: %s", description, path, reason)
                    result.skipped.append({"path": path, "reason": str(reason)})
                else:
                    header = mx.recordio.IRHeader(0, float(label), index, 0)
                    record.write_idx(index, mx.recordio.pack(header, jpeg))
                    result.written += 1
                    if mean is not None:
                        result.mean_sum += mean
                progress.update()
    finally:
        progress.close()
        record.close()
    result.seconds = time.monotonic() - started
    logger.info("%s: %d written, %d skipped in %.1f s", description, result.written,
                len(result.skipped), result.seconds)
    return result
