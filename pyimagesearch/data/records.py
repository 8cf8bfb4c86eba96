"""Pack a list of images into an MXNet RecordIO ``.rec``/``.idx`` pair with worker processes.

Worker processes decode, resize and encode (:mod:`pyimagesearch.data.images`); the main
process writes records in list order, so a ``.rec`` is byte-for-byte the same whatever
``BUILD_THREADS`` is. Every listed file that cannot be read is skipped and reported by
path and reason, so ``written + skipped == listed``. On request the per-image channel
means of the images as stored (resized, JPEG-encoded, decoded again) are accumulated,
which is what the book computes and what ``mx.io.ImageRecordIter`` will subtract.

What this does that MXNet's own tools do not:

* the RecordIO framing is written here, in Python (:class:`RecordWriter`), byte for byte
  what ``mx.recordio.MXIndexedRecordIO`` writes, because MXNet's C++ writer loses its
  buffered tail silently when the disk fills at ``close()`` (measured: a 9288-byte file
  comes out as 9000 bytes with no error); here every write error is an ``OSError``
  naming the file;
* a worker process that dies (killed, out of memory, a crash in a decoder) or hangs is
  detected: :class:`WorkerError` within ``timeout`` seconds per chunk of images, the
  workers are killed and nothing is left running.

This module is also the one source of truth for the RecordIO format
(:func:`frame_record`, :func:`read_record_at`); :mod:`pyimagesearch.data.verify` reads
records with it. The files are written exactly where asked: :mod:`pyimagesearch.data.build`
picks the temporary names and commits them.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import struct
import sys
import time
import warnings
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from pyimagesearch import settings
from pyimagesearch.data.dataset import DatasetError
from pyimagesearch.data.images import (
    DEFAULT_MAX_ASPECT_RATIO,
    UnreadableImage,
    prepare_image,
    stored_image_mean,
)
from pyimagesearch.data.lists import ListEntry, unsafe_path_reason

logger = logging.getLogger(__name__)

# Seconds one chunk of images (at most _MAX_CHUNK) may take in a worker process before
# the build is stopped as hung; the config's BUILD_WORKER_TIMEOUT overrides it.
DEFAULT_WORKER_TIMEOUT: float = settings.default("BUILD_WORKER_TIMEOUT")
_MAX_CHUNK = 32


class BuildError(RuntimeError):
    """The build could not finish (a worker died or hung, a file could not be written)."""


class WorkerError(BuildError):
    """An image worker process died or stopped answering."""


# --- the RecordIO format (dmlc-core recordio.h) --------------------------------------------
# A record is  magic (uint32) | lrecord (uint32) | data | zero padding to 4 bytes,  all
# little-endian, where lrecord = cflag << 29 | length. A payload holding the magic word at a
# 4-aligned position is cut there into parts (cflag 1 first, 2 middle, 3 last; 0 = whole
# record) and the magic word itself is dropped: the reader puts it back between parts.
RECORDIO_MAGIC = 0xCED7230A
MAGIC_BYTES = struct.pack("<I", RECORDIO_MAGIC)
MAX_PART_LENGTH = (1 << 29) - 1
# mx.recordio.IRHeader(flag, label, id, id2), struct "IfQQ"; flag > 0: that many float32
# labels follow the header and the label field is unused.
IR_FORMAT = "<IfQQ"
IR_SIZE = struct.calcsize(IR_FORMAT)


def lrecord(cflag: int, length: int) -> int:
    return (cflag << 29) | length


def frame_record(payload: bytes) -> bytes:
    """The bytes that ``dmlc::RecordIOWriter::WriteRecord`` writes for ``payload``."""
    if len(payload) > MAX_PART_LENGTH:
        raise ValueError(f"a RecordIO record holds at most {MAX_PART_LENGTH} bytes, "
                         f"not {len(payload)}")
    parts = []
    start = 0
    aligned_end = len(payload) & ~3
    found = payload.find(MAGIC_BYTES)
    while 0 <= found < aligned_end:
        if found % 4:
            found = payload.find(MAGIC_BYTES, found + 1)
            continue
        parts.append(struct.pack("<II", RECORDIO_MAGIC, lrecord(2 if start else 1,
                                                                found - start)))
        parts.append(payload[start:found])
        start = found + 4
        found = payload.find(MAGIC_BYTES, start)
    tail = len(payload) - start
    parts.append(struct.pack("<II", RECORDIO_MAGIC, lrecord(3 if start else 0, tail)))
    parts.append(payload[start:])
    parts.append(b"\0" * (-tail % 4))
    return b"".join(parts)


class RecordFormatError(ValueError):
    """Bytes at an offset are not a whole RecordIO record; ``kind`` says how."""

    def __init__(self, kind: str, message: str, offset: int) -> None:
        self.kind = kind
        self.offset = offset
        super().__init__(message)


def read_record_at(buffer: memoryview | bytes, offset: int) -> tuple[bytes, int, int]:
    """Read the record starting at ``offset`` of a ``.rec``'s bytes.

    Returns
    -------
    payload : bytes
        The record's data, parts joined as ``dmlc::RecordIOReader::NextRecord`` joins them.
    end : int
        Offset just after the record (where the next one starts).
    parts : int
        1 for an ordinary record, more when the payload held the magic word.

    Raises
    ------
    RecordFormatError
        ``kind`` is ``"misaligned"``, ``"no_magic"``, ``"truncated"`` or ``"bad_cflag"``.
    """
    size = len(buffer)
    pieces: list[bytes] = []
    position, parts = offset, 0
    if offset % 4:
        raise RecordFormatError("misaligned", f"offset {offset} is not a multiple of 4, so "
                                "it cannot be the start of a record", offset)
    while True:
        if position + 8 > size:
            raise RecordFormatError(
                "truncated", f"the file ends at {size} bytes, inside the record header at "
                f"offset {position}", position)
        magic, word = struct.unpack_from("<II", buffer, position)
        if magic != RECORDIO_MAGIC:
            what = "record" if parts == 0 else f"part {parts + 1} of the record"
            raise RecordFormatError(
                "no_magic", f"no RecordIO magic word at offset {position} (found "
                f"0x{magic:08x}), so it is not the start of a {what}", position)
        cflag, length = word >> 29, word & MAX_PART_LENGTH
        expected = (0, 1) if parts == 0 else (2, 3)
        if cflag not in expected:
            raise RecordFormatError(
                "bad_cflag", f"continuation flag {cflag} at offset {position} where "
                f"{' or '.join(map(str, expected))} belongs (the offset is in the middle of "
                "a multi-part record, or the file is damaged)", position)
        end = position + 8 + ((length + 3) & ~3)
        if end > size:
            raise RecordFormatError(
                "truncated", f"the record needs bytes up to offset {end} but the file ends "
                f"at {size}", position)
        if parts:
            pieces.append(MAGIC_BYTES)
        pieces.append(bytes(buffer[position + 8:position + 8 + length]))
        parts += 1
        position = end
        if cflag in (0, 3):
            return b"".join(pieces), end, parts


@contextmanager
def naming_errors(path: str | Path) -> Iterator[None]:
    """Give ``OSError`` s raised by writes on an open file (which carry no name) the name."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None:
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise


class RecordWriter:
    """Write a ``.rec``/``.idx`` pair as ``mx.recordio.MXIndexedRecordIO(idx, rec, "w")`` does.

    ``.idx`` lines are ``<key>\\t<offset>\\n``. Write errors (disk full, ``ulimit -f``) are
    ``OSError`` naming the file, at ``write`` or at ``close`` (see the module docstring).
    """

    def __init__(self, rec_path: str | Path, idx_path: str | Path) -> None:
        self.rec_path, self.idx_path = str(rec_path), str(idx_path)
        self.position = 0
        self._rec = open(self.rec_path, "wb")  # noqa: SIM115 - closed in close()
        try:
            self._idx = open(self.idx_path, "w", encoding="ascii", newline="\n")  # noqa: SIM115
        except BaseException:
            self._rec.close()
            raise

    def write(self, key: int, payload: bytes) -> None:
        data = frame_record(payload)
        with naming_errors(self.rec_path):
            self._rec.write(data)
        with naming_errors(self.idx_path):
            self._idx.write(f"{int(key)}\t{self.position}\n")
        self.position += len(data)

    def close(self) -> None:
        try:
            with naming_errors(self.rec_path):
                self._rec.close()
        finally:
            with naming_errors(self.idx_path):
                self._idx.close()

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def pack_header(label: float, record_id: int) -> bytes:
    """``mx.recordio.pack(IRHeader(0, label, record_id, 0), b"")``."""
    return struct.pack(IR_FORMAT, 0, float(label), int(record_id), 0)


# --- the worker side ---------------------------------------------------------------------
@dataclass(frozen=True)
class _Settings:
    image_root: str
    resize: int
    quality: int
    compute_mean: bool
    max_aspect_ratio: float = DEFAULT_MAX_ASPECT_RATIO


# (index, label, jpeg or None, skip reason or None, (R, G, B) mean or None)
_Result = tuple[int, int, bytes | None, str | None, tuple[float, float, float] | None]


def _process_one(settings: _Settings, entry: ListEntry) -> _Result:
    try:
        jpeg = prepare_image(os.path.join(settings.image_root, entry.path),
                             settings.resize, settings.quality,
                             max_aspect_ratio=settings.max_aspect_ratio)
    except UnreadableImage as exc:
        return entry.index, entry.label, None, str(exc), None
    except MemoryError:
        # One pathological image must not end a build of a million.
        return entry.index, entry.label, None, "out of memory while converting it", None
    except cv2.error as exc:
        message = str(exc).strip().splitlines()[-1] if str(exc).strip() else "error"
        return entry.index, entry.label, None, f"cannot be converted (OpenCV: {message})", None
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


def _chunk_names(chunk: Sequence[ListEntry]) -> str:
    if len(chunk) == 1:
        return chunk[0].path
    return f"{len(chunk)} images from {chunk[0].path} to {chunk[-1].path}"


class ImageWorkers:
    """A pool of image-processing processes that returns results in input order.

    ``workers == 1`` processes in the calling process (no pool, no watchdog: a crash there
    is the build's own crash). Otherwise processes are started with the ``spawn`` method:
    forking a parent that already runs MXNet's engine or OpenCV's thread pool can
    deadlock. At most a few chunks per worker are in flight, so memory stays flat however
    long the list is.

    A worker that dies (``BrokenProcessPool``) or does not deliver the oldest chunk within
    ``timeout`` seconds raises :class:`WorkerError` naming the chunk's images; the other
    workers are killed at once, so nothing is left running.
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
            # forever for the rest of that message (hung workers are killed in _fail).
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

    def _result(self, chunk: list[ListEntry],
                future: Future[list[_Result]]) -> list[_Result]:
        try:
            return future.result(timeout=self.timeout)
        except FutureTimeout:
            self._kill_workers()
            raise WorkerError(
                f"an image worker has not finished {_chunk_names(chunk)} within "
                f"{self.timeout:g} s (BUILD_WORKER_TIMEOUT): a worker hangs or an image takes "
                f"pathologically long; the workers were stopped") from None
        except BrokenProcessPool as exc:
            raise self._died(chunk) from exc

    def _died(self, chunk: list[ListEntry]) -> WorkerError:
        self._kill_workers()
        return WorkerError(
            f"an image worker process died while the build waited for {_chunk_names(chunk)} "
            f"(killed by a signal, out of memory, a crash in an image decoder, or a script "
            f"started without an `if __name__ == \"__main__\":` guard, which spawned "
            f"workers need); the other workers were stopped")

    def map(self, settings: _Settings, entries: Sequence[ListEntry]) -> Iterator[_Result]:
        if self._executor is None:
            for entry in entries:
                yield _process_one(settings, entry)
            return
        chunk_size = max(1, min(_MAX_CHUNK, len(entries) // (self.workers * 8)))
        chunks = (list(entries[i:i + chunk_size]) for i in range(0, len(entries), chunk_size))
        pending: deque[tuple[list[ListEntry], Future[list[_Result]]]] = deque()
        for chunk in chunks:
            try:
                future = self._executor.submit(_process_chunk, settings, chunk)
            except BrokenProcessPool as exc:  # a worker died before we asked for its result
                raise self._died(pending[0][0] if pending else chunk) from exc
            pending.append((chunk, future))
            if len(pending) >= self.workers * 4:
                yield from self._result(*pending.popleft())
        while pending:
            yield from self._result(*pending.popleft())


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
    # label -> (listed, written), to find classes that end up with no record
    per_label: dict[int, list[int]] = field(default_factory=dict)

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


def check_entry_paths(entries: Sequence[ListEntry], image_root: str | Path) -> None:
    """Refuse any list path that would leave ``image_root`` when joined to it."""
    for entry in entries:
        reason = unsafe_path_reason(entry.path)
        if reason:
            raise DatasetError(f"image path {entry.path!r} (index {entry.index}) {reason}; "
                               f"list paths must stay inside the image root {image_root}")


def pack_records(entries: Sequence[ListEntry], image_root: str | Path, rec_path: str | Path,
                 idx_path: str | Path, *, resize: int, quality: int,
                 workers: int | ImageWorkers = 1, compute_mean: bool = False,
                 description: str = "records",
                 max_aspect_ratio: float = DEFAULT_MAX_ASPECT_RATIO,
                 timeout: float | None = DEFAULT_WORKER_TIMEOUT) -> PackResult:
    """Write every readable image of ``entries`` to ``rec_path``/``idx_path``.

    Each record is ``mx.recordio.pack(IRHeader(0, label, index, 0), jpeg)`` stored under
    key ``index``; records follow list order. Unreadable files are skipped and reported.
    The files are written exactly where asked: the caller picks temporary names.

    Parameters
    ----------
    entries : sequence of ListEntry
        The list (paths relative to ``image_root``; one that leaves it is refused).
    resize : int
        Shorter side of every stored image.
    quality : int
        JPEG quality, 1-100.
    workers : int or ImageWorkers
        Number of worker processes, or a running pool to share between lists.
    compute_mean : bool
        Accumulate the per-image channel means of the stored images.
    max_aspect_ratio : float
        Images more elongated than this are skipped (see
        :func:`pyimagesearch.data.images.prepare_image`).
    timeout : float or None
        Seconds a chunk of images may take in a worker process (when ``workers`` is a
        count; a pool brings its own).

    Raises
    ------
    WorkerError
        A worker process died or hung.
    OSError
        Writing failed (disk full, ...); the exception names the file.
    """
    check_entry_paths(entries, image_root)
    settings = _Settings(str(image_root), int(resize), int(quality), compute_mean,
                         float(max_aspect_ratio))
    result = PackResult(listed=len(entries))
    for entry in entries:
        result.per_label.setdefault(entry.label, [0, 0])[0] += 1
    by_index = {entry.index: entry for entry in entries}
    started = time.monotonic()
    pool_context = (nullcontext(workers) if isinstance(workers, ImageWorkers)
                    else ImageWorkers(workers, timeout))
    progress = Progress(len(entries), description)
    writer = RecordWriter(rec_path, idx_path)
    try:
        with pool_context as pool:
            for index, label, jpeg, reason, mean in pool.map(settings, entries):
                if jpeg is None:
                    path = by_index[index].path
                    logger.warning("%s: skipped %s: %s", description, path, reason)
                    result.skipped.append({"path": path, "reason": str(reason)})
                else:
                    writer.write(index, pack_header(label, index) + jpeg)
                    result.written += 1
                    result.per_label[label][1] += 1
                    if mean is not None:
                        result.mean_sum += mean
                progress.update()
    except BaseException:
        progress.close()
        with suppress(OSError):  # the first error is the one to report
            writer.close()
        raise
    progress.close()
    writer.close()
    result.seconds = time.monotonic() - started
    logger.info("%s: %d written, %d skipped in %.1f s", description, result.written,
                len(result.skipped), result.seconds)
    return result
