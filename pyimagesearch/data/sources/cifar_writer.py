"""CIFAR-10 and CIFAR-100 written in their official layouts, byte-for-byte in the official
structure: real data through :func:`write_cifar`, class-coloured noise through
:func:`write_fake_cifar` (what tests, end-to-end runs and the demo config read, through
the same reader as a real download).
"""

from __future__ import annotations

import logging
import os
import pickle
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pyimagesearch.data.sources.cifar_format import (
    CHANNELS,
    CIFAR10_CLASSES,
    CIFAR100_COARSE_CLASSES,
    CIFAR100_FINE_CLASSES,
    CIFAR100_FINE_TO_COARSE,
    DATASETS,
    DISPLAY_NAMES,
    IMAGE_SIZE,
    LABEL_SETS,
    LAYOUT_FILES,
    LAYOUTS,
    NUM_TRAIN_BATCHES,
    PIXELS,
    CifarArrays,
    check_choice,
    check_label_array,
    to_planes,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FakeCifar:
    """What ``write_fake_cifar`` wrote: the extracted folder and the arrays in it."""

    folder: Path
    train: CifarArrays
    test: CifarArrays


class _Python2StylePickler(pickle._Pickler):
    """Writes str and bytes as Python 2's cPickle did (BINSTRING opcodes).

    Python 3's pickler spells bytes under protocol 2 as ``_codecs.encode(str, "latin1")``;
    the original batches never reference that, so written this way a fake file loads
    through exactly the globals a real one does (and with the same bytes keys).
    The pure-Python pickler is used because only its dispatch table can be extended.
    """

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_str8(self, obj: bytes | str) -> None:
        data = obj.encode("latin1") if isinstance(obj, str) else obj
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[bytes] = _save_str8
    dispatch[str] = _save_str8


def _write_pickle(path: Path, obj: dict[bytes, Any]) -> None:
    with open(path, "wb") as handle:
        _Python2StylePickler(handle, protocol=2).dump(obj)


def _batch_names(labels: np.ndarray, names: Sequence[str], start: int) -> list[bytes]:
    # The originals' file names are "<search term>_s_<number>.png".
    return [f"{names[label]}_s_{start + i:06d}.png".encode() for i, label in enumerate(labels)]


def write_cifar(root: str | os.PathLike[str], dataset: str, layout: str,
                train: CifarArrays, test: CifarArrays) -> Path:
    """Write ``train`` and ``test`` as the official ``dataset`` archive in ``layout``.

    Creates ``root/<official folder>`` (e.g. ``cifar-10-batches-py``) with the official
    file names; CIFAR-10 train is cut into five batches like the original, and the class
    names are the real ones. Returns the folder.
    """
    check_choice("dataset", dataset, DATASETS)
    check_choice("layout", layout, LAYOUTS)
    spec = LAYOUT_FILES[(dataset, layout)]
    fine = LABEL_SETS[(dataset, "fine")]
    for name, arrays in (("train", train), ("test", test)):
        check_label_array(arrays.labels, len(arrays), fine.num_classes, f"{name}.labels")
        if dataset == "cifar100":
            if arrays.coarse_labels is None:
                raise ValueError(f"{name}.coarse_labels is required for CIFAR-100")
            check_label_array(arrays.coarse_labels, len(arrays), 20, f"{name}.coarse_labels")
        elif arrays.coarse_labels is not None:
            raise ValueError(f"{name}.coarse_labels given, but CIFAR-10 has no coarse labels")
    if dataset == "cifar10" and len(train) < NUM_TRAIN_BATCHES:
        raise ValueError(f"CIFAR-10 train needs at least {NUM_TRAIN_BATCHES} images (one per "
                         f"batch file), got {len(train)}")
    folder = Path(root) / spec.folder
    folder.mkdir(parents=True, exist_ok=True)
    fine_names = CIFAR10_CLASSES if dataset == "cifar10" else CIFAR100_FINE_CLASSES

    chunks = [(spec.test[0], test, "testing batch 1 of 1", 0)]
    if dataset == "cifar10":
        bounds = np.linspace(0, len(train), NUM_TRAIN_BATCHES + 1).astype(int)
        for i, name in enumerate(spec.train):
            part = slice(bounds[i], bounds[i + 1])
            chunks.append((name, CifarArrays(train.images[part], train.labels[part]),
                           f"training batch {i + 1} of {NUM_TRAIN_BATCHES}", int(bounds[i])))
    else:
        chunks.append((spec.train[0], train, "training batch 1 of 1", 0))

    for name, arrays, batch_label, start in chunks:
        planes = to_planes(arrays.images)
        if layout == "binary":
            columns = ([arrays.labels] if arrays.coarse_labels is None
                       else [arrays.coarse_labels, arrays.labels])
            records = np.concatenate([np.stack(columns, axis=1).astype(np.uint8), planes],
                                     axis=1)
            records.tofile(folder / name)
            continue
        labels = [int(x) for x in arrays.labels]
        filenames = _batch_names(arrays.labels, fine_names, start)
        # Key order and contents as in the originals.
        if arrays.coarse_labels is None:
            batch = {b"batch_label": batch_label.encode(), b"labels": labels,
                     b"data": planes, b"filenames": filenames}
        else:
            batch = {b"filenames": filenames, b"batch_label": batch_label.encode(),
                     b"fine_labels": labels,
                     b"coarse_labels": [int(x) for x in arrays.coarse_labels],
                     b"data": planes}
        _write_pickle(folder / name, batch)

    if layout == "binary":
        names_files = {fine.names_file: fine_names}
        if dataset == "cifar100":
            names_files["coarse_label_names.txt"] = CIFAR100_COARSE_CLASSES
        for name, names in names_files.items():
            (folder / name).write_text("".join(f"{n}\n" for n in names), encoding="utf-8")
    elif dataset == "cifar10":
        first = int(np.linspace(0, len(train), NUM_TRAIN_BATCHES + 1).astype(int)[1])
        _write_pickle(folder / "batches.meta", {
            b"num_cases_per_batch": first,
            b"label_names": [n.encode() for n in CIFAR10_CLASSES], b"num_vis": PIXELS})
    else:
        _write_pickle(folder / "meta", {
            b"fine_label_names": [n.encode() for n in CIFAR100_FINE_CLASSES],
            b"coarse_label_names": [n.encode() for n in CIFAR100_COARSE_CLASSES]})
    logger.info("Wrote %s (%s layout) to %s: %d train, %d test images",
                DISPLAY_NAMES[dataset], layout, folder, len(train), len(test))
    return folder


def fake_cifar_arrays(count: int, dataset: str = "cifar10", seed: int = 0) -> CifarArrays:
    """``count`` images whose colour depends on the class (so a network can learn them),
    with balanced labels and, for CIFAR-100, the real fine -> coarse hierarchy."""
    check_choice("dataset", dataset, DATASETS)
    num_classes = LABEL_SETS[(dataset, "fine")].num_classes
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(count) % num_classes).astype(np.int64)
    # The palette ignores the seed, so train and test (written with different seeds)
    # share each class's colour; int16 keeps full-size fakes at a few hundred MB.
    palette = np.random.default_rng(12345).integers(0, 256, size=(num_classes, CHANNELS),
                                                    dtype=np.int16)
    noise = rng.integers(-40, 41, size=(count, IMAGE_SIZE, IMAGE_SIZE, CHANNELS),
                         dtype=np.int16)
    images = np.clip(palette[labels][:, None, None, :] + noise, 0, 255).astype(np.uint8)
    coarse = None
    if dataset == "cifar100":
        coarse = np.asarray(CIFAR100_FINE_TO_COARSE, dtype=np.int64)[labels]
    return CifarArrays(images, labels, coarse)


def write_fake_cifar(root: str | os.PathLike[str], dataset: str = "cifar10",
                     layout: str = "python", images_per_batch: int = 10,
                     seed: int = 0) -> FakeCifar:
    """Write a small fake ``dataset`` in the official ``layout`` under ``root``.

    Train holds ``5 * images_per_batch`` images (CIFAR-10: five batch files), test holds
    ``images_per_batch``, the same 5:1 ratio as the real 50,000/10,000.
    """
    if images_per_batch < 1:
        raise ValueError(f"images_per_batch must be >= 1, got {images_per_batch}")
    train = fake_cifar_arrays(NUM_TRAIN_BATCHES * images_per_batch, dataset, seed)
    test = fake_cifar_arrays(images_per_batch, dataset, seed + 1)
    folder = write_cifar(root, dataset, layout, train, test)
    return FakeCifar(folder, train, test)
