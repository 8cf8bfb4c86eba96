"""Pack a list of images into an MXNet RecordIO ``.rec``/``.idx`` pair, with either packer.

``PACKER = "project"``: worker processes read, check and encode each image in one decode;
the main process writes records in list order (the same bytes whatever ``BUILD_THREADS``).
``PACKER = "im2rec"``: MXNet's own ``tools/im2rec.py`` (the book's path) over the same
checked list, with a watchdog, then reconciled with the list. Either way every listed file
is written or skipped with its reason (``written + skipped == listed``). How and why:
docs/design.md, "Packing records".
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
from collections.abc import Sequence
from contextlib import nullcontext, suppress
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from pyimagesearch.data.build.progress import Progress
from pyimagesearch.data.build.workers import (
    DEFAULT_WORKER_TIMEOUT,
    BuildError,
    ImageWorkers,
    WorkerError,
)
from pyimagesearch.data.dataset import DatasetError
from pyimagesearch.data.images import (
    DEFAULT_MAX_ASPECT_RATIO,
    ENCODERS,
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
)
from pyimagesearch.data.records.lists import ListEntry, unsafe_path_reason, write_list

logger = logging.getLogger(__name__)

PACKERS = ("project", "im2rec")


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

    def count_listed(self, entries: Sequence[ListEntry]) -> None:
        for entry in entries:
            self.per_label.setdefault(entry.label, [0, 0])[0] += 1

    def add_written(self, label: int) -> None:
        self.written += 1
        self.per_label[label][1] += 1

    def add_skipped(self, path: str, reason: str, description: str) -> None:
        logger.warning("%s: skipped %s: %s", description, path, reason)
        self.skipped.append({"path": path, "reason": reason})


def check_entry_paths(entries: Sequence[ListEntry], image_root: str | Path) -> None:
    """Refuse any list path that would leave ``image_root`` when joined to it."""
    for entry in entries:
        reason = unsafe_path_reason(entry.path)
        if reason:
            raise DatasetError(f"image path {entry.path!r} (index {entry.index}) {reason}; "
                               f"list paths must stay inside the image root {image_root}")


# (index, label, stored bytes or None, skip reason or None, (R, G, B) mean or None,
#  the stored RGB pixels for a per-pixel mean or None)
_Result = tuple[int, int, bytes | None, str | None, tuple[float, float, float] | None,
                np.ndarray | None]


def _process_one(settings: PackSettings, entry: ListEntry) -> _Result:
    """The project packer's job, in a worker process: one listed file -> its record's image."""
    try:
        stored = prepare_stored_image(os.path.join(settings.image_root, entry.path),
                                      settings.resize, settings.quality,
                                      max_aspect_ratio=settings.max_aspect_ratio,
                                      with_mean=settings.compute_mean,
                                      encoding=settings.encoding,
                                      with_pixels=settings.pixel_mean)
    except UnreadableImage as exc:
        return entry.index, entry.label, None, str(exc), None, None
    except MemoryError:
        # One pathological image must not end a build of a million.
        return entry.index, entry.label, None, "out of memory while converting it", None, None
    except cv2.error as exc:
        message = str(exc).strip().splitlines()[-1] if str(exc).strip() else "error"
        return (entry.index, entry.label, None, f"cannot be converted (OpenCV: {message})",
                None, None)
    if stored.pixels is not None and stored.pixels.shape[:2] != (settings.resize,) * 2:
        # A per-pixel mean adds images pixel by pixel: they must all be one size.
        height, width = stored.pixels.shape[:2]
        return (entry.index, entry.label, None,
                f"not square: stored as {width}x{height} px, but a per-pixel mean "
                f"(MEAN_IMAGE) needs every training image {settings.resize}x"
                f"{settings.resize}", None, None)
    return entry.index, entry.label, stored.data, None, stored.mean_rgb, stored.pixels


def _pack_project(entries: Sequence[ListEntry], settings: PackSettings, rec_path: str | Path,
                  idx_path: str | Path, pool: ImageWorkers, description: str) -> PackResult:
    result = PackResult(listed=len(entries))
    result.count_listed(entries)
    if settings.pixel_mean:
        result.pixel_sum = np.zeros((settings.resize, settings.resize, 3))
    by_index = {entry.index: entry for entry in entries}
    progress = Progress(len(entries), description)
    writer = RecordWriter(rec_path, idx_path)
    try:
        for index, label, stored, reason, mean, pixels in pool.map(_process_one, settings,
                                                                    entries):
            if stored is None:
                result.add_skipped(by_index[index].path, str(reason), description)
            else:
                writer.write(index, pack_header(label, index) + stored)
                result.add_written(label)
                if mean is not None:
                    result.mean_sum += mean
                if pixels is not None:
                    result.pixel_sum += pixels
            progress.update()
    except BaseException:
        progress.close()
        with suppress(OSError):  # the first error is the one to report
            writer.close()
        raise
    progress.close()
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
    """Write every readable image of ``entries`` to ``rec_path``/``idx_path``.

    Each record is ``mx.recordio.pack(IRHeader(0, label, index, 0), image)`` stored under
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
        Number of worker processes, or a running pool to share between lists (im2rec
        runs with as many processes).
    compute_mean : bool
        Accumulate the per-image channel means of the stored images.
    max_aspect_ratio : float
        Images more elongated than this are skipped (see
        :func:`pyimagesearch.data.images.prepare_stored_image`).
    timeout : float or None
        Seconds a chunk of images may take in a worker process (when ``workers`` is a
        count; a pool brings its own), and seconds im2rec may go without writing.
    packer : str
        ``"project"`` or ``"im2rec"`` (see the module docstring).
    encoding : {"jpeg", "png"}
        How images are stored: JPEG at ``quality``, or lossless PNG (project packer only).
    compute_pixel_mean : bool
        Accumulate the stored pixels for a per-pixel mean (:attr:`PackResult.pixel_mean`;
        project packer only); an image not stored ``resize`` x ``resize`` is then
        skipped, with the reason.

    Raises
    ------
    WorkerError
        A worker process (or im2rec) died or hung.
    BuildError
        im2rec failed.
    OSError
        Writing failed (disk full, ...); the exception names the file.
    """
    if packer not in PACKERS:
        raise ValueError(f"packer must be one of {', '.join(PACKERS)}, not {packer!r}")
    if encoding not in ENCODERS:
        raise ValueError(f"encoding must be one of {', '.join(ENCODERS)}, not {encoding!r}")
    if packer == "im2rec" and (encoding != "jpeg" or compute_pixel_mean):
        raise ValueError("the im2rec packer stores JPEG with a channel mean; lossless PNG "
                         "records and a per-pixel mean need the project packer")
    check_entry_paths(entries, image_root)
    settings = PackSettings(str(image_root), int(resize), int(quality), compute_mean,
                            float(max_aspect_ratio), encoding, compute_pixel_mean)
    started = time.monotonic()
    pool_context = (nullcontext(workers) if isinstance(workers, ImageWorkers)
                    else ImageWorkers(workers, timeout))
    with pool_context as pool:
        if packer == "im2rec":
            result = pack_with_im2rec(entries, settings, rec_path, idx_path, pool,
                                      description)
        else:
            result = _pack_project(entries, settings, rec_path, idx_path, pool, description)
    result.seconds = time.monotonic() - started
    logger.info("%s: %d written, %d skipped in %.1f s (%s packer)", description,
                result.written, len(result.skipped), result.seconds, result.packer)
    return result


# --- MXNet's im2rec as a packer ------------------------------------------------------------
_POLL_SECONDS = 0.2
_COUNT_LINE = re.compile(rb"count:\s*(\d+)")


def im2rec_path() -> str:
    """The ``im2rec.py`` of the installed MXNet wheel."""
    import mxnet as mx

    return mx.test_utils.get_im2rec_path()


def work_folder(rec_path: str | Path) -> Path:
    """The folder im2rec works in: beside the records, so its output is renamed, not copied."""
    rec_path = Path(rec_path)
    return rec_path.with_name(f"{rec_path.name}.im2rec")


# --- 1. check (in the worker processes) --------------------------------------------------
@dataclass(frozen=True)
class _CheckSettings:
    pack: PackSettings
    converted: str  # folder for the converted files


# (index, path for im2rec or None, skip reason or None)
_Checked = tuple[int, str | None, str | None]


def _check_one(settings: _CheckSettings, entry: ListEntry) -> _Checked:
    pack = settings.pack
    path = os.path.join(pack.image_root, entry.path)
    try:
        data = read_image_bytes(path)
        if plain_jpeg(data, pack.max_aspect_ratio) is not None:
            return entry.index, entry.path, None
        bgr = resize_shorter(decode_bgr(data, pack.resize, pack.max_aspect_ratio),
                             pack.resize)
    except UnreadableImage as exc:
        return entry.index, None, str(exc)
    except MemoryError:
        return entry.index, None, "out of memory while converting it"
    except cv2.error as exc:
        message = str(exc).strip().splitlines()[-1] if str(exc).strip() else "error"
        return entry.index, None, f"cannot be converted (OpenCV: {message})"
    converted = os.path.join(settings.converted, f"{entry.index}.png")
    png = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 1])[1]
    with open(converted, "wb") as handle, naming_errors(converted):  # a full disk says so
        handle.write(png.tobytes())
    return entry.index, converted, None


# --- 2. run im2rec --------------------------------------------------------------------------
def _run_im2rec(list_path: Path, image_root: str, settings: PackSettings, threads: int,
                timeout: float | None, progress: Progress, total: int) -> None:
    """Run im2rec on ``list_path``; it writes ``<stem>.rec``/``.idx`` beside the list."""
    folder = list_path.parent
    rec = list_path.with_suffix(".rec")
    command = [sys.executable, im2rec_path(), "--resize", str(settings.resize),
               "--quality", str(settings.quality), "--num-thread", str(threads),
               str(list_path.with_suffix("")), image_root]
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
        progress.update(max(total - reported, 0))
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


# --- 3. reconcile ----------------------------------------------------------------------------
def _written_keys(idx_path: Path) -> list[int]:
    with open(idx_path, encoding="ascii") as handle:
        return [int(line.split("\t", 1)[0]) for line in handle if line.strip()]


def _why_dropped(path: str, settings: PackSettings) -> str | None:
    """Why im2rec dropped ``path``: the project's reason, or OpenCV's; None if it should not have.

    A file that passed the check and still fails is one that only a full decode shows as
    damaged (a bogus Huffman table, say): the project's packer would skip it too.
    """
    try:
        data = read_image_bytes(path)
        decode_bgr(data, settings.resize, settings.max_aspect_ratio)
    except UnreadableImage as exc:
        return str(exc)
    if cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) is None:
        return "OpenCV, im2rec's decoder, cannot decode it"
    return None


# --- 4. the mean, from the stored JPEGs (in the worker processes) ------------------------
@dataclass(frozen=True)
class _StoredRecord:
    path: str  # the listed image, named in messages
    offset: int


def _stored_mean(rec_path: str, record: _StoredRecord) -> tuple[float, float, float]:
    with open(rec_path, "rb") as handle, \
            mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buffer:
        return stored_image_mean(image_bytes_at(buffer, record.offset))


def _stored_records(idx_path: Path, entries: Sequence[ListEntry]) -> list[_StoredRecord]:
    paths = {entry.index: entry.path for entry in entries}
    with open(idx_path, encoding="ascii") as handle:
        return [_StoredRecord(paths[int(key)], int(offset))
                for key, offset in (line.split("\t") for line in handle if line.strip())]


def pack_with_im2rec(entries: Sequence[ListEntry], settings: PackSettings,
                     rec_path: str | Path, idx_path: str | Path, pool: ImageWorkers,
                     description: str) -> PackResult:
    """:func:`pyimagesearch.data.build.packing.pack_records` with ``packer="im2rec"``."""
    result = PackResult(listed=len(entries), packer="im2rec")
    result.count_listed(entries)
    work = work_folder(rec_path)
    shutil.rmtree(work, ignore_errors=True)
    converted = work / "converted"
    converted.mkdir(parents=True)
    try:
        reasons: dict[int, str] = {}
        to_pack: list[ListEntry] = []
        progress = Progress(len(entries), f"{description}: checking for im2rec")
        try:
            check = _CheckSettings(settings, str(converted))
            for entry, (_, path, reason) in zip(entries, pool.map(_check_one, check, entries)):
                if path is None:
                    reasons[entry.index] = str(reason)
                else:
                    to_pack.append(ListEntry(entry.index, entry.label, path))
                progress.update()
        finally:
            progress.close()
        logger.info("%s: %d of %d images converted for im2rec", description,
                    sum(os.path.isabs(item.path) for item in to_pack), len(entries))

        list_path = work / "records.lst"
        with naming_errors(list_path):
            write_list(list_path, to_pack)
        progress = Progress(len(to_pack), f"{description}: im2rec")
        try:
            _run_im2rec(list_path, settings.image_root, settings, pool.workers, pool.timeout,
                        progress, len(to_pack))
        finally:
            progress.close()

        written = set(_written_keys(list_path.with_suffix(".idx")))
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
        records = _stored_records(Path(idx_path), entries)
        progress = Progress(len(records), f"{description}: mean of the stored images")
        try:
            for mean in pool.map(_stored_mean, str(rec_path), records):
                result.mean_sum += mean
                progress.update()
        finally:
            progress.close()
    return result
