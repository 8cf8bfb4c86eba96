"""Pack ImageNet-style image lists into MXNet RecordIO files, without losing an image quietly.

What this does that MXNet's ``im2rec.py`` does not:

* every decodable image is stored as a 3-channel JPEG whatever it was (PNG content under a
  ``.JPEG`` name, CMYK with Adobe polarity, grayscale, RGBA, palette), decoded with
  Pillow because OpenCV accepts a truncated JPEG with only a warning;
* every file that cannot be read (absent, empty, not an image, truncated) is reported by
  path and reason, so per split ``written + skipped == listed``;
* records, lists, the mean and the manifest are written under temporary names
  (``<name>.partial-<pid>``) and renamed into place only when the whole dataset is done,
  the manifest last, so an interrupted build never leaves a ``.rec`` that looks finished
  and never damages the previous complete dataset;
* the training-set mean is the average of per-image channel means of the images as
  stored (resized, JPEG-encoded, decoded again), which is what the book computes and
  what ``mx.io.ImageRecordIter`` will subtract.

Worker processes decode, resize and encode; the main process writes records in list
order, so a ``.rec`` is byte-for-byte the same whatever ``BUILD_THREADS`` is.
"""

from __future__ import annotations

import io
import json
import logging
import math
import multiprocessing
import os
import platform
import signal
import stat
import struct
import sys
import time
import warnings
from collections import Counter, deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType
from typing import Any

import cv2
import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from pyimagesearch.config import ConfigError, config_name, require
from pyimagesearch.data.lists import ListEntry, make_entries, write_list
from pyimagesearch.data.manifest import MANIFEST_FORMAT, SPLITS, manifest_path, write_manifest
from pyimagesearch.utils.files import fsync_path, sha256_file
from pyimagesearch.utils.imagenethelper import DatasetError, ImageNetHelper

logger = logging.getLogger(__name__)

BUILD_FIELDS = (
    "BASE_PATH", "IMAGES_PATH", "WORD_IDS", "TRAIN_LIST", "VAL_LIST", "VAL_LABELS",
    "VAL_BLACKLIST", "NUM_CLASSES", "NUM_TEST_IMAGES", "TRAIN_MX_LIST", "VAL_MX_LIST",
    "TEST_MX_LIST", "TRAIN_MX_REC", "VAL_MX_REC", "TEST_MX_REC", "DATASET_MEAN", "RESIZE",
    "ENCODING_QUALITY", "BUILD_THREADS", "INPUT_SIZE",
)
_SPLIT_FIELDS = {"train": ("TRAIN_MX_LIST", "TRAIN_MX_REC"),
                 "val": ("VAL_MX_LIST", "VAL_MX_REC"),
                 "test": ("TEST_MX_LIST", "TEST_MX_REC")}
_PARTIAL = ".partial-"

# What Pillow's plugins raise on malformed data besides UnidentifiedImageError.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error,
                  Image.DecompressionBombError)


class UnreadableImage(Exception):
    """A listed file that cannot become a record; ``str(exc)`` is the reason."""


class StrictBuildError(DatasetError):
    """``--strict`` and at least one listed file could not be read.

    Attributes
    ----------
    skipped : dict
        split -> list of ``{"path", "reason"}``.
    """

    def __init__(self, skipped: dict[str, list[dict[str, str]]]) -> None:
        self.skipped = skipped
        total = sum(len(items) for items in skipped.values())
        lines = [f"--strict: {total} listed file(s) cannot be read; nothing was written"]
        lines += [f"  {split}: {item['path']}: {item['reason']}"
                  for split, items in skipped.items() for item in items]
        super().__init__("\n".join(lines))


# --- decoding, converting, resizing, encoding (runs in the worker processes) -------------
def decode_image(data: bytes, draft_size: int | None = None) -> np.ndarray:
    """Decode image bytes of any format Pillow knows into an RGB ``uint8`` array.

    Truncated files raise :class:`UnreadableImage` (Pillow raises on missing data unless
    ``ImageFile.LOAD_TRUNCATED_IMAGES`` is set, which is forced off here). CMYK JPEGs are
    read with Adobe polarity, as Photoshop writes them. EXIF orientation is applied, as
    OpenCV's ``imread`` (and so ``im2rec``) does.

    Parameters
    ----------
    data : bytes
        The file's contents.
    draft_size : int, optional
        If given, a JPEG is decoded with DCT scaling (``Image.draft``) to the smallest size
        whose shorter side is still at least ``draft_size``, which is much cheaper for the
        multi-megapixel photos in ImageNet.
    """
    if not data:
        raise UnreadableImage("empty file")
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise UnreadableImage("not an image (unrecognised format)") from None
    except _DECODE_ERRORS as exc:
        raise UnreadableImage(f"damaged image header ({exc})") from None
    kind = image.format or "image"
    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with warnings.catch_warnings():
            # Palette transparency and odd EXIF data warn; neither loses the image.
            warnings.simplefilter("ignore")
            if draft_size and kind == "JPEG":
                image.draft("RGB", (draft_size, draft_size))
            image.load()
            if image.getexif().get(0x0112, 1) != 1:
                image = ImageOps.exif_transpose(image)
            return _to_rgb(image)
    except _DECODE_ERRORS as exc:
        what = "truncated" if "truncated" in str(exc) else "damaged"
        raise UnreadableImage(f"{what} {kind} ({exc})") from None
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous


def _to_rgb(image: Image.Image) -> np.ndarray:
    if image.mode == "RGB":
        return np.asarray(image)
    if image.mode.startswith("I;16") or image.mode in ("I", "F"):
        # 16-bit (or float) grayscale: Pillow's convert("L") clips instead of scaling.
        values = np.asarray(image, dtype=np.float64)
        if image.mode != "F" or values.max(initial=0) > 255:
            values = values / 257.0
        gray = np.clip(values + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    # CMYK, L, LA, P, PA, RGBA, YCbCr, ...; alpha is dropped as OpenCV and PIL loaders do.
    return np.asarray(image.convert("RGB"))


def resize_shorter(image: np.ndarray, size: int) -> np.ndarray:
    """Resize so the shorter side is ``size`` (aspect kept, longer side rounded, >= size).

    Shrinking uses ``cv2.INTER_AREA`` (no aliasing); enlarging uses ``cv2.INTER_CUBIC``.
    """
    height, width = image.shape[:2]
    if min(height, width) == size:
        return image
    if height <= width:
        new_height, new_width = size, max(size, int(width * size / height + 0.5))
    else:
        new_height, new_width = max(size, int(height * size / width + 0.5)), size
    interpolation = cv2.INTER_AREA if size < min(height, width) else cv2.INTER_CUBIC
    return cv2.resize(image, (new_width, new_height), interpolation=interpolation)


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    """Encode an RGB array as a JPEG with OpenCV (which wants BGR)."""
    bgr = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR)
    ok, buffer = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:  # pragma: no cover - OpenCV only fails on invalid arguments
        raise RuntimeError("cv2.imencode failed")
    return buffer.tobytes()


def read_image_file(path: str | Path, draft_size: int | None = None) -> np.ndarray:
    """Read and decode one image file; :class:`UnreadableImage` says why it cannot be."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise UnreadableImage("file not found") from None
    except OSError as exc:
        raise UnreadableImage(f"cannot be read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(info.st_mode):
        raise UnreadableImage("not a regular file")
    if info.st_size == 0:
        raise UnreadableImage("empty file")
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise UnreadableImage(f"cannot be read ({exc.strerror or exc})") from None
    return decode_image(data, draft_size)


def prepare_image(path: str | Path, resize: int, quality: int) -> bytes:
    """The JPEG bytes a record stores for one image file: decoded, RGB, resized, encoded."""
    rgb = read_image_file(path, draft_size=resize)
    return encode_jpeg(resize_shorter(rgb, resize), quality)


def stored_image_mean(jpeg: bytes) -> tuple[float, float, float]:
    """Per-channel (R, G, B) mean of a stored JPEG, decoded as ImageRecordIter's OpenCV does."""
    bgr = cv2.imdecode(np.frombuffer(jpeg, dtype=np.uint8), cv2.IMREAD_COLOR)
    blue, green, red = cv2.mean(bgr)[:3]
    return red, green, blue


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


# --- the mean ----------------------------------------------------------------------------
def write_mean(path: str | Path, mean: dict[str, float]) -> None:
    """Write the book's mean file: ``{"R": ..., "G": ..., "B": ...}``."""
    with open(path, "w", encoding="utf-8") as handle:
        json.dump({key: float(mean[key]) for key in ("R", "G", "B")}, handle, indent=2)
        handle.write("\n")


def load_mean(path: str | Path) -> dict[str, float]:
    """Read a mean file written by :func:`write_mean` (or by the book's build script)."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        raise DatasetError("mean file not found (run build_imagenet.py)", path) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"mean file cannot be read ({exc})", path) from None
    if not isinstance(data, dict):
        raise DatasetError("mean file is not a JSON object", path)
    mean = {}
    for key in ("R", "G", "B"):
        value = data.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value):
            raise DatasetError(f"mean file lacks a finite number for {key!r}", path)
        mean[key] = float(value)
    return mean


# --- writing under temporary names, committing at the end -------------------------------
def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_partials(finals: Iterable[Path]) -> list[Path]:
    """Delete ``<name>.partial-<pid>`` files that a dead build left beside ``finals``."""
    removed = []
    for final in finals:
        if not final.parent.is_dir():
            continue
        for candidate in final.parent.glob(f"{final.name}{_PARTIAL}*"):
            pid = candidate.name.rsplit(_PARTIAL, 1)[1]
            if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
                candidate.unlink(missing_ok=True)
                removed.append(candidate)
                logger.info("removed %s, left by an interrupted build", candidate)
    return removed


class _Staging:
    """Temporary files that become a dataset only all together, when committed."""

    def __init__(self) -> None:
        self.pending: list[tuple[Path, Path]] = []

    def path(self, final: str | Path) -> Path:
        final = Path(final)
        final.parent.mkdir(parents=True, exist_ok=True)
        temporary = final.with_name(f"{final.name}{_PARTIAL}{os.getpid()}")
        self.pending.append((temporary, final))
        return temporary

    def commit(self, manifest_file: Path, manifest: dict[str, Any]) -> None:
        for temporary, _ in self.pending:
            fsync_path(temporary)
        # Drop the old manifest first: if we die half-way through the renames, the folder
        # has no manifest and reads as incomplete rather than as a mix of two builds.
        manifest_file.unlink(missing_ok=True)
        for temporary, final in self.pending:
            os.replace(temporary, final)
        for folder in {final.parent for _, final in self.pending}:
            fsync_path(folder)
        self.pending.clear()
        write_manifest(manifest_file, manifest)

    def discard(self) -> None:
        for temporary, _ in self.pending:
            temporary.unlink(missing_ok=True)
        self.pending.clear()


# --- the whole build ---------------------------------------------------------------------
def check_build_config(config: ModuleType) -> None:
    """Refuse a config that cannot give a usable dataset, before any work starts."""
    require(config, *BUILD_FIELDS)
    name = config_name(config)
    resize, input_size = int(config.RESIZE), int(config.INPUT_SIZE)
    if resize < input_size:
        raise ConfigError(
            f"config {name}: RESIZE={resize} is smaller than INPUT_SIZE={input_size}; every "
            f"stored image must be at least as large as the training crop")
    if not 1 <= int(config.ENCODING_QUALITY) <= 100:
        raise ConfigError(f"config {name}: ENCODING_QUALITY must lie in 1..100, "
                          f"not {config.ENCODING_QUALITY}")
    if int(config.BUILD_THREADS) < 1:
        raise ConfigError(f"config {name}: BUILD_THREADS must be at least 1")
    lists = [Path(getattr(config, lst)).resolve() for lst, _ in _SPLIT_FIELDS.values()]
    records = [Path(getattr(config, rec)).resolve() for _, rec in _SPLIT_FIELDS.values()]
    outputs = [*lists, *records, *map(idx_path_for, records), Path(config.DATASET_MEAN).resolve()]
    if len(set(outputs)) != len(outputs):
        raise ConfigError(f"config {name}: the list, record and mean paths must all differ")
    if any(path.suffix != ".rec" for path in records):
        raise ConfigError(f"config {name}: TRAIN_MX_REC, VAL_MX_REC and TEST_MX_REC must end "
                          f"in .rec (the .idx goes beside them)")


def idx_path_for(rec_path: str | Path) -> Path:
    """``train.rec`` -> ``train.idx``, the convention of im2rec and ImageRecordIter."""
    return Path(rec_path).with_suffix(".idx")


def _missing_files(entries: dict[str, list[ListEntry]],
                   image_root: str) -> dict[str, list[dict[str, str]]]:
    """Cheap stat-only pass so ``--strict`` fails in seconds on absent or empty files."""
    found: dict[str, list[dict[str, str]]] = {}
    for split, items in entries.items():
        for entry in items:
            try:
                info = os.stat(os.path.join(image_root, entry.path))
                reason = ("not a regular file" if not stat.S_ISREG(info.st_mode)
                          else "empty file" if info.st_size == 0 else None)
            except FileNotFoundError:
                reason = "file not found"
            except OSError as exc:
                reason = f"cannot be read ({exc.strerror or exc})"
            if reason:
                found.setdefault(split, []).append({"path": entry.path, "reason": reason})
    return found


def _tool_versions() -> dict[str, str]:
    import mxnet as mx
    import PIL

    return {"python": platform.python_version(), "mxnet": mx.__version__,
            "numpy": np.__version__, "opencv": cv2.__version__, "pillow": PIL.__version__}


def make_split_lists(helper: ImageNetHelper) -> dict[str, list[ListEntry]]:
    """The train, val and test lists of the book: test carved out of train, train shuffled.

    The training list is shuffled once here, with ``TEST_SPLIT_SEED``: ImageRecordIter
    reads a record file in chunks (and in contiguous parts per worker in distributed
    training), so class-sorted records would give class-sorted batches.
    """
    seed = int(getattr(helper.config, "TEST_SPLIT_SEED", 42))
    train_paths, train_labels = helper.build_training_set()
    val_paths, val_labels = helper.build_validation_set()
    split = helper.split_test_set(train_paths, train_labels, seed=seed)
    order = np.random.RandomState(seed).permutation(len(split.train_paths))
    return {
        "train": make_entries([split.train_paths[i] for i in order],
                              [split.train_labels[i] for i in order]),
        "val": make_entries(val_paths, val_labels),
        "test": make_entries(split.test_paths, split.test_labels),
    }


def build_dataset(config: ModuleType, strict: bool = False) -> dict[str, Any]:
    """Raw ILSVRC tree -> three ``.lst`` -> three ``.rec``/``.idx`` + mean + manifest.

    Parameters
    ----------
    config : module
        A config with :data:`BUILD_FIELDS` (and optionally ``LABEL_ORDER``,
        ``TEST_SPLIT_SEED``).
    strict : bool
        Fail (:class:`StrictBuildError`) instead of skipping unreadable files; nothing
        final-named is written then.

    Returns
    -------
    dict
        The manifest, as written.
    """
    started, started_at = time.monotonic(), datetime.now(timezone.utc)
    check_build_config(config)
    helper = ImageNetHelper(config)
    entries = make_split_lists(helper)
    for name, items in entries.items():
        logger.info("%s: %d images listed", name, len(items))
    image_root = str(config.IMAGES_PATH)
    if strict and (absent := _missing_files(entries, image_root)):
        raise StrictBuildError(absent)

    outputs = {name: {"lst": Path(getattr(config, lst)), "rec": Path(getattr(config, rec)),
                      "idx": idx_path_for(getattr(config, rec))}
               for name, (lst, rec) in _SPLIT_FIELDS.items()}
    mean_file, manifest_file = Path(config.DATASET_MEAN), manifest_path(config)
    remove_stale_partials([p for files in outputs.values() for p in files.values()]
                          + [mean_file, manifest_file])

    staging = _Staging()
    temporary: dict[str, dict[str, Path]] = {}
    results: dict[str, PackResult] = {}
    try:
        with ImageWorkers(int(config.BUILD_THREADS)) as workers:
            for name in SPLITS:
                temporary[name] = {kind: staging.path(path)
                                   for kind, path in outputs[name].items()}
                write_list(temporary[name]["lst"], entries[name])
                results[name] = pack_records(
                    entries[name], image_root, temporary[name]["rec"],
                    temporary[name]["idx"], resize=int(config.RESIZE),
                    quality=int(config.ENCODING_QUALITY), workers=workers,
                    compute_mean=(name == "train"), description=name)
                if strict and results[name].skipped:
                    raise StrictBuildError({name: results[name].skipped})
        if results["train"].written == 0:
            raise DatasetError("no training image could be read, so there is no dataset "
                               "(see the skipped files above)")
        write_mean(staging.path(mean_file), results["train"].mean)
        folder = manifest_file.resolve().parent
        manifest = {
            "format": MANIFEST_FORMAT,
            "config": config_name(config),
            "created": started_at.isoformat(timespec="seconds"),
            "build_seconds": None,
            **_dataset_description(config, helper),
            "mean": results["train"].mean,
            "mean_file": os.path.relpath(mean_file.resolve(), folder),
            "splits": {name: _split_entry(results[name], outputs[name], temporary[name],
                                          folder)
                       for name in SPLITS},
            "sources": helper.fingerprints(),
            "tools": _tool_versions(),
        }
        manifest["build_seconds"] = round(time.monotonic() - started, 3)
        staging.commit(manifest_file, manifest)
    finally:
        staging.discard()
    return manifest


def _dataset_description(config: ModuleType, helper: ImageNetHelper) -> dict[str, Any]:
    return {
        "label_order": helper.label_order,
        "num_classes": len(helper.classes),
        "classes": [info.as_dict() for info in helper.classes],
        "resize": int(config.RESIZE),
        "quality": int(config.ENCODING_QUALITY),
        "input_size": int(config.INPUT_SIZE),
        "image_root": str(Path(config.IMAGES_PATH).resolve()),
        # The training list's order is drawn with the same seed.
        "test_split": {"num_test_images": int(config.NUM_TEST_IMAGES),
                       "seed": int(getattr(config, "TEST_SPLIT_SEED", 42))},
        "build_threads": int(config.BUILD_THREADS),
    }


def _split_entry(result: PackResult, finals: dict[str, Path], temporary: dict[str, Path],
                 folder: Path) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "listed": result.listed,
        "written": result.written,
        "count": result.written,
        "skipped": result.skipped,
        "seconds": round(result.seconds, 3),
    }
    for kind in ("lst", "rec", "idx"):
        entry[kind] = os.path.relpath(finals[kind].resolve(), folder)
        entry[f"{kind}_bytes"] = temporary[kind].stat().st_size
        if entry[f"{kind}_bytes"] >= 1 << 30:  # minutes for ImageNet's train.rec: say so
            logger.info("hashing %s (%.1f GB)", finals[kind].name, entry[f"{kind}_bytes"] / 1e9)
        entry[f"{kind}_sha256"] = sha256_file(temporary[kind])
    return entry


def format_summary(manifest: dict[str, Any], max_reasons: int = 20) -> str:
    """People's summary of a build: per split ``listed N = written W + skipped S``."""
    width = max(len(name) for name in SPLITS)
    lines = []
    for name in SPLITS:
        entry = manifest["splits"][name]
        lines.append(f"{name + ':':<{width + 1}} listed {entry['listed']} = written "
                     f"{entry['written']} + skipped {len(entry['skipped'])}")
    for name in SPLITS:
        skipped = manifest["splits"][name]["skipped"]
        if skipped:
            # "truncated JPEG (image file is truncated ...)" counts as "truncated JPEG".
            tally = Counter(item["reason"].split(" (")[0] for item in skipped)
            lines.append(f"skipped in {name}: " + ", ".join(
                f"{count} {reason}" for reason, count in tally.most_common()))
            lines += [f"  {item['path']}: {item['reason']}" for item in skipped[:max_reasons]]
            if len(skipped) > max_reasons:
                lines.append(f"  ... and {len(skipped) - max_reasons} more (see the manifest)")
    mean = manifest["mean"]
    lines.append(f"mean R={mean['R']:.3f} G={mean['G']:.3f} B={mean['B']:.3f} "
                 f"(training set, {manifest['resize']}px shorter side)")
    lines.append(f"labels: {manifest['label_order']} order, {manifest['num_classes']} classes; "
                 f"built in {manifest['build_seconds']:.1f} s")
    return "\n".join(lines)
