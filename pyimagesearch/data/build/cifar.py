"""CIFAR-10/100 in the official files -> train/val/test ``.rec``/``.idx`` + means + manifest.

What ``build_cifar.py`` runs. The official python or binary files are read by
:mod:`pyimagesearch.data.sources.cifar` (pickles through the restricted unpickler of
:mod:`pyimagesearch.data.sources.cifar_pickle`); each 32x32
image is stored PNG-encoded, so the records decode to exactly the original pixels (JPEG
would change them), and ``mx.io.ImageRecordIter`` then does the paper's augmentation in
its C++ threads like for ImageNet; the mean is subtracted on the device
(:class:`~pyimagesearch.data.iterators.Normalizer`).

- **Split.** ``VAL_SIZE = 5000`` holds out 5,000 training images, stratified by class
  with ``VAL_SPLIT_SEED`` (He et al. 2016, section 4.2: the 45k/5k split). ``VAL_SIZE = 0``
  trains on all 50,000 and validates on the test set; the val records are then a copy
  of the test records and the manifest says so (``validation.source = "test"``).
- **Means.** Of the training split: per channel in ``DATASET_MEAN`` (the book's
  ``{"R", "G", "B"}`` JSON) and per pixel in ``MEAN_IMAGE``, a (3, 32, 32) RGB float32
  array in MXNet's ``.nd`` format, which the ``Normalizer`` loads and subtracts from
  every (cropped) image on the device: the paper's "per-pixel mean subtracted".
- **Order.** Records keep the order of the official files (already random), keyed
  0..N-1, with ``IRHeader.id`` equal to the key as in every record set of the project;
  the validation images are fixed by ``VAL_SPLIT_SEED`` (their indices' hash is in the
  manifest).
- **Nothing half-written.** Every file goes to ``<name>.partial-<pid>`` and is renamed
  into place when all are done, the manifest last (the same discipline and names as
  :mod:`pyimagesearch.data.build.builder`, whose leftovers clean-up it shares).

The manifest has the layout of :mod:`pyimagesearch.data.manifest` (format 1), so the
training core's ``check_dataset`` reads its counts and image size.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from pyimagesearch.config import ConfigError, Settings
from pyimagesearch.data.build.staging import Staging, remove_stale_partials
from pyimagesearch.data.dataset import (
    SPLITS,
    manifest_path,
    new_manifest,
    split_files_entry,
    split_records,
    write_mean,
    write_mean_image,
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
    outputs = [*(split_records(config, split).resolve() for split in SPLITS),
               Path(config.DATASET_MEAN).resolve(), Path(config.MEAN_IMAGE).resolve()]
    if len(set(outputs)) != len(outputs):
        raise ConfigError(f"{name}: the record, mean and mean-image paths must differ")
    if any(split_records(config, split).suffix != ".rec" for split in SPLITS):
        raise ConfigError(f"{name}: TRAIN_MX_REC, VAL_MX_REC and TEST_MX_REC must end "
                          f"in .rec (the .idx goes beside them)")


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


def png_bytes(image: np.ndarray) -> bytes:
    """Lossless PNG of one (32, 32, 3) RGB image, in OpenCV's BGR order as MXNet decodes."""
    return encode_png(image)


def pack_split(split: SplitImages, rec_path: Path, idx_path: Path) -> None:
    """Write image i as ``pack(IRHeader(0, label, i, 0), png)`` under key i.

    The records are written by the project's RecordIO writer (byte-identical to MXNet's,
    but a full disk raises instead of losing the tail), and key and header id agree, as
    ``verify_split`` requires of every record set.
    """
    with RecordWriter(rec_path, idx_path) as writer:
        for key, (image, label) in enumerate(zip(split.data.images, split.data.labels)):
            writer.write(key, pack_header(float(label), key) + png_bytes(image))


def channel_mean(images: np.ndarray) -> dict[str, float]:
    """Mean of every pixel of every image, per channel: the book's mean file."""
    red, green, blue = images.reshape(-1, 3).mean(axis=0, dtype=np.float64).tolist()
    return {"R": red, "G": green, "B": blue}


def pixel_mean(images: np.ndarray) -> np.ndarray:
    """(3, 32, 32) float32 RGB mean image, the layout ImageRecordIter's ``mean_img`` wants."""
    return images.mean(axis=0, dtype=np.float64).transpose(2, 0, 1).astype(np.float32)


def _source_files(folder: Path) -> dict[str, dict[str, Any]]:
    return {p.name: {"bytes": p.stat().st_size, "sha256": sha256_file(p)}
            for p in sorted(folder.iterdir()) if p.is_file() and not p.name.startswith(".")}


def build_cifar_dataset(config: Settings) -> dict[str, Any]:
    """Official CIFAR files -> three ``.rec``/``.idx``, both means and the manifest.

    Returns the manifest, as written. Raises ``ConfigError``, ``CifarFilesMissing`` (no
    dataset at ``CIFAR_ROOT``), ``CifarFormatError``, ``UnsafePickleError`` (a pickle
    that references anything but numpy arrays; nothing in it is run) or ``LockError``
    (another build writes to the same folder: ``FolderBusy`` names it).
    """
    check_cifar_config(config)
    outputs = [split_records(config, split) for split in SPLITS]
    # One build per output folder at a time; its leftovers are removed under the lock.
    with build_lock([*outputs, Path(config.DATASET_MEAN), Path(config.MEAN_IMAGE),
                     manifest_path(config)]):
        return _build_cifar_dataset(config)


def _build_cifar_dataset(config: Settings) -> dict[str, Any]:
    started, started_at = time.monotonic(), datetime.now(timezone.utc)
    fake = _write_fake_if_asked(config)
    folder, layout = locate_cifar(config.CIFAR_ROOT, config.CIFAR_DATASET,
                                  config.CIFAR_LAYOUT)
    splits, validation = load_splits(config)
    class_names = splits["train"].data.class_names

    records = {name: split_records(config, name) for name in SPLITS}
    mean_file, mean_image = Path(config.DATASET_MEAN), Path(config.MEAN_IMAGE)
    manifest_file = manifest_path(config)
    finals = [p for rec in records.values() for p in (rec, rec.with_suffix(".idx"))]
    remove_stale_partials([*finals, mean_file, mean_image, manifest_file])

    staging = Staging()
    try:
        temporary: dict[str, dict[str, Path]] = {}
        for name in SPLITS:
            rec = records[name]
            temporary[name] = {"rec": staging.path(rec),
                               "idx": staging.path(rec.with_suffix(".idx"))}
            pack_split(splits[name], temporary[name]["rec"], temporary[name]["idx"])
            logger.info("%s: %d images packed", name, len(splits[name].data))
        train_images = splits["train"].data.images
        mean = channel_mean(train_images)
        mean_temporary = staging.path(mean_file)
        write_mean(mean_temporary, mean)
        mean_image_temporary = staging.path(mean_image)
        write_mean_image(mean_image_temporary, pixel_mean(train_images))

        base = manifest_file.resolve().parent
        manifest = new_manifest(
            builder="cifar", config=config, created=started_at.isoformat(timespec="seconds"),
            # Labels are numbered as in the official files (batches.meta / meta order).
            label_order="official",
            classes=[{"label": i, "name": n} for i, n in enumerate(class_names)],
            resize=IMAGE_SIZE, encoding="png", quality=None, mean=mean, mean_file=mean_file,
            mean_temporary=mean_temporary, mean_image_file=mean_image,
            mean_image_temporary=mean_image_temporary,
            splits={name: _split_entry(splits[name], records[name], temporary[name], base,
                                       len(class_names))
                    for name in SPLITS},
            folder=base,
            build={"dataset": config.CIFAR_DATASET, "fake": fake,
                   "label_set": config.CIFAR_LABELS, "validation": validation},
            sources={"root": str(folder.resolve()), "layout": layout,
                     "files": _source_files(folder)})
        manifest["build_seconds"] = round(time.monotonic() - started, 3)
        staging.commit(manifest_file, manifest)
    finally:
        staging.discard()
    return manifest


def _split_entry(split: SplitImages, rec: Path, temporary: dict[str, Path], base: Path,
                 num_classes: int) -> dict[str, Any]:
    count = len(split.data)
    entry: dict[str, Any] = {
        "listed": count, "written": count, "count": count, "skipped": [],
        "source": split.source,
        "class_counts": np.bincount(split.data.labels, minlength=num_classes).tolist(),
    }
    return {**entry, **split_files_entry(rec, temporary, base)}


def format_summary(manifest: dict[str, Any]) -> str:
    """People's summary of a build: counts per split, where validation comes from, means."""
    build = manifest["build"]
    lines = [f"{build['dataset']}{' (FAKE data)' if build.get('fake') else ''}: "
             f"{manifest['num_classes']} classes, PNG records of 32x32 images"]
    for name in SPLITS:
        entry = manifest["splits"][name]
        lines.append(f"{name + ':':<6} {entry['written']} images (from the official "
                     f"{entry['source']} split)")
    validation = build["validation"]
    if validation["source"] == "test":
        lines.append(f"note: {validation['note']}")
    else:
        lines.append(f"validation: {validation['size']} training images held out, "
                     f"stratified, seed {validation['seed']}")
    mean = manifest["mean"]
    lines.append(f"mean R={mean['R']:.3f} G={mean['G']:.3f} B={mean['B']:.3f}; per-pixel "
                 f"mean image {manifest['mean_image_file']}; built in "
                 f"{manifest['build_seconds']:.1f} s")
    return "\n".join(lines)
