"""The two layouts of Krizhevsky's CIFAR-10 and CIFAR-100 archives, and the arrays they hold.

File names, label sets and class names for the reader (:mod:`.cifar`) and the writer
(:mod:`.cifar_writer`); the layouts are described in docs/data.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pyimagesearch.errors import DatasetError

IMAGE_SIZE = 32
CHANNELS = 3
PIXELS = CHANNELS * IMAGE_SIZE * IMAGE_SIZE  # 3072 bytes per image in both layouts
DATASETS = ("cifar10", "cifar100")
LAYOUTS = ("python", "binary")
SPLITS = ("train", "test")
LABEL_KINDS = ("fine", "coarse")  # CIFAR-10's single label set counts as "fine"
NUM_TRAIN_BATCHES = 5  # CIFAR-10 train is data_batch_1 .. data_batch_5

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
                   "dog", "frog", "horse", "ship", "truck")

# CIFAR-100's 20 superclasses and their 5 classes each, as listed on the dataset page.
# The official meta files list both name sets in alphabetical order.
CIFAR100_SUPERCLASSES = {
    "aquatic_mammals": ("beaver", "dolphin", "otter", "seal", "whale"),
    "fish": ("aquarium_fish", "flatfish", "ray", "shark", "trout"),
    "flowers": ("orchid", "poppy", "rose", "sunflower", "tulip"),
    "food_containers": ("bottle", "bowl", "can", "cup", "plate"),
    "fruit_and_vegetables": ("apple", "mushroom", "orange", "pear", "sweet_pepper"),
    "household_electrical_devices": ("clock", "keyboard", "lamp", "telephone", "television"),
    "household_furniture": ("bed", "chair", "couch", "table", "wardrobe"),
    "insects": ("bee", "beetle", "butterfly", "caterpillar", "cockroach"),
    "large_carnivores": ("bear", "leopard", "lion", "tiger", "wolf"),
    "large_man-made_outdoor_things": ("bridge", "castle", "house", "road", "skyscraper"),
    "large_natural_outdoor_scenes": ("cloud", "forest", "mountain", "plain", "sea"),
    "large_omnivores_and_herbivores": ("camel", "cattle", "chimpanzee", "elephant", "kangaroo"),
    "medium_mammals": ("fox", "porcupine", "possum", "raccoon", "skunk"),
    "non-insect_invertebrates": ("crab", "lobster", "snail", "spider", "worm"),
    "people": ("baby", "boy", "girl", "man", "woman"),
    "reptiles": ("crocodile", "dinosaur", "lizard", "snake", "turtle"),
    "small_mammals": ("hamster", "mouse", "rabbit", "shrew", "squirrel"),
    "trees": ("maple_tree", "oak_tree", "palm_tree", "pine_tree", "willow_tree"),
    "vehicles_1": ("bicycle", "bus", "motorcycle", "pickup_truck", "train"),
    "vehicles_2": ("lawn_mower", "rocket", "streetcar", "tank", "tractor"),
}
CIFAR100_COARSE_CLASSES = tuple(sorted(CIFAR100_SUPERCLASSES))
CIFAR100_FINE_CLASSES = tuple(sorted(n for ns in CIFAR100_SUPERCLASSES.values() for n in ns))
# fine label -> coarse label, used to give fake CIFAR-100 data a consistent hierarchy.
CIFAR100_FINE_TO_COARSE = tuple(
    CIFAR100_COARSE_CLASSES.index(next(c for c, ns in CIFAR100_SUPERCLASSES.items() if n in ns))
    for n in CIFAR100_FINE_CLASSES)


@dataclass(frozen=True)
class Layout:
    """File names of one extracted archive (the folder the official tarball creates)."""

    folder: str
    train: tuple[str, ...]
    test: tuple[str, ...]
    meta: tuple[str, ...]
    label_bytes: int  # binary layout only: label bytes in front of each record

    @property
    def files(self) -> tuple[str, ...]:
        return self.train + self.test + self.meta


LAYOUT_FILES = {
    ("cifar10", "python"): Layout(
        "cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)),
        ("test_batch",), ("batches.meta",), 0),
    ("cifar10", "binary"): Layout(
        "cifar-10-batches-bin", tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
        ("test_batch.bin",), ("batches.meta.txt",), 1),
    ("cifar100", "python"): Layout(
        "cifar-100-python", ("train",), ("test",), ("meta",), 0),
    ("cifar100", "binary"): Layout(
        "cifar-100-binary", ("train.bin",), ("test.bin",),
        ("coarse_label_names.txt", "fine_label_names.txt"), 2),
}


@dataclass(frozen=True)
class LabelSet:
    """Where one label set lives in each layout."""

    batch_key: str  # key of the labels in a python batch
    names_key: str  # key of the class names in the python meta file
    names_file: str  # binary layout: text file of class names
    column: int  # binary layout: index of the label byte within a record
    num_classes: int


LABEL_SETS = {
    ("cifar10", "fine"): LabelSet("labels", "label_names", "batches.meta.txt", 0, 10),
    ("cifar100", "fine"): LabelSet("fine_labels", "fine_label_names",
                                    "fine_label_names.txt", 1, 100),
    ("cifar100", "coarse"): LabelSet("coarse_labels", "coarse_label_names",
                                      "coarse_label_names.txt", 0, 20),
}
DISPLAY_NAMES = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}


class CifarFormatError(DatasetError):
    """A CIFAR file exists but its contents are not what the official format holds."""


class CifarFilesMissing(DatasetError, FileNotFoundError):
    """The CIFAR files are not where the config says (the message names what is missing)."""


@dataclass(frozen=True)
class CifarSplit:
    """One split ready for training: images (N, 32, 32, 3) uint8 RGB (HWC), labels (N,)
    int64 in ``range(len(class_names))``, and the names of those classes."""

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]

    def __post_init__(self) -> None:
        check_images(self.images, "CifarSplit.images")
        check_label_array(self.labels, len(self.images), len(self.class_names),
                           "CifarSplit.labels")

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def subset(self, indices: np.ndarray | Sequence[int]) -> CifarSplit:
        """The images at ``indices``, in that order."""
        indices = np.asarray(indices, dtype=np.int64)
        return CifarSplit(self.images[indices], self.labels[indices], list(self.class_names))


@dataclass(frozen=True)
class CifarArrays:
    """Everything one official split file stores, as arrays: images (N, 32, 32, 3) uint8
    RGB, ``labels`` (N,) (CIFAR-10's labels or CIFAR-100's fine labels) and, for
    CIFAR-100, ``coarse_labels`` (N,). Input of ``write_cifar``."""

    images: np.ndarray
    labels: np.ndarray
    coarse_labels: np.ndarray | None = None

    def __post_init__(self) -> None:
        check_images(self.images, "CifarArrays.images")
        check_label_array(self.labels, len(self.images), 256, "CifarArrays.labels")
        if self.coarse_labels is not None:
            check_label_array(self.coarse_labels, len(self.images), 256,
                               "CifarArrays.coarse_labels")

    def __len__(self) -> int:
        return len(self.labels)


def check_images(images: Any, what: str) -> None:
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8:
        raise CifarFormatError(f"{what} must be a uint8 numpy array, got "
                               f"{getattr(images, 'dtype', type(images).__name__)}")
    if images.ndim != 4 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE, CHANNELS):
        raise CifarFormatError(f"{what} must have shape (N, {IMAGE_SIZE}, {IMAGE_SIZE}, "
                               f"{CHANNELS}) (HWC RGB), got {images.shape}")


def check_label_array(labels: Any, count: int, num_classes: int, what: str) -> None:
    if not isinstance(labels, np.ndarray) or labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise CifarFormatError(f"{what} must be a 1-D integer numpy array, got "
                               f"{getattr(labels, 'shape', type(labels).__name__)} "
                               f"{getattr(labels, 'dtype', '')}".rstrip())
    if len(labels) != count:
        raise CifarFormatError(f"{what} has {len(labels)} labels for {count} images")
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if bad.size:
        raise CifarFormatError(f"{what}[{bad[0]}] is {labels[bad[0]]}, outside 0..{num_classes - 1}"
                               f" ({bad.size} labels out of range)")


def check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")


def to_hwc(flat: np.ndarray) -> np.ndarray:
    """(N, 3072) R-plane, G-plane, B-plane rows -> (N, 32, 32, 3) RGB."""
    planes = flat.reshape(-1, CHANNELS, IMAGE_SIZE, IMAGE_SIZE)
    return np.ascontiguousarray(planes.transpose(0, 2, 3, 1))


def to_planes(images: np.ndarray) -> np.ndarray:
    """(N, 32, 32, 3) RGB -> (N, 3072) rows as the official files store them."""
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2)).reshape(len(images), PIXELS)
