"""CIFAR-10/100 in the official files -> train/val/test ``.rec``/``.idx`` + means + manifest.

What ``build_cifar.py`` runs: every 32x32 image stored as a lossless PNG record, the
validation split held out of the training images (or the test set, ``VAL_SIZE = 0``), the
channel and per-pixel means of the training split, the commit of every build
(:func:`~pyimagesearch.data.build.builder.commit_dataset`). Why: docs/data.md.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pyimagesearch.config import ConfigError, Settings
from pyimagesearch.data.build.builder import (
    check_outputs,
    commit_dataset,
    format_summary,
    mean_files,
)
from pyimagesearch.data.build.staging import staged
from pyimagesearch.data.dataset import (
    SPLITS,
    idx_path,
    manifest_path,
    split_entry,
    split_records,
)
from pyimagesearch.data.images import encode_png
from pyimagesearch.data.records.format import RecordWriter, pack_header
from pyimagesearch.data.sources.cifar import load_cifar, locate_cifar, train_val_indices
from pyimagesearch.data.sources.cifar_format import IMAGE_SIZE, CifarSplit
from pyimagesearch.data.sources.cifar_writer import write_fake_cifar
from pyimagesearch.files import sha256_file
from pyimagesearch.locks import build_lock

logger = logging.getLogger(__name__)

BUILD_FIELDS = ("CIFAR_ROOT", "CIFAR_DATASET", "NUM_CLASSES", "VAL_SIZE", "TRAIN_MX_REC",
                "VAL_MX_REC", "TEST_MX_REC", "DATASET_MEAN", "MEAN_IMAGE", "RESIZE",
                "INPUT_SIZE")

__all__ = ["build_cifar_dataset", "check_cifar_config", "format_summary", "load_splits"]


@dataclass(frozen=True)
class SplitImages:
    """One split to pack: the images, and their indices in the official file split."""

    data: CifarSplit
    source: str  # "train" or "test": the official split the images come from
    indices: np.ndarray


def check_cifar_config(config: Settings) -> None:
    """Refuse a config that cannot give a usable CIFAR dataset, before any work."""
    config.require(*BUILD_FIELDS)
    name = config.source
    if config.RESIZE != IMAGE_SIZE:
        raise ConfigError(f"{name}: CIFAR images are stored as they are, so RESIZE "
                          f"must be {IMAGE_SIZE}, got {config.RESIZE}")
    if config.INPUT_SIZE > IMAGE_SIZE:
        raise ConfigError(f"{name}: INPUT_SIZE must lie in 1..{IMAGE_SIZE}, got "
                          f"{config.INPUT_SIZE}")
    check_outputs(config, [split_records(config, split) for split in SPLITS] + mean_files(config),
                  "the record, mean and mean-image paths must differ")


def _write_fake_if_asked(config: Settings) -> bool:
    """Demo configs (``FAKE_CIFAR``) get fake files in the official format if none exist."""
    fake = config.FAKE_CIFAR
    if not fake:
        return False
    try:
        locate_cifar(config.CIFAR_ROOT, config.CIFAR_DATASET, fake.get("layout", "python"))
        return True  # written by an earlier build
    except FileNotFoundError:
        pass
    folder = write_fake_cifar(config.CIFAR_ROOT, config.CIFAR_DATASET,
                              fake.get("layout", "python"), int(fake["images_per_batch"]),
                              int(fake.get("seed", 0))).folder
    logger.info("wrote FAKE %s files (FAKE_CIFAR in the config) to %s",
                config.CIFAR_DATASET, folder)
    return True


def load_splits(config: Settings) -> tuple[dict[str, SplitImages], dict[str, Any]]:
    """The train/val/test images the config asks for, and how they were chosen."""
    root, layout = config.CIFAR_ROOT, config.CIFAR_LAYOUT
    dataset, label = config.CIFAR_DATASET, config.CIFAR_LABELS
    train = load_cifar(root, dataset, "train", label, layout)
    test = load_cifar(root, dataset, "test", label, layout)
    if train.num_classes != int(config.NUM_CLASSES):
        raise ConfigError(f"{config.source}: NUM_CLASSES is {config.NUM_CLASSES},"
                          f" but {dataset} ({label} labels) has {train.num_classes} classes")
    all_train = np.arange(len(train), dtype=np.int64)
    val_size, seed = int(config.VAL_SIZE), int(config.VAL_SPLIT_SEED)
    test_split = SplitImages(test, "test", np.arange(len(test), dtype=np.int64))
    if val_size == 0:
        splits = {"train": SplitImages(train, "train", all_train), "val": test_split,
                  "test": test_split}
        validation = {"source": "test", "size": len(test),
                      "note": "VAL_SIZE = 0: no held-out split; the validation records are "
                              "a copy of the test records, so validation error is test error"}
    else:
        train_idx, val_idx = train_val_indices(train.labels, val_size, seed)
        splits = {"train": SplitImages(train.subset(train_idx), "train", train_idx),
                  "val": SplitImages(train.subset(val_idx), "train", val_idx),
                  "test": test_split}
        validation = {"source": "train", "size": val_size, "seed": seed,
                      "method": "pyimagesearch.data.sources.cifar.train_val_indices (stratified)",
                      "val_indices_sha256": hashlib.sha256(val_idx.tobytes()).hexdigest()}
    return splits, validation


def pack_split(split: SplitImages, rec_path: Path, idx_path: Path) -> None:
    """Image i as ``pack(IRHeader(0, label, i, 0), png)`` under key i (key and header id
    agree, as ``verify_split`` requires of every record set)."""
    with RecordWriter(rec_path, idx_path) as writer:
        for key, (image, label) in enumerate(zip(split.data.images, split.data.labels)):
            writer.write(key, pack_header(float(label), key) + encode_png(image))


def channel_mean(images: np.ndarray) -> dict[str, float]:
    """Mean of every pixel of every image, per channel: the book's mean file."""
    red, green, blue = images.reshape(-1, 3).mean(axis=0, dtype=np.float64).tolist()
    return {"R": red, "G": green, "B": blue}


def pixel_mean(images: np.ndarray) -> np.ndarray:
    """(3, 32, 32) float32 RGB mean image, the layout ImageRecordIter's ``mean_img`` wants."""
    return images.mean(axis=0, dtype=np.float64).transpose(2, 0, 1).astype(np.float32)


def build_cifar_dataset(config: Settings) -> dict[str, Any]:
    """Official CIFAR files -> three ``.rec``/``.idx``, both means and the manifest.

    Returns the manifest, as written. Raises ``ConfigError``, ``CifarFilesMissing`` (no
    dataset at ``CIFAR_ROOT``), ``CifarFormatError``, ``UnsafePickleError`` (a pickle
    that references anything but numpy arrays; nothing in it is run), ``BuildError`` (a
    write failed) or ``LockError`` (another build writes to the same folder).
    """
    check_cifar_config(config)
    records = {name: split_records(config, name) for name in SPLITS}
    finals = [*(path for rec in records.values() for path in (rec, idx_path(rec))),
              *mean_files(config)]
    # One build per output folder at a time; its leftovers are removed under the lock.
    with build_lock([*finals, manifest_path(config)]), \
            staged(manifest_path(config), finals) as staging:
        fake = _write_fake_if_asked(config)
        folder, layout = locate_cifar(config.CIFAR_ROOT, config.CIFAR_DATASET,
                                      config.CIFAR_LAYOUT)
        splits, validation = load_splits(config)
        class_names = splits["train"].data.class_names
        entries = {}
        for name in SPLITS:
            images = splits[name].data
            temporary = {"rec": staging.path(records[name]),
                         "idx": staging.path(idx_path(records[name]))}
            pack_split(splits[name], temporary["rec"], temporary["idx"])
            logger.info("%s: %d images packed", name, len(images))
            entries[name] = split_entry(
                config, name, temporary, listed=len(images), written=len(images),
                skipped=[], source=splits[name].source,
                class_counts=np.bincount(images.labels, minlength=len(class_names)).tolist())
        train = splits["train"].data.images
        sources = {p.name: {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
                   for p in sorted(folder.iterdir())
                   if p.is_file() and not p.name.startswith(".")}
        return commit_dataset(
            config, staging, mean=channel_mean(train), pixel_mean=pixel_mean(train),
            splits=entries, builder="cifar",
            # Labels are numbered as in the official files (batches.meta / meta order).
            label_order="official",
            classes=[{"label": i, "name": n} for i, n in enumerate(class_names)],
            resize=IMAGE_SIZE, encoding="png", quality=None,
            build={"dataset": config.CIFAR_DATASET, "fake": fake,
                   "label_set": config.CIFAR_LABELS, "validation": validation},
            sources={"root": str(folder.resolve()), "layout": layout, "files": sources})
