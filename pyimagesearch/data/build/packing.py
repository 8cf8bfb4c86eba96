"""Pack a list of images into an MXNet RecordIO ``.rec``/``.idx`` pair.

Two packers, chosen by the config's ``PACKER``:

* ``"project"`` (the default), the project's checked writer: worker processes
  (:mod:`pyimagesearch.data.build.workers`) read, check, decode, resize and encode each image
  in one decode (:func:`pyimagesearch.data.images.prepare_stored_image`); the main
  process writes records in list order with :class:`~data.records.format.RecordWriter`,
  so a ``.rec`` is byte-for-byte the same whatever ``BUILD_THREADS`` is. On request the
  per-image channel means of the pixels stored are accumulated from the pixels the workers
  already have, which is the book's mean and what the training ``Normalizer`` subtracts,
  and so are the pixels themselves for a per-pixel mean (CIFAR's ``MEAN_IMAGE``). Images
  are stored as JPEG, or as lossless PNG (``RECORD_ENCODING``).
* ``"im2rec"``, MXNet's own ``tools/im2rec.py`` over the same, checked list
  (:mod:`pyimagesearch.data.build.im2rec`).

With either, every listed file that cannot be read is skipped and reported by path and
reason, so ``written + skipped == listed``, and the records hold
``IRHeader(0, label, index, 0)`` + the encoded image under key ``index``, in list order.
The files are written exactly where asked: the caller (:mod:`pyimagesearch.data.build.builder`)
picks the temporary names and commits them.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from contextlib import nullcontext, suppress
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from pyimagesearch.data.build.progress import Progress
from pyimagesearch.data.build.workers import DEFAULT_WORKER_TIMEOUT, ImageWorkers
from pyimagesearch.data.dataset import DatasetError
from pyimagesearch.data.images import (
    DEFAULT_MAX_ASPECT_RATIO,
    ENCODERS,
    UnreadableImage,
    prepare_stored_image,
)
from pyimagesearch.data.records.format import RecordWriter, pack_header
from pyimagesearch.data.records.lists import ListEntry, unsafe_path_reason

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
            # Imported here: im2rec builds on this module's PackResult and job settings.
            from pyimagesearch.data.build.im2rec import pack_with_im2rec

            result = pack_with_im2rec(entries, settings, rec_path, idx_path, pool,
                                      description)
        else:
            result = _pack_project(entries, settings, rec_path, idx_path, pool, description)
    result.seconds = time.monotonic() - started
    logger.info("%s: %d written, %d skipped in %.1f s (%s packer)", description,
                result.written, len(result.skipped), result.seconds, result.packer)
    return result
