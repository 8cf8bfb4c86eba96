"""Pack a list of images into an MXNet RecordIO ``.rec``/``.idx`` pair, with either packer.

``PACKER = "project"``: worker processes read, check and encode each image in one decode;
the main process writes records in list order. ``PACKER = "im2rec"``: MXNet's own
``tools/im2rec.py`` over the same checked list, with a watchdog, reconciled with the list.
Either way ``written + skipped == listed``. How and why: docs/design.md, "Packing records".
"""

from __future__ import annotations

import logging
import mmap
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import cv2
import numpy as np

from pyimagesearch.data.build.progress import Progress
from pyimagesearch.data.build.workers import (
    DEFAULT_WORKER_TIMEOUT,
    BuildError,
    ImageWorkers,
    WorkerError,
)
from pyimagesearch.data.images import (
    DEFAULT_MAX_ASPECT_RATIO,
    ENCODERS,
    StoredImage,
    UnreadableImage,
    decode_bgr,
    plain_jpeg,
    prepare_stored_image,
    read_image_bytes,
    resize_shorter,
    stored_image_mean,
)
from pyimagesearch.data.records.format import (
    RecordWriter,
    image_bytes_at,
    naming_errors,
    pack_header,
    read_index,
)
from pyimagesearch.data.records.lists import ListEntry, unsafe_path_reason, write_list
from pyimagesearch.errors import DatasetError

logger = logging.getLogger(__name__)

PACKERS = ("project", "im2rec")
_POLL_SECONDS = 0.2
_COUNT_LINE = re.compile(rb"count:\s*(\d+)")
Value = TypeVar("Value")


@dataclass(frozen=True)
class PackSettings:
    """What a worker needs to turn one listed file into a record."""

    image_root: str
    resize: int
    quality: int
    compute_mean: bool
    max_aspect_ratio: float = DEFAULT_MAX_ASPECT_RATIO
    encoding: str = "jpeg"
    # Also hand back every stored image's pixels, for a per-pixel mean (all resize^2).
    pixel_mean: bool = False


@dataclass
class PackResult:
    """What :func:`pack_records` did with one list."""

    listed: int
    written: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)
    mean_sum: np.ndarray = field(default_factory=lambda: np.zeros(3))  # R, G, B
    # Sum of the stored (H, W, 3) RGB pixels (``compute_pixel_mean``), float64.
    pixel_sum: np.ndarray | None = None
    seconds: float = 0.0
    # label -> (listed, written), to find classes that end up with no record
    per_label: dict[int, list[int]] = field(default_factory=dict)
    packer: str = "project"

    @classmethod
    def of(cls, entries: Sequence[ListEntry], packer: str) -> PackResult:
        result = cls(listed=len(entries), packer=packer)
        for entry in entries:
            result.per_label.setdefault(entry.label, [0, 0])[0] += 1
        return result

    @property
    def mean(self) -> dict[str, float]:
        """Average of the per-image (R, G, B) means (needs ``compute_mean=True``)."""
        if self.written == 0:
            raise DatasetError("no image could be read, so there is no mean")
        red, green, blue = (self.mean_sum / self.written).tolist()
        return {"R": red, "G": green, "B": blue}

    @property
    def pixel_mean(self) -> np.ndarray:
        """(3, H, W) float32 RGB mean image, as ``ImageRecordIter(mean_img=...)`` loads it
        (needs ``compute_pixel_mean=True``)."""
        if self.written == 0 or self.pixel_sum is None:
            raise DatasetError("no image could be read, so there is no mean image")
        return (self.pixel_sum / self.written).transpose(2, 0, 1).astype(np.float32)

    def written_per_class(self, num_classes: int) -> list[int]:
        return [self.per_label.get(label, [0, 0])[1] for label in range(num_classes)]

    def add_written(self, label: int) -> None:
        self.written += 1
        self.per_label[label][1] += 1

    def add_skipped(self, path: str, reason: str, description: str) -> None:
        logger.warning("%s: skipped %s: %s", description, path, reason)
        self.skipped.append({"path": path, "reason": reason})


def _attempt(work: Callable[[], Value]) -> tuple[Value | None, str | None]:
    """``(work(), None)``, or ``(None, why the image cannot be stored)``."""
    try:
        return work(), None
    except UnreadableImage as exc:
        return None, str(exc)
    except MemoryError:
        # One pathological image must not end a build of a million.
        return None, "out of memory while converting it"
    except cv2.error as exc:
        message = str(exc).strip().splitlines()[-1] if str(exc).strip() else "error"
        return None, f"cannot be converted (OpenCV: {message})"


def _process_one(settings: PackSettings,
                 entry: ListEntry) -> tuple[StoredImage | None, str | None]:
    """The project packer's job, in a worker process: one listed file -> its record's image."""
    stored, reason = _attempt(lambda: prepare_stored_image(
        os.path.join(settings.image_root, entry.path), settings.resize, settings.quality,
        max_aspect_ratio=settings.max_aspect_ratio, with_mean=settings.compute_mean,
        encoding=settings.encoding, with_pixels=settings.pixel_mean))
    if stored is not None and stored.pixels is not None \
            and stored.pixels.shape[:2] != (settings.resize,) * 2:
        # A per-pixel mean adds images pixel by pixel: they must all be one size.
        height, width = stored.pixels.shape[:2]
        return None, (f"not square: stored as {width}x{height} px, but a per-pixel mean "
                      f"(MEAN_IMAGE) needs every training image {settings.resize}x"
                      f"{settings.resize}")
    return stored, reason


def _pack_project(entries: Sequence[ListEntry], settings: PackSettings, rec_path: str | Path,
                  idx_path: str | Path, pool: ImageWorkers, description: str) -> PackResult:
    result = PackResult.of(entries, "project")
    if settings.pixel_mean:
        result.pixel_sum = np.zeros((settings.resize, settings.resize, 3))
    with Progress(len(entries), description) as progress:
        writer = RecordWriter(rec_path, idx_path)
        try:
            for entry, (stored, reason) in zip(entries, pool.map(_process_one, settings,
                                                                 entries)):
                if stored is None:
                    result.add_skipped(entry.path, str(reason), description)
                else:
                    writer.write(entry.index, pack_header(entry.label, entry.index) + stored.data)
                    result.add_written(entry.label)
                    if stored.mean_rgb is not None:
                        result.mean_sum += stored.mean_rgb
                    if stored.pixels is not None:
                        result.pixel_sum += stored.pixels
                progress.update()
        except BaseException:
            with suppress(OSError):  # the first error is the one to report
                writer.close()
            raise
        writer.close()
    return result


def pack_records(entries: Sequence[ListEntry], image_root: str | Path, rec_path: str | Path,
                 idx_path: str | Path, *, resize: int, quality: int,
                 workers: int | ImageWorkers = 1, compute_mean: bool = False,
                 description: str = "records",
                 max_aspect_ratio: float = DEFAULT_MAX_ASPECT_RATIO,
                 timeout: float | None = DEFAULT_WORKER_TIMEOUT,
                 packer: str = "project", encoding: str = "jpeg",
                 compute_pixel_mean: bool = False) -> PackResult:
    """Write every readable image of ``entries`` to ``rec_path``/``idx_path``, exactly there.

    Record ``index`` is ``IRHeader(0, label, index, 0)`` + the image, in list order; an
    unreadable file is skipped with its reason, a list path that leaves ``image_root`` is
    refused. ``resize``: the stored shorter side; ``quality``: JPEG quality; ``workers``: a
    process count or a running pool (im2rec runs as many threads); ``compute_mean``: sum
    the per-image channel means; ``max_aspect_ratio``: more elongated images are skipped;
    ``timeout``: seconds a chunk may take in a worker (when ``workers`` is a count) and
    im2rec may go without writing; ``encoding`` ``"jpeg"`` or lossless ``"png"`` and
    ``compute_pixel_mean`` (every stored image must then be square) need the project packer.

    Raises ``WorkerError`` (a worker or im2rec died or hung), ``BuildError`` (im2rec
    failed) or ``OSError`` naming the file (a write failed).
    """
    if packer not in PACKERS:
        raise ValueError(f"packer must be one of {', '.join(PACKERS)}, not {packer!r}")
    if encoding not in ENCODERS:
        raise ValueError(f"encoding must be one of {', '.join(ENCODERS)}, not {encoding!r}")
    if packer == "im2rec" and (encoding != "jpeg" or compute_pixel_mean):
        raise ValueError("the im2rec packer stores JPEG with a channel mean; lossless PNG "
                         "records and a per-pixel mean need the project packer")
    for entry in entries:
        reason = unsafe_path_reason(entry.path)
        if reason:
            raise DatasetError(f"image path {entry.path!r} (index {entry.index}) {reason}; "
                               f"list paths must stay inside the image root {image_root}")
    settings = PackSettings(str(image_root), int(resize), int(quality), compute_mean,
                            float(max_aspect_ratio), encoding, compute_pixel_mean)
    started = time.monotonic()
    pool_context = (nullcontext(workers) if isinstance(workers, ImageWorkers)
                    else ImageWorkers(workers, timeout))
    with pool_context as pool:
        pack = pack_with_im2rec if packer == "im2rec" else _pack_project
        result = pack(entries, settings, rec_path, idx_path, pool, description)
    result.seconds = time.monotonic() - started
    logger.info("%s: %d written, %d skipped in %.1f s (%s packer)", description,
                result.written, len(result.skipped), result.seconds, result.packer)
    return result


# --- MXNet's im2rec as a packer: check, run, reconcile, mean ---------------------------------
def im2rec_path() -> str:
    """The ``im2rec.py`` of the installed MXNet wheel."""
    import mxnet as mx

    return mx.test_utils.get_im2rec_path()


@dataclass(frozen=True)
class _CheckSettings:
    pack: PackSettings
    converted: str  # folder for the converted files


def _check_one(settings: _CheckSettings, entry: ListEntry) -> tuple[str | None, str | None]:
    """(the path im2rec gets, or None; why not): a plain JPEG as it is, anything else
    converted by the project's decoder to a lossless PNG of the stored size."""
    pack = settings.pack
    data, reason = _attempt(lambda: read_image_bytes(os.path.join(pack.image_root,
                                                                  entry.path)))
    if data is None:
        return None, reason
    if plain_jpeg(data, pack.max_aspect_ratio) is not None:
        return entry.path, None
    bgr, reason = _attempt(lambda: resize_shorter(
        decode_bgr(data, pack.resize, pack.max_aspect_ratio), pack.resize))
    if bgr is None:
        return None, reason
    converted = os.path.join(settings.converted, f"{entry.index}.png")
    png = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 1])[1]
    with open(converted, "wb") as handle, naming_errors(converted):  # a full disk says so
        handle.write(png.tobytes())
    return converted, None


def _run_im2rec(list_path: Path, settings: PackSettings, pool: ImageWorkers,
                progress: Progress) -> None:
    """Run im2rec on ``list_path`` (with a watchdog); it writes ``<stem>.rec``/``.idx``
    beside the list."""
    folder, timeout = list_path.parent, pool.timeout
    rec = list_path.with_suffix(".rec")
    command = [sys.executable, im2rec_path(), "--resize", str(settings.resize),
               "--quality", str(settings.quality), "--num-thread", str(pool.workers),
               str(list_path.with_suffix("")), settings.image_root]
    log_path = folder / "im2rec.log"
    with open(log_path, "wb") as log:
        # Its own session, so that its worker processes can be stopped with it; unbuffered,
        # so that its "count:" lines arrive as it goes.
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, cwd=folder,
                                   env={**os.environ, "PYTHONUNBUFFERED": "1"},
                                   start_new_session=True)
    try:
        size, changed, reported = -1, time.monotonic(), 0
        while process.poll() is None:
            time.sleep(_POLL_SECONDS)
            now = time.monotonic()
            current = rec.stat().st_size if rec.exists() else 0
            if current != size:
                size, changed = current, now
            elif timeout is not None and now - changed > timeout:
                raise WorkerError(
                    f"im2rec has written nothing to {rec.name} for {timeout:g} s "
                    f"(BUILD_WORKER_TIMEOUT): it hangs or an image takes pathologically "
                    f"long; it was stopped")
            counts = _COUNT_LINE.findall(_tail(log_path))
            if counts and int(counts[-1]) > reported:
                progress.update(int(counts[-1]) - reported)
                reported = int(counts[-1])
        progress.update(max(progress.total - reported, 0))
    finally:
        if process.poll() is None:  # an error above, or Ctrl-C: stop it and its workers
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    if process.returncode != 0 or not list_path.with_suffix(".idx").is_file():
        tail = _tail(log_path).decode(errors="replace").strip().splitlines()[-3:]
        what = (f"exited with status {process.returncode}" if process.returncode
                else f"wrote no {list_path.with_suffix('.idx').name}")
        raise BuildError(f"im2rec ({command[1]}) {what}: {' | '.join(tail) or 'no output'}")


def _tail(path: Path, size: int = 4096) -> bytes:
    with open(path, "rb") as handle:
        handle.seek(max(path.stat().st_size - size, 0))
        return handle.read()


def _why_dropped(path: str, settings: PackSettings) -> str | None:
    """Why im2rec dropped ``path`` (the project's reason, or OpenCV's); None: it should not
    have. A file that passed the check and still fails is one only a full decode shows as
    damaged (a bogus Huffman table, say): the project's packer would skip it too."""
    try:
        data = read_image_bytes(path)
        decode_bgr(data, settings.resize, settings.max_aspect_ratio)
    except UnreadableImage as exc:
        return str(exc)
    if cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) is None:
        return "OpenCV, im2rec's decoder, cannot decode it"
    return None


@dataclass(frozen=True)
class _StoredRecord:
    path: str  # the listed image, named in messages
    offset: int


def _stored_mean(rec_path: str, record: _StoredRecord) -> tuple[float, float, float]:
    with open(rec_path, "rb") as handle, \
            mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buffer:
        return stored_image_mean(image_bytes_at(buffer, record.offset))


def pack_with_im2rec(entries: Sequence[ListEntry], settings: PackSettings,
                     rec_path: str | Path, idx_path: str | Path, pool: ImageWorkers,
                     description: str) -> PackResult:
    """:func:`pack_records` with ``packer="im2rec"``."""
    result = PackResult.of(entries, "im2rec")
    # im2rec works beside the records, so that its output is renamed, not copied.
    work = Path(rec_path).with_name(f"{Path(rec_path).name}.im2rec")
    shutil.rmtree(work, ignore_errors=True)
    converted = work / "converted"
    converted.mkdir(parents=True)
    try:
        reasons: dict[int, str] = {}
        to_pack: list[ListEntry] = []
        with Progress(len(entries), f"{description}: checking for im2rec") as progress:
            check = _CheckSettings(settings, str(converted))
            for entry, (path, reason) in zip(entries, pool.map(_check_one, check, entries)):
                if path is None:
                    reasons[entry.index] = str(reason)
                else:
                    to_pack.append(ListEntry(entry.index, entry.label, path))
                progress.update()
        logger.info("%s: %d of %d images converted for im2rec", description,
                    sum(os.path.isabs(item.path) for item in to_pack), len(entries))

        list_path = work / "records.lst"
        with naming_errors(list_path):
            write_list(list_path, to_pack)
        with Progress(len(to_pack), f"{description}: im2rec") as progress:
            _run_im2rec(list_path, settings, pool, progress)

        written = set(read_index(str(list_path.with_suffix(".idx")))[0].tolist())
        lost = []
        for item in to_pack:
            if item.index not in written:
                reason = _why_dropped(os.path.join(settings.image_root, item.path), settings)
                if reason is None:
                    lost.append(item.path)
                else:
                    reasons[item.index] = reason
        if lost:
            raise BuildError(f"im2rec did not write {len(lost)} image(s) that decode "
                             f"(first: {lost[0]}): one of its processes died?")
        os.replace(list_path.with_suffix(".rec"), rec_path)
        os.replace(list_path.with_suffix(".idx"), idx_path)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    for entry in entries:
        if entry.index in reasons:
            result.add_skipped(entry.path, reasons[entry.index], description)
        else:
            result.add_written(entry.label)
    if settings.compute_mean and result.written:
        # im2rec computes no mean: the stored JPEGs are decoded as ImageRecordIter will.
        paths = {entry.index: entry.path for entry in entries}
        keys, offsets = read_index(str(idx_path))
        records = [_StoredRecord(paths[key], offset)
                   for key, offset in zip(keys.tolist(), offsets.tolist())]
        with Progress(len(records), f"{description}: mean of the stored images") as progress:
            for mean in pool.map(_stored_mean, str(rec_path), records):
                result.mean_sum += mean
                progress.update()
    return result
