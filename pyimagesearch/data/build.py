"""Build the whole dataset: raw ILSVRC tree -> lists -> records -> mean -> manifest.

What this does that MXNet's ``im2rec.py`` does not:

* every file that cannot be read is reported by path and reason, so per split
  ``written + skipped == listed``; ``--strict`` (:class:`StrictBuildError`) fails
  instead, before anything final-named is written;
* records, lists, the mean and the manifest are written under temporary names
  (``<name>.partial-<pid>``) and renamed into place only when the whole dataset is done,
  the manifest last, so an interrupted build never leaves a ``.rec`` that looks finished
  and never damages the previous complete dataset; the next build removes what a dead
  one left behind (:func:`remove_stale_partials`);
* the manifest records the config, the sources' checksums, the tool versions and, per
  split, the counts, the skipped files and the checksums of what was written.

Images are read by :mod:`pyimagesearch.data.images`, packed by
:mod:`pyimagesearch.data.records`, and the mean is written by
:mod:`pyimagesearch.data.mean`.
"""

from __future__ import annotations

import logging
import os
import platform
import stat
import time
from collections import Counter
from collections.abc import Iterable
from datetime import datetime, timezone
from pathlib import Path
from types import ModuleType
from typing import Any

import cv2
import numpy as np

from pyimagesearch.config import ConfigError, config_name, require
from pyimagesearch.data.lists import ListEntry, make_entries, write_list
from pyimagesearch.data.manifest import MANIFEST_FORMAT, SPLITS, manifest_path, write_manifest
from pyimagesearch.data.mean import write_mean
from pyimagesearch.data.records import ImageWorkers, PackResult, idx_path_for, pack_records
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
