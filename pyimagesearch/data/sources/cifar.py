"""CIFAR-10 and CIFAR-100 read from their official files (either layout, found from the
folder's contents), and the stratified train/validation split.

Python-layout pickles go through the restricted unpickler of :mod:`.cifar_pickle`; the fake
data of :mod:`.cifar_writer` goes through this same reader (docs/data.md).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pyimagesearch.data.sources.cifar_format import (
    DATASETS,
    DISPLAY_NAMES,
    LABEL_KINDS,
    LABEL_SETS,
    LAYOUT_FILES,
    LAYOUTS,
    PIXELS,
    SPLITS,
    CifarFilesMissing,
    CifarFormatError,
    CifarSplit,
    LabelSet,
    Layout,
    check_choice,
    to_hwc,
)
from pyimagesearch.data.sources.cifar_pickle import read_cifar_pickle

logger = logging.getLogger(__name__)


def _check_range(labels: np.ndarray, num_classes: int, path: Path, what: str) -> None:
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if bad.size:
        raise CifarFormatError(f"{path}: record {bad[0]} has {what} {labels[bad[0]]}, outside "
                               f"0..{num_classes - 1} ({bad.size} records out of range)")


def _python_entry(batch: dict[str, Any], key: str, path: Path) -> Any:
    try:
        return batch[key]
    except KeyError:
        raise CifarFormatError(f"{path} has no {key!r} entry (it has {sorted(batch)}); "
                               "is it the right dataset and split?") from None


def _read_python_batch(path: Path, label_set: LabelSet) -> tuple[np.ndarray, np.ndarray]:
    batch = read_cifar_pickle(path)
    data = _python_entry(batch, "data", path)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != PIXELS:
        raise CifarFormatError(
            f"{path}: 'data' must be a uint8 array of shape (N, {PIXELS}), got "
            f"{getattr(data, 'dtype', type(data).__name__)} {getattr(data, 'shape', '')}")
    values = np.asarray(_python_entry(batch, label_set.batch_key, path))
    if values.ndim != 1 or (values.size and values.dtype.kind not in "iu"):
        raise CifarFormatError(f"{path}: {label_set.batch_key!r} must be a list of ints, "
                               f"got {values.dtype} with shape {values.shape}")
    if len(values) != len(data):
        raise CifarFormatError(f"{path}: {len(values)} {label_set.batch_key} for "
                               f"{len(data)} images in 'data'")
    values = values.astype(np.int64)
    _check_range(values, label_set.num_classes, path, label_set.batch_key)
    return to_hwc(data), values


def _read_binary_batch(path: Path, label_bytes: int,
                       label_set: LabelSet) -> tuple[np.ndarray, np.ndarray]:
    record = label_bytes + PIXELS
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size == 0:
        raise CifarFormatError(f"{path} is empty; it should hold {record}-byte records")
    if raw.size % record:
        index = raw.size // record
        raise CifarFormatError(
            f"{path} is {raw.size} bytes, not a whole number of {record}-byte records: "
            f"record {index} is truncated ({raw.size - index * record} of {record} bytes); "
            "re-extract the official archive")
    records = raw.reshape(-1, record)
    values = records[:, label_set.column].astype(np.int64)
    what = label_set.batch_key.rstrip("s").replace("_", " ")  # "fine label"
    _check_range(values, label_set.num_classes, path, what)
    return to_hwc(records[:, label_bytes:]), values


def _decode_names(names: Any, path: Path, key: str) -> list[str]:
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, (bytes, str))
                                                      for n in names):
        raise CifarFormatError(f"{path}: {key!r} must be a list of strings")
    return [n.decode("utf-8") if isinstance(n, bytes) else n for n in names]


def _read_class_names(folder: Path, layout: str, label_set: LabelSet,
                      meta_file: str) -> list[str]:
    if layout == "python":
        path = folder / meta_file
        meta = read_cifar_pickle(path)
        names = _decode_names(_python_entry(meta, label_set.names_key, path), path,
                              label_set.names_key)
    else:
        path = folder / label_set.names_file
        # The official text files end with blank lines; names themselves never are blank.
        names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
        names = [n for n in names if n]
    if len(names) != label_set.num_classes:
        raise CifarFormatError(f"{path} lists {len(names)} class names where "
                               f"{label_set.num_classes} belong")
    return names


def _has_files(folder: Path, layout: Layout) -> bool:
    return any((folder / name).is_file() for name in layout.files)


def locate_cifar(root: str | os.PathLike[str], dataset: str = "cifar10",
                 layout: str = "auto") -> tuple[Path, str]:
    """The extracted folder of ``dataset`` and its layout ("python" or "binary").

    ``root`` is that folder (under any name: its files say what it is) or its parent, where
    the official folder names are looked for. With ``layout="auto"`` and both layouts
    present, the binary one wins: it is read without unpickling anything.
    """
    check_choice("dataset", dataset, DATASETS)
    check_choice("layout", layout, (*LAYOUTS, "auto"))
    root = Path(root)
    if not root.is_dir():
        raise CifarFilesMissing(f"CIFAR root {root} does not exist or is not a folder")
    candidates = ("binary", "python") if layout == "auto" else (layout,)
    for kind in candidates:
        if _has_files(root, LAYOUT_FILES[(dataset, kind)]):
            return root, kind
    found = [(root / LAYOUT_FILES[(dataset, kind)].folder, kind) for kind in candidates
             if (root / LAYOUT_FILES[(dataset, kind)].folder).is_dir()]
    if found:
        if len(found) > 1:
            logger.info("Both CIFAR layouts are under %s; reading %s", root, found[0][0])
        return found[0]
    expected = "; ".join(
        f"{kind}: {spec.folder}/ with {', '.join(spec.files)}"
        for kind in candidates for spec in [LAYOUT_FILES[(dataset, kind)]])
    message = (f"no {DISPLAY_NAMES[dataset]} found in {root}: give the extracted folder or its "
               f"parent ({expected})")
    other = "cifar100" if dataset == "cifar10" else "cifar10"
    for kind in LAYOUTS:
        spec = LAYOUT_FILES[(other, kind)]
        if _has_files(root, spec) or (root / spec.folder).is_dir():
            message += f"; {root} holds {DISPLAY_NAMES[other]} instead: pass dataset={other!r}"
            break
    raise CifarFilesMissing(message)


def load_cifar(root: str | os.PathLike[str], dataset: str = "cifar10", split: str = "train",
               label: str = "fine", layout: str = "auto") -> CifarSplit:
    """Read one split of CIFAR-10 or CIFAR-100 from the official python or binary files.

    ``root``: see :func:`locate_cifar`; ``split``: ``"train"`` (50,000 images, in file
    order) or ``"test"``; ``label``: ``"fine"`` (CIFAR-10's labels, CIFAR-100's 100
    classes) or ``"coarse"`` (CIFAR-100's 20 superclasses); ``layout``: ``"auto"``,
    ``"python"`` or ``"binary"``. Raises ``CifarFilesMissing`` naming the expected files,
    ``CifarFormatError`` naming the file (and record) that does not fit the format,
    ``UnsafePickleError`` for a pickle that references anything but numpy arrays.
    """
    check_choice("split", split, SPLITS)
    check_choice("label", label, LABEL_KINDS)
    check_choice("dataset", dataset, DATASETS)
    if (dataset, label) not in LABEL_SETS:
        raise ValueError(f"{DISPLAY_NAMES[dataset]} has a single label set: use label='fine'")
    folder, kind = locate_cifar(root, dataset, layout)
    spec = LAYOUT_FILES[(dataset, kind)]
    label_set = LABEL_SETS[(dataset, label)]
    files = spec.train if split == "train" else spec.test
    meta_file = label_set.names_file if kind == "binary" else spec.meta[0]
    missing = [name for name in (*files, meta_file) if not (folder / name).is_file()]
    if missing:
        raise CifarFilesMissing(
            f"{folder} ({DISPLAY_NAMES[dataset]}, {kind} layout) is missing {', '.join(missing)}; "
            f"a complete copy holds {', '.join(spec.files)}")
    class_names = _read_class_names(folder, kind, label_set, meta_file)
    images, labels = [], []
    for name in files:
        if kind == "python":
            batch_images, batch_labels = _read_python_batch(folder / name, label_set)
        else:
            batch_images, batch_labels = _read_binary_batch(folder / name, spec.label_bytes,
                                                            label_set)
        images.append(batch_images)
        labels.append(batch_labels)
    result = CifarSplit(np.concatenate(images), np.concatenate(labels), class_names)
    logger.info("Loaded %s %s (%s labels, %s layout) from %s: %d images, %d classes",
                DISPLAY_NAMES[dataset], split, label, kind, folder, len(result), len(class_names))
    return result


def train_val_indices(labels: np.ndarray | Sequence[int], val_size: int = 5000,
                      seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Stratified, reproducible split of ``range(len(labels))`` into sorted (train, val)
    indices: each class gives ``val_size * count / N`` images, rounded by largest remainder
    (ties to the lower class) so that they add up to ``val_size`` exactly."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or (labels.size and labels.dtype.kind not in "iu"):
        raise ValueError(f"labels must be a 1-D integer array, got {labels.dtype} "
                         f"{labels.shape}")
    total = len(labels)
    if not 0 < val_size < total:
        raise ValueError(f"val_size must be between 1 and {total - 1} for {total} images, "
                         f"got {val_size}")
    if labels.min() < 0:
        raise ValueError(f"labels must be >= 0, got {labels.min()}")
    counts = np.bincount(labels)
    # Integer arithmetic: exact quotas and remainders, no float ties.
    quotas, remainders = np.divmod(val_size * counts, total)
    short = val_size - int(quotas.sum())
    order = sorted(range(len(counts)), key=lambda c: (-remainders[c], c))
    quotas[order[:short]] += 1
    # RandomState's streams are frozen across numpy versions (Generator's are not), so
    # a seed names the same split on every install.
    rng = np.random.RandomState(seed)
    val = [rng.permutation(np.flatnonzero(labels == c))[:quotas[c]] for c in range(len(counts))]
    val_idx = np.sort(np.concatenate(val)).astype(np.int64)
    train_idx = np.setdiff1d(np.arange(total, dtype=np.int64), val_idx)
    return train_idx, val_idx
