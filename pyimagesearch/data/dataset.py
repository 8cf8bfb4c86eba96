"""The dataset contract: what a built record dataset is, and how every command checks it.

Three splits of records, the training set's mean and ``manifest.json``, written last by every
builder (:func:`new_manifest`, one schema); the manifest's identity digest lets a checkpoint
name the dataset it was trained on. The schema, the identity and the checks: docs/data.md.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import platform
import re
import struct
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pyimagesearch.config import Settings
from pyimagesearch.errors import DatasetError
from pyimagesearch.files import sha256_file

logger = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
# The config settings that name each split's list and records.
SPLIT_SETTINGS = {"train": ("TRAIN_MX_LIST", "TRAIN_MX_REC"),
                  "val": ("VAL_MX_LIST", "VAL_MX_REC"),
                  "test": ("TEST_MX_LIST", "TEST_MX_REC")}
MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 2
RGB = ("R", "G", "B")
# A mean file the build writes is under 100 bytes; a larger one is not a mean file.
MEAN_FILE_LIMIT = 1 << 20


class DatasetChanged(DatasetError):
    """The dataset's files changed while a run used them (a rebuild under a training);
    ``resume_epoch``: the last checkpoint written before the change was seen, if any."""

    def __init__(self, message: str, path: str | Path | None = None,
                 resume_epoch: int | None = None) -> None:
        super().__init__(message, path)
        self.resume_epoch = resume_epoch


# --- where things are ------------------------------------------------------------------------
def manifest_path(config: Settings) -> Path:
    """Where the manifest of ``config``'s dataset lives: beside the training records."""
    config.require("TRAIN_MX_REC")
    return Path(config.TRAIN_MX_REC).parent / MANIFEST_NAME


def rebuild_command(config: Settings) -> str:
    """The command that builds ``config``'s records (``BUILD_SCRIPT``: CIFAR's differs)."""
    return f"python {config.BUILD_SCRIPT} --config {config.source}"


def idx_path(rec: str | Path) -> Path:
    return Path(rec).with_suffix(".idx")


def split_records(config: Settings, split: str) -> Path:
    """The ``.rec`` of ``split`` as ``config`` names it (``TRAIN_MX_REC``, ...)."""
    if split not in SPLIT_SETTINGS:
        raise ValueError(f"unknown split {split!r}; known: {', '.join(SPLITS)}")
    return Path(getattr(config, SPLIT_SETTINGS[split][1]))


# --- means -------------------------------------------------------------------------------------
def _read_json(path: str | Path, what: str, missing: str,
               limit: int | None = None) -> tuple[bytes, Any]:
    """The bytes and the JSON value of a file; :class:`DatasetError` names it and says why
    it cannot be read (``missing``: what an absent file means; ``limit``: the most bytes
    such a file can have)."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(-1 if limit is None else limit + 1)
    except FileNotFoundError:
        raise DatasetError(f"{what} not found{missing}", path) from None
    except OSError as exc:
        raise DatasetError(f"{what} cannot be read ({exc})", path) from None
    if limit is not None and len(raw) > limit:
        raise DatasetError(f"{what} is larger than {limit} bytes: not one the build writes",
                           path)
    try:
        return raw, json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError) as exc:  # not UTF-8, not JSON, nested too deeply
        raise DatasetError(f"{what} cannot be read ({exc})", path) from None


def _mean_problem(value: Any) -> str | None:
    """Why ``value`` is not a ``{"R", "G", "B"}`` mean of finite numbers, or None."""
    if not isinstance(value, dict):
        return "is not a JSON object"
    for key in RGB:
        number = value.get(key)
        try:
            finite = not isinstance(number, bool) and math.isfinite(number)
        except (TypeError, OverflowError):  # not a number, or an integer beyond any float
            finite = False
        if not finite:
            return f"lacks a finite number for {key!r}"
    return None


def write_mean(path: str | Path, mean: dict[str, float]) -> None:
    """Write the book's mean file: ``{"R": ..., "G": ..., "B": ...}``."""
    with open(path, "w", encoding="utf-8") as handle:
        json.dump({key: float(mean[key]) for key in RGB}, handle, indent=2)
        handle.write("\n")


def load_mean(path: str | Path) -> dict[str, float]:
    """Read a mean file written by :func:`write_mean` (or by the book's build script)."""
    _, data = _read_json(path, "mean file", "", MEAN_FILE_LIMIT)
    problem = _mean_problem(data)
    if problem:
        raise DatasetError(f"mean file {problem}", path)
    return {key: float(data[key]) for key in RGB}


def write_mean_image(path: str | Path, mean: np.ndarray) -> None:
    """Save a (3, H, W) RGB mean image as MXNet's ``.nd`` file (one array, ``mean_img``)."""
    import mxnet as mx

    mx.nd.save(str(path), {"mean_img": mx.nd.array(mean, dtype="float32")})


# What MXNet 1.9 writes for one dense float32 CPU array of shape (3, H, W) named "mean_img":
# the list header (magic 0x112, reserved, array count), the array (magic 0xF993FAC9, storage
# type 0, ndim and the int64 dims, CPU context 1/0, type 0 = float32, the data), the names.
_ND_HEAD = struct.Struct("<QQQIiIqqqiii")
_ND_NAME = b"mean_img"
_ND_TAIL = struct.pack("<QQ", 1, len(_ND_NAME)) + _ND_NAME
# Any side beyond this is not a mean image (CIFAR's is 32).
_ND_MAX_SIDE = 1 << 14


def load_mean_image(path: str | Path) -> np.ndarray:
    """The (3, H, W) float32 mean image of a :func:`write_mean_image` file.

    Parsed here, not by ``mx.nd.load``, which on a damaged file can hang, exhaust memory or
    fail with a traceback: the header is checked before its sizes are trusted.
    """
    def refuse(why: str) -> DatasetError:
        return DatasetError(f"per-pixel mean cannot be read ({why}); it is not a (3, H, W) "
                            f"'mean_img' file of the build", path)

    try:
        with open(path, "rb") as handle:
            head = handle.read(_ND_HEAD.size)
            if len(head) < _ND_HEAD.size:
                raise refuse(f"{len(head)} bytes")
            (magic, _, arrays, array_magic, storage, ndim, channels, height, width,
             device, _, dtype) = _ND_HEAD.unpack(head)
            if (magic, arrays, array_magic, storage, ndim, channels, device, dtype) \
                    != (0x112, 1, 0xF993FAC9, 0, 3, 3, 1, 0) \
                    or not (0 < height <= _ND_MAX_SIDE and 0 < width <= _ND_MAX_SIDE):
                raise refuse("another layout, type or shape")
            size = 3 * height * width * 4
            data, tail = handle.read(size), handle.read(len(_ND_TAIL) + 1)
    except FileNotFoundError:
        raise DatasetError("per-pixel mean not found", path) from None
    except OSError as exc:
        raise refuse(str(exc)) from None
    if len(data) < size or tail != _ND_TAIL:
        raise refuse("truncated, or not one array named 'mean_img'")
    mean = np.frombuffer(data, "<f4").reshape(3, height, width).astype(np.float32)
    if not np.isfinite(mean).all():
        raise refuse("it holds NaN or infinite values")
    return mean


# --- the manifest --------------------------------------------------------------------------------
def tool_versions() -> dict[str, str]:
    """Versions of what wrote the records (recorded in the manifest)."""
    import cv2
    import mxnet as mx
    import PIL

    return {"python": platform.python_version(), "mxnet": mx.__version__,
            "numpy": np.__version__, "opencv": cv2.__version__, "pillow": PIL.__version__}


def _relative(path: str | Path, folder: Path) -> str:
    return os.path.relpath(Path(path).resolve(), folder)


def _is_count(value: Any) -> bool:
    """A whole number >= 0 (JSON's true and false are not)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_sha256(value: Any) -> bool:
    return isinstance(value, str) and re.fullmatch("[0-9a-f]{64}", value) is not None


# Every field a reader of the manifest acts on, and what it must be (docs/data.md).
_TEXT = (lambda v: isinstance(v, str), "text")
_COUNT = (_is_count, "a whole number >= 0")
_SHA256 = (_is_sha256, "a SHA-256 in hex")
_TOP_FIELDS = {
    "builder": _TEXT, "label_order": _TEXT, "num_classes": _COUNT,
    "classes": (lambda v: isinstance(v, list), "a list"),
    "resize": (lambda v: _is_count(v) and v > 0, "a whole number >= 1"),
    "encoding": (lambda v: v in ("jpeg", "png"), "'jpeg' or 'png'"),
    "quality": (lambda v: v is None or _is_count(v), "a whole number or null"),
    "mean": (lambda v: _mean_problem(v) is None, "{'R', 'G', 'B'} finite numbers"),
    "mean_sha256": _SHA256,
    "mean_image_sha256": (lambda v: v is None or _is_sha256(v), "a SHA-256 or null"),
    "splits": (lambda v: isinstance(v, dict), "an object"),
    "identity": _SHA256,
}
_SPLIT_FIELDS = {
    "listed": _COUNT, "written": _COUNT, "count": _COUNT, "rec": _TEXT, "idx": _TEXT,
    "skipped": (lambda v: isinstance(v, list) and all(
        isinstance(item, dict) and isinstance(item.get("path"), str)
        and isinstance(item.get("reason"), str) for item in v), "a list of {path, reason}"),
    "rec_bytes": _COUNT, "idx_bytes": _COUNT, "rec_sha256": _SHA256, "idx_sha256": _SHA256,
}
_OPTIONAL_SPLIT_FIELDS = {
    "class_counts": (lambda v: isinstance(v, list) and all(map(_is_count, v)),
                     "a list of whole numbers >= 0"),
}


def _field_problem(fields: dict[str, Any], rules: dict[str, tuple[Any, str]], where: str,
                   required: bool = True) -> str | None:
    for key, (valid, what) in rules.items():
        if key not in fields:
            if required:
                return f"lacks {where}{key}"
        elif not valid(fields[key]):
            return f"{where}{key} is not {what}: {str(fields[key])[:60]!r}"
    return None


def manifest_problem(manifest: dict[str, Any]) -> str | None:
    """What shows that a manifest is not as its build wrote it (a field missing or of the
    wrong type, counts that do not add up, classes not numbered by label), or None."""
    problem = _field_problem(manifest, _TOP_FIELDS, "")
    if problem:
        return problem
    classes, num_classes = manifest["classes"], manifest["num_classes"]
    if num_classes != len(classes):
        return f"num_classes is {num_classes} but it lists {len(classes)} classes"
    for label, info in enumerate(classes):
        if not isinstance(info, dict) or not _is_count(info.get("label")) \
                or info["label"] != label or not isinstance(info.get("name"), str):
            return f"classes[{label}] is not {{'label': {label}, 'name': ...}}"
    for name in SPLITS:
        entry = manifest["splits"].get(name)
        if not isinstance(entry, dict):
            return f"lacks splits.{name}"
        where = f"splits.{name}."
        problem = (_field_problem(entry, _SPLIT_FIELDS, where)
                   or _field_problem(entry, _OPTIONAL_SPLIT_FIELDS, where, required=False))
        if problem:
            return problem
        written, skipped = entry["written"], len(entry["skipped"])
        if entry["count"] != written:
            return f"{where}count is {entry['count']} but {where}written is {written}"
        if entry["listed"] != written + skipped:
            return (f"{where}listed is {entry['listed']}, not written {written} + skipped "
                    f"{skipped}")
        counts = entry.get("class_counts")
        if counts is not None and (len(counts) != num_classes or sum(counts) != written):
            return (f"{where}class_counts ({len(counts)} classes, {sum(counts)} records) "
                    f"do not fit num_classes {num_classes} and written {written}")
    return None


def split_entry(config: Settings, split: str, temporary: dict[str, Path], *, listed: int,
                written: int, skipped: list[dict[str, str]], class_counts: list[int],
                **extra: Any) -> dict[str, Any]:
    """A split's manifest entry: its counts, the builder's ``extra`` keys, and the name
    (relative to the manifest), size and SHA-256 of each file in ``temporary`` (``rec``,
    ``idx``, ``lst``: the files as written, before the commit renames them)."""
    rec = split_records(config, split)
    finals = {"rec": rec, "idx": idx_path(rec), "lst": getattr(config, SPLIT_SETTINGS[split][0])
              if "lst" in temporary else None}
    folder = manifest_path(config).resolve().parent
    entry = {"listed": listed, "written": written, "count": written, "skipped": skipped,
             **extra, "class_counts": class_counts}
    for kind in ("rec", "idx", "lst"):
        if kind in temporary:
            size = temporary[kind].stat().st_size
            if size >= 1 << 30:  # minutes for ImageNet's train.rec: say so
                logger.info("hashing %s (%.1f GB)", Path(finals[kind]).name, size / 1e9)
            entry[kind] = _relative(finals[kind], folder)
            entry[f"{kind}_bytes"] = size
            entry[f"{kind}_sha256"] = sha256_file(temporary[kind])
    return entry


def new_manifest(*, builder: str, config: Settings, created: str, label_order: str,
                 classes: list[dict[str, Any]], resize: int, encoding: str,
                 quality: int | None, mean: dict[str, float], mean_sha256: str,
                 mean_image_sha256: str | None, splits: dict[str, dict[str, Any]],
                 build: dict[str, Any], sources: dict[str, Any]) -> dict[str, Any]:
    """The manifest every builder writes (schema in docs/data.md): ``splits`` come from
    :func:`split_entry`, the SHA-256s are of the mean files as written; ``build_seconds``
    and the ``checksum`` (:func:`manifest_checksum`, last) are left for the caller."""
    folder = manifest_path(config).resolve().parent
    manifest: dict[str, Any] = {
        "format": MANIFEST_FORMAT,
        "builder": builder,
        "config": config.source,
        "created": created,
        "build_seconds": None,
        "label_order": label_order,
        "num_classes": len(classes),
        "classes": classes,
        "resize": int(resize),
        "encoding": encoding,
        "quality": quality,
        "input_size": config.INPUT_SIZE,
        "mean": {key: float(mean[key]) for key in RGB},
        "mean_file": _relative(config.DATASET_MEAN, folder),
        "mean_sha256": mean_sha256,
        "mean_image_file": (None if config.MEAN_IMAGE is None
                            else _relative(config.MEAN_IMAGE, folder)),
        "mean_image_sha256": mean_image_sha256,
        "splits": splits,
        "build": build,
        "sources": sources,
        "tools": tool_versions(),
    }
    manifest["identity"] = identity_digest(manifest)
    problem = manifest_problem(manifest)
    if problem:
        raise ValueError(f"a builder made a manifest that would be refused: {problem}")
    return manifest


def manifest_text(manifest: dict[str, Any]) -> str:
    return json.dumps(manifest, indent=2) + "\n"


def manifest_checksum(manifest: dict[str, Any]) -> str:
    """SHA-256 of every field of a manifest but ``checksum`` (canonical JSON): an edit of any
    field, provenance included, changes it."""
    content = json.loads(json.dumps(manifest))  # as it reads back: string keys, lists
    content.pop("checksum", None)
    text = json.dumps(content, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def read_manifest(path: str | Path) -> dict[str, Any]:
    """Read and check a manifest file (:class:`DatasetError` names it).

    Adds ``path``, ``sha256`` (of the file's bytes) and per split ``rec_path``,
    ``idx_path`` (and ``lst_path``), resolved against the manifest's folder: a dataset
    folder can be moved or mounted elsewhere.
    """
    path = Path(path)
    raw, manifest = _read_json(path, "dataset manifest", "; the dataset is missing or its "
                               "build did not finish")
    if not isinstance(manifest, dict):
        raise DatasetError("dataset manifest is not a JSON object", path)
    if manifest.get("format") != MANIFEST_FORMAT:
        raise DatasetError(f"unsupported manifest format {repr(manifest.get('format'))[:20]} "
                           f"(this version reads {MANIFEST_FORMAT}); rebuild the dataset", path)
    problem = manifest_problem(manifest)
    if problem is None and identity_digest(manifest) != manifest["identity"]:
        problem = "its contents do not match its identity"
    if problem is None and "checksum" in manifest \
            and manifest["checksum"] != manifest_checksum(manifest):
        problem = "its contents do not match its checksum"
    if problem:
        raise DatasetError(f"dataset manifest was edited after the build, or is damaged: "
                           f"{problem}; rebuild the dataset", path)
    folder = path.resolve().parent
    manifest["path"] = str(path)
    manifest["sha256"] = hashlib.sha256(raw).hexdigest()
    for name in SPLITS:
        entry = manifest["splits"][name]
        for key in ("lst", "rec", "idx"):
            if isinstance(entry.get(key), str):
                entry[f"{key}_path"] = os.path.normpath(folder / entry[key])
    return manifest


def load_manifest(config: Settings) -> dict[str, Any]:
    """The manifest of ``config``'s dataset; a missing one names the command that builds it."""
    path = manifest_path(config)
    try:
        return read_manifest(path)
    except DatasetError as exc:
        hint = f"; build it with: {rebuild_command(config)}" if not path.is_file() else ""
        raise DatasetError(f"{exc.reason} [config {config.source}]{hint}", exc.path,
                           exc.line) from None


# --- identity ----------------------------------------------------------------------------------
def _identity_content(manifest: dict[str, Any]) -> dict[str, Any]:
    return {
        "label_order": manifest["label_order"],
        "classes": [str(c.get("wnid") or c.get("name")) for c in manifest["classes"]],
        "resize": manifest["resize"],
        "encoding": manifest.get("encoding"),
        "quality": manifest.get("quality"),
        "mean": manifest["mean"],
        "mean_image_sha256": manifest.get("mean_image_sha256"),
        "splits": {name: {key: manifest["splits"][name][key]
                          for key in ("count", "rec_bytes", "rec_sha256", "idx_bytes",
                                      "idx_sha256")}
                   for name in SPLITS},
    }


def identity_digest(manifest: dict[str, Any]) -> str:
    """SHA-256 of what a network trained on the dataset depends on (docs/data.md)."""
    text = json.dumps(_identity_content(manifest), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class DatasetIdentity:
    """What a checkpoint records of the dataset it was trained on, readable and comparable."""

    digest: str
    label_order: str
    classes: tuple[str, ...]
    resize: int
    mean: dict[str, float]
    mean_image_sha256: str | None
    splits: dict[str, dict[str, Any]]
    manifest: str = ""

    @classmethod
    def of(cls, manifest: dict[str, Any]) -> DatasetIdentity:
        content = _identity_content(manifest)
        return cls(digest=manifest["identity"], label_order=content["label_order"],
                   classes=tuple(content["classes"]), resize=int(content["resize"]),
                   mean=dict(content["mean"]),
                   mean_image_sha256=content["mean_image_sha256"],
                   splits={name: {"count": s["count"], "rec_sha256": s["rec_sha256"]}
                           for name, s in content["splits"].items()},
                   manifest=str(manifest.get("path", "")))

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "classes": list(self.classes)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DatasetIdentity:
        return cls(digest=data["digest"], label_order=data["label_order"],
                   classes=tuple(data["classes"]), resize=int(data["resize"]),
                   mean=dict(data["mean"]), mean_image_sha256=data.get("mean_image_sha256"),
                   splits=dict(data["splits"]), manifest=data.get("manifest", ""))


# What a command compares between a checkpoint's dataset and the one it is about to use:
# everything for training and testing (another test split may hold training images),
# what the outputs mean and how pixels are prepared for exporting and classifying.
SCOPE_ALL = "all"
SCOPE_PREPROCESSING = "preprocessing"


def identity_differences(trained: DatasetIdentity, current: DatasetIdentity,
                         scope: str = SCOPE_ALL) -> list[str]:
    """Readable differences ("label order: checkpoint 'map_clsloc', dataset 'sorted_wnid'")."""
    found = []
    if trained.label_order != current.label_order:
        found.append(f"label order: checkpoint {trained.label_order!r}, dataset "
                     f"{current.label_order!r}")
    if trained.classes != current.classes:
        if len(trained.classes) != len(current.classes):
            found.append(f"classes: checkpoint {len(trained.classes)}, dataset "
                         f"{len(current.classes)}")
        else:
            label = next(i for i, (a, b) in enumerate(zip(trained.classes, current.classes))
                         if a != b)
            found.append(f"class of label {label}: checkpoint {trained.classes[label]!r}, "
                         f"dataset {current.classes[label]!r}")
    if trained.resize != current.resize:
        found.append(f"stored image size: checkpoint {trained.resize} px, dataset "
                     f"{current.resize} px")
    if trained.mean != current.mean:
        found.append(f"mean: checkpoint {rgb_text(trained.mean)}, dataset "
                     f"{rgb_text(current.mean)}")
    if trained.mean_image_sha256 != current.mean_image_sha256:
        found.append("per-pixel mean image: a different file")
    if scope == SCOPE_ALL:
        for name in SPLITS:
            old, new = trained.splits.get(name, {}), current.splits.get(name, {})
            if old.get("count") != new.get("count"):
                found.append(f"{name} records: checkpoint {old.get('count')}, dataset "
                             f"{new.get('count')}")
            elif old.get("rec_sha256") != new.get("rec_sha256"):
                found.append(f"{name} records: other images (another build)")
    if not found and trained.digest != current.digest:
        found.append(f"dataset identity: checkpoint {trained.digest[:12]}, dataset "
                     f"{current.digest[:12]}")
    return found


def rgb_text(mean: dict[str, float]) -> str:
    return "R={R:.3f} G={G:.3f} B={B:.3f}".format(**mean)


# --- checking a dataset before use ----------------------------------------------------------------
@dataclass(frozen=True)
class RecordSplit:
    rec: str
    idx: str
    count: int


@dataclass(frozen=True)
class DatasetStamp:
    """(inode, size, mtime) of every file of a dataset a run reads: a rebuild changes them."""

    files: dict[str, tuple[int, int, int]] = field(default_factory=dict)

    @classmethod
    def of(cls, paths: list[str | Path]) -> DatasetStamp:
        found = {}
        for path in paths:
            try:
                status = os.stat(path)
            except FileNotFoundError:
                found[str(path)] = (0, -1, 0)
                continue
            found[str(path)] = (status.st_ino, status.st_size, status.st_mtime_ns)
        return cls(found)

    def changed(self) -> list[str]:
        """The files that are no longer the ones stamped (replaced, rewritten or gone)."""
        now = DatasetStamp.of(list(self.files))
        return [path for path, stamp in self.files.items() if now.files[path] != stamp]


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset that passed :func:`check_dataset`, as the commands use it.

    ``mean_image``: a per-pixel mean (CIFAR's preprocessing) that replaces the channel
    mean; ``image_size``: the stored shorter side; ``stamp``: what a running training
    compares at each epoch start (:meth:`DatasetStamp.changed`).
    """

    splits: dict[str, RecordSplit]
    mean: dict[str, float]
    image_size: int
    manifest: dict[str, Any]
    mean_image: str | None = None
    identity: DatasetIdentity | None = None
    stamp: DatasetStamp = field(default_factory=DatasetStamp)

    @property
    def manifest_file(self) -> str:
        return str(self.manifest.get("path", ""))


def check_dataset(config: Settings, splits: tuple[str, ...] = SPLITS) -> DatasetInfo:
    """The cheap checks every command runs before reading the records of ``splits``
    (docs/data.md); :class:`DatasetError` names the file and what to run."""
    config.require("TRAIN_MX_REC", "DATASET_MEAN", "NUM_CLASSES", "INPUT_SIZE")
    manifest = load_manifest(config)
    source = manifest["path"]
    hint = f"rebuild with: {rebuild_command(config)}"
    if manifest["num_classes"] != config.NUM_CLASSES:
        raise DatasetError(f"the records hold {manifest['num_classes']} classes, the config "
                           f"{config.source} says NUM_CLASSES = {config.NUM_CLASSES}", source)
    if config.RESIZE is not None and manifest["resize"] != config.RESIZE:
        raise DatasetError(f"the records store images with shorter side {manifest['resize']} "
                           f"px, the config {config.source} says RESIZE = {config.RESIZE}; "
                           f"{hint}", source)
    if manifest["resize"] < config.INPUT_SIZE:
        raise DatasetError(
            f"the records store images with shorter side {manifest['resize']} px, smaller "
            f"than the {config.INPUT_SIZE} px crop (INPUT_SIZE of {config.source}); rebuild "
            f"them with RESIZE >= {config.INPUT_SIZE}: {rebuild_command(config)}", source)
    found: dict[str, RecordSplit] = {}
    watched: list[str | Path] = [source]
    for split in splits:
        entry = manifest["splits"][split]
        rec = str(split_records(config, split))
        idx = str(idx_path(rec))
        for path, kind in ((rec, "rec"), (idx, "idx")):
            if not Path(path).is_file():
                raise DatasetError(f"{split} records are missing ({SPLIT_SETTINGS[split][1]}); "
                                   f"{hint}", path)
            size = Path(path).stat().st_size
            if size != entry[f"{kind}_bytes"]:
                raise DatasetError(f"{size} bytes where the manifest {source} says "
                                   f"{entry[f'{kind}_bytes']}: the file was truncated or "
                                   f"replaced; {hint}", path)
        index = Path(idx).read_bytes()  # tens of MB for ImageNet's training split
        if hashlib.sha256(index).hexdigest() != entry["idx_sha256"]:
            raise DatasetError(f"the index differs from the one built with these records "
                               f"(SHA-256 against {source}); {hint}", idx)
        count, listed = entry["count"], index.count(b"\n")
        if listed != count:
            raise DatasetError(f"the index lists {listed} records where the manifest {source} "
                               f"says {count}: the manifest does not describe these records; "
                               f"{hint}", idx)
        if count < 1:
            raise DatasetError(f"{split} records are empty; {hint}", rec)
        found[split] = RecordSplit(rec=rec, idx=idx, count=count)
        watched += [rec, idx]
    mean = load_mean(config.DATASET_MEAN)
    if mean != manifest["mean"]:
        raise DatasetError(f"mean {rgb_text(mean)} differs from the training set's "
                           f"{rgb_text(manifest['mean'])} in {source}: the file was replaced; "
                           f"{hint}", config.DATASET_MEAN)
    watched.append(config.DATASET_MEAN)
    if config.MEAN_IMAGE is not None:
        if not Path(config.MEAN_IMAGE).is_file():
            # ImageRecordIter would quietly compute and write a mean image of its own.
            raise DatasetError(f"per-pixel mean image (MEAN_IMAGE) is missing; {hint}",
                               config.MEAN_IMAGE)
        if sha256_file(config.MEAN_IMAGE) != manifest["mean_image_sha256"]:
            raise DatasetError(f"per-pixel mean differs from the one built with these "
                               f"records (SHA-256 against {source}); {hint}",
                               config.MEAN_IMAGE)
        watched.append(config.MEAN_IMAGE)
    return DatasetInfo(splits=found, mean=mean, image_size=int(manifest["resize"]),
                       manifest=manifest, mean_image=config.MEAN_IMAGE,
                       identity=DatasetIdentity.of(manifest), stamp=DatasetStamp.of(watched))


def check_unchanged(info: DatasetInfo, config: Settings) -> None:
    """Raise :class:`DatasetChanged` if a file ``info`` was checked with is no longer the
    same file (a rebuild renames new files into place): cheap, a ``stat`` per file."""
    changed = info.stamp.changed()
    if changed:
        raise DatasetChanged(
            f"the dataset was rebuilt or changed while this run trained on it "
            f"({', '.join(Path(p).name for p in changed)}); the run stopped rather than "
            f"train on other records than its checkpoints name", info.manifest_file)


def check_identity(trained: DatasetIdentity, current: DatasetIdentity, what: str,
                   scope: str = SCOPE_ALL, override: bool = False) -> list[str]:
    """Refuse (``DatasetError``) a dataset that is not the one a checkpoint was trained on;
    returns the differences when ``override`` accepts them (the caller logs them)."""
    differences = identity_differences(trained, current, scope)
    if differences and not override:
        raise DatasetError(
            f"{what} was trained on another dataset than {current.manifest}: "
            f"{'; '.join(differences)} (trained on {trained.manifest or 'a dataset'}); "
            f"point --config at the dataset it was trained on, or pass --override")
    return differences


# --- what a run records of its dataset ------------------------------------------------------------
def run_record(info: DatasetInfo) -> dict[str, Any]:
    """The ``dataset`` section of a checkpoint's JSON: where, what, how many."""
    return {"manifest": info.manifest_file,
            "identity": info.identity.as_dict() if info.identity else None,
            "counts": {name: split.count for name, split in info.splits.items()}}


def recorded_identity(checkpoint: dict[str, Any]) -> DatasetIdentity | None:
    """The identity of the dataset a checkpoint was trained on; ``None`` when the checkpoint
    predates identities (or was written by other code)."""
    recorded = (checkpoint.get("dataset") or {}).get("identity")
    return None if not recorded else DatasetIdentity.from_dict(recorded)


def check_checkpoint_dataset(checkpoint: dict[str, Any], info: DatasetInfo, what: str,
                             scope: str = SCOPE_ALL, override: bool = False) -> list[str]:
    """:func:`check_identity` of a checkpoint's recorded dataset against ``info``; one
    without a recorded identity is not refused but said so (returned), as for other code's."""
    trained = recorded_identity(checkpoint)
    if trained is None:
        return [f"{what} does not record its dataset's identity, so the dataset cannot be "
                f"checked against it"]
    return check_identity(trained, info.identity, what, scope, override)
