"""CIFAR-10 and CIFAR-100 read from (and written in) their official distribution formats.

Krizhevsky's page (https://www.cs.toronto.edu/~kriz/cifar.html) ships each dataset in two
layouts, and both are read here, detected from the folder's contents:

- python: pickles written by Python 2's cPickle (protocol 2), one dict per file with
  byte-string keys (``b"data"``, ``b"labels"`` or ``b"fine_labels"``/``b"coarse_labels"``,
  ``b"filenames"``, ``b"batch_label"``); ``data`` is a uint8 array (N, 3072) holding the
  red plane, then green, then blue, each 32x32 row-major.
- binary: fixed-size records, one or two label bytes (CIFAR-100: coarse, then fine)
  followed by the same 3072 pixel bytes; class names in text files, one per line.

Unpickling runs code named by the file, so the python layout is read with an unpickler
that resolves only the few globals a genuine batch references (see ``ALLOWED_GLOBALS``)
and refuses everything else before it can be called.

``write_cifar``/``write_fake_cifar`` produce both layouts byte-for-byte in the official
structure, so tests, end-to-end runs and the demo exercise the same reader a real
download goes through.
"""

from __future__ import annotations

import io
import logging
import os
import pickle
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

logger = logging.getLogger(__name__)

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
class _Layout:
    """File names of one extracted archive (the folder the official tarball creates)."""

    folder: str
    train: tuple[str, ...]
    test: tuple[str, ...]
    meta: tuple[str, ...]
    label_bytes: int  # binary layout only: label bytes in front of each record

    @property
    def files(self) -> tuple[str, ...]:
        return self.train + self.test + self.meta


_LAYOUTS = {
    ("cifar10", "python"): _Layout(
        "cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)),
        ("test_batch",), ("batches.meta",), 0),
    ("cifar10", "binary"): _Layout(
        "cifar-10-batches-bin", tuple(f"data_batch_{i}.bin" for i in range(1, 6)),
        ("test_batch.bin",), ("batches.meta.txt",), 1),
    ("cifar100", "python"): _Layout(
        "cifar-100-python", ("train",), ("test",), ("meta",), 0),
    ("cifar100", "binary"): _Layout(
        "cifar-100-binary", ("train.bin",), ("test.bin",),
        ("coarse_label_names.txt", "fine_label_names.txt"), 2),
}


@dataclass(frozen=True)
class _LabelSet:
    """Where one label set lives in each layout."""

    batch_key: str  # key of the labels in a python batch
    names_key: str  # key of the class names in the python meta file
    names_file: str  # binary layout: text file of class names
    column: int  # binary layout: index of the label byte within a record
    num_classes: int


_LABEL_SETS = {
    ("cifar10", "fine"): _LabelSet("labels", "label_names", "batches.meta.txt", 0, 10),
    ("cifar100", "fine"): _LabelSet("fine_labels", "fine_label_names",
                                    "fine_label_names.txt", 1, 100),
    ("cifar100", "coarse"): _LabelSet("coarse_labels", "coarse_label_names",
                                      "coarse_label_names.txt", 0, 20),
}
_DISPLAY = {"cifar10": "CIFAR-10", "cifar100": "CIFAR-100"}


class CifarFormatError(ValueError):
    """A CIFAR file exists but its contents are not what the official format holds."""


class UnsafePickleError(pickle.UnpicklingError):
    """A python-layout file asks the unpickler for something a CIFAR batch never needs."""


# ---------------------------------------------------------------------------------------
# Containers


@dataclass(frozen=True)
class CifarSplit:
    """One split ready for training: images (N, 32, 32, 3) uint8 RGB (HWC), labels (N,)
    int64 in ``range(len(class_names))``, and the names of those classes."""

    images: np.ndarray
    labels: np.ndarray
    class_names: list[str]

    def __post_init__(self) -> None:
        _check_images(self.images, "CifarSplit.images")
        _check_label_array(self.labels, len(self.images), len(self.class_names),
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
        _check_images(self.images, "CifarArrays.images")
        _check_label_array(self.labels, len(self.images), 256, "CifarArrays.labels")
        if self.coarse_labels is not None:
            _check_label_array(self.coarse_labels, len(self.images), 256,
                               "CifarArrays.coarse_labels")

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True)
class FakeCifar:
    """What ``write_fake_cifar`` wrote: the extracted folder and the arrays in it."""

    folder: Path
    train: CifarArrays
    test: CifarArrays


def _check_images(images: Any, what: str) -> None:
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8:
        raise CifarFormatError(f"{what} must be a uint8 numpy array, got "
                               f"{getattr(images, 'dtype', type(images).__name__)}")
    if images.ndim != 4 or images.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE, CHANNELS):
        raise CifarFormatError(f"{what} must have shape (N, {IMAGE_SIZE}, {IMAGE_SIZE}, "
                               f"{CHANNELS}) (HWC RGB), got {images.shape}")


def _check_label_array(labels: Any, count: int, num_classes: int, what: str) -> None:
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


def _check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")


# ---------------------------------------------------------------------------------------
# The restricted unpickler


class _RefusedCallError(Exception):
    """An allowed global was called with arguments a CIFAR batch never passes."""


def _reconstruct_ndarray(subtype: Any, shape: Any, typecode: Any) -> np.ndarray:
    # numpy pickles every array as _reconstruct(ndarray, (0,), b"b") followed by
    # __setstate__ with the real shape, dtype and bytes; anything else is not numpy's.
    if subtype is not np.ndarray or shape != (0,) or typecode not in (b"b", "b"):
        raise _RefusedCallError(f"numpy.core.multiarray._reconstruct called as "
                                f"({subtype!r}, {shape!r}, {typecode!r}), not as numpy "
                                "pickles an array")
    return np.core.multiarray._reconstruct(np.ndarray, (0,), b"b")


def _plain_dtype(spec: Any, align: Any = False, copy: Any = False) -> np.dtype:
    # Only numeric dtypes: object arrays would let a file smuggle arbitrary nested
    # objects, and structured ones are never in a CIFAR batch.
    if not isinstance(spec, (bytes, str)):
        raise _RefusedCallError(f"numpy.dtype called with {type(spec).__name__} {spec!r}")
    dtype = np.dtype(spec.decode("latin1") if isinstance(spec, bytes) else spec,
                     bool(align), bool(copy))
    if dtype.kind not in "biuf":
        raise _RefusedCallError(f"numpy.dtype {dtype.str!r} (kind {dtype.kind!r}): only "
                                "numeric arrays occur in CIFAR files")
    return dtype


def _latin1_encode(text: Any, encoding: Any = "utf-8", errors: Any = "strict") -> bytes:
    # Python 3 writes bytes under protocol < 3 as _codecs.encode(str, "latin1"); that
    # exact call is all a batch re-saved by Python 3 needs from the codecs machinery.
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1") or errors != "strict":
        raise _RefusedCallError(f"_codecs.encode called with encoding {encoding!r}; only "
                                "the 'latin1' spelling of bytes is allowed")
    return text.encode("latin1")


def _empty_bytes(*args: Any) -> bytes:
    # ... and the empty bytes object as bytes(); bytes(n) with a huge n would only
    # exhaust memory, so no arguments are accepted.
    if args:
        raise _RefusedCallError(f"bytes called with arguments {args!r}; only bytes() is allowed")
    return b""


# (module, name) as written in the file -> what the unpickler gets instead.
ALLOWED_GLOBALS: dict[tuple[str, str], Callable[..., Any] | type] = {
    # Every pickled numpy array (Python 2 cPickle and Python 3, protocols 2-4).
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct_ndarray,
    ("numpy", "ndarray"): np.ndarray,  # the class handed to _reconstruct
    ("numpy", "dtype"): _plain_dtype,  # the array's element type ("u1")
    # Only in files re-saved by Python 3 with protocol 2 (bytes keys, array bytes).
    ("_codecs", "encode"): _latin1_encode,
    ("__builtin__", "bytes"): _empty_bytes,  # protocol 2 with fix_imports (the default)
    ("builtins", "bytes"): _empty_bytes,  # protocol 2 with fix_imports=False
}


class _CifarUnpickler(pickle.Unpickler):
    """Resolves only ``ALLOWED_GLOBALS``; every other global is refused by name.

    ``find_class`` is the one place where GLOBAL, STACK_GLOBAL, INST, OBJ and the
    extension-registry opcodes turn a name into a callable, so refusing there means a
    crafted ``__reduce__`` never runs.
    """

    def __init__(self, file: BinaryIO, source: Path) -> None:
        # encoding="bytes" loads Python 2 str (keys, names, array bytes) as bytes, as
        # the dataset page instructs; read_cifar_pickle normalises the keys afterwards.
        super().__init__(file, encoding="bytes")
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refusing to load {self._source}: it references {module}.{name}, which a "
                "CIFAR batch never does (only numpy array reconstruction is allowed)") from None

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"refusing to load {self._source}: it uses a persistent id, "
                                "which a CIFAR batch never does")


def read_cifar_pickle(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Unpickle one python-layout file with the restricted unpickler.

    Returns the dict with keys decoded to str (the originals have bytes keys, files
    re-saved by Python 3 may have str keys). Raises ``UnsafePickleError`` for anything
    beyond numpy arrays and plain Python values, ``CifarFormatError`` for a corrupt
    file or one that does not hold a dict.
    """
    path = Path(path)
    with open(path, "rb") as handle:
        data = handle.read()
    try:
        obj = _CifarUnpickler(io.BytesIO(data), path).load()
    except UnsafePickleError:
        raise
    except _RefusedCallError as exc:
        raise UnsafePickleError(f"refusing to load {path}: {exc}") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError,
            IndexError, KeyError, OverflowError, RecursionError, struct.error) as exc:
        raise CifarFormatError(f"{path} is not a readable pickle ({type(exc).__name__}: "
                               f"{exc}); re-extract the official archive") from exc
    if not isinstance(obj, dict):
        raise CifarFormatError(f"{path} holds a {type(obj).__name__}, not the dict of a "
                               "CIFAR batch")
    return {key.decode("latin1") if isinstance(key, bytes) else key: value
            for key, value in obj.items()}


# ---------------------------------------------------------------------------------------
# Reading


def _to_hwc(flat: np.ndarray) -> np.ndarray:
    """(N, 3072) R-plane, G-plane, B-plane rows -> (N, 32, 32, 3) RGB."""
    planes = flat.reshape(-1, CHANNELS, IMAGE_SIZE, IMAGE_SIZE)
    return np.ascontiguousarray(planes.transpose(0, 2, 3, 1))


def _to_planes(images: np.ndarray) -> np.ndarray:
    """(N, 32, 32, 3) RGB -> (N, 3072) rows as the official files store them."""
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2)).reshape(len(images), PIXELS)


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


def _read_python_batch(path: Path, label_sets: Sequence[_LabelSet]
                       ) -> tuple[np.ndarray, list[np.ndarray]]:
    batch = read_cifar_pickle(path)
    data = _python_entry(batch, "data", path)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 \
            or data.shape[1] != PIXELS:
        raise CifarFormatError(
            f"{path}: 'data' must be a uint8 array of shape (N, {PIXELS}), got "
            f"{getattr(data, 'dtype', type(data).__name__)} {getattr(data, 'shape', '')}")
    labels = []
    for label_set in label_sets:
        raw = _python_entry(batch, label_set.batch_key, path)
        values = np.asarray(raw)
        if values.ndim != 1 or (values.size and values.dtype.kind not in "iu"):
            raise CifarFormatError(f"{path}: {label_set.batch_key!r} must be a list of ints, "
                                   f"got {values.dtype} with shape {values.shape}")
        if len(values) != len(data):
            raise CifarFormatError(f"{path}: {len(values)} {label_set.batch_key} for "
                                   f"{len(data)} images in 'data'")
        values = values.astype(np.int64)
        _check_range(values, label_set.num_classes, path, label_set.batch_key)
        labels.append(values)
    return _to_hwc(data), labels


def _read_binary_batch(path: Path, label_bytes: int, label_sets: Sequence[_LabelSet]
                       ) -> tuple[np.ndarray, list[np.ndarray]]:
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
    labels = []
    for label_set in label_sets:
        values = records[:, label_set.column].astype(np.int64)
        what = label_set.batch_key.rstrip("s").replace("_", " ")  # "fine label"
        _check_range(values, label_set.num_classes, path, what)
        labels.append(values)
    return _to_hwc(records[:, label_bytes:]), labels


def _decode_names(names: Any, path: Path, key: str) -> list[str]:
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, (bytes, str))
                                                      for n in names):
        raise CifarFormatError(f"{path}: {key!r} must be a list of strings")
    return [n.decode("utf-8") if isinstance(n, bytes) else n for n in names]


def _read_class_names(folder: Path, layout: str, label_set: _LabelSet,
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


def _has_files(folder: Path, layout: _Layout) -> bool:
    return any((folder / name).is_file() for name in layout.files)


def locate_cifar(root: str | os.PathLike[str], dataset: str = "cifar10",
                 layout: str = "auto") -> tuple[Path, str]:
    """Find the extracted folder of ``dataset`` and its layout ("python" or "binary").

    ``root`` may be the extracted folder itself (under any name: it is recognised by
    its files) or its parent holding ``cifar-10-batches-py``, ``cifar-10-batches-bin``,
    ``cifar-100-python`` or ``cifar-100-binary``. With ``layout="auto"`` and both
    layouts present, the binary one wins: it is read without unpickling anything.
    """
    _check_choice("dataset", dataset, DATASETS)
    _check_choice("layout", layout, (*LAYOUTS, "auto"))
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"CIFAR root {root} does not exist or is not a folder")
    candidates = ("binary", "python") if layout == "auto" else (layout,)
    for kind in candidates:
        if _has_files(root, _LAYOUTS[(dataset, kind)]):
            return root, kind
    found = [(root / _LAYOUTS[(dataset, kind)].folder, kind) for kind in candidates
             if (root / _LAYOUTS[(dataset, kind)].folder).is_dir()]
    if found:
        if len(found) > 1:
            logger.info("Both CIFAR layouts are under %s; reading %s", root, found[0][0])
        return found[0]
    expected = "; ".join(
        f"{kind}: {spec.folder}/ with {', '.join(spec.files)}"
        for kind in candidates for spec in [_LAYOUTS[(dataset, kind)]])
    message = (f"no {_DISPLAY[dataset]} found in {root}: give the extracted folder or its "
               f"parent ({expected})")
    other = "cifar100" if dataset == "cifar10" else "cifar10"
    for kind in LAYOUTS:
        spec = _LAYOUTS[(other, kind)]
        if _has_files(root, spec) or (root / spec.folder).is_dir():
            message += f"; {root} holds {_DISPLAY[other]} instead: pass dataset={other!r}"
            break
    raise FileNotFoundError(message)


def load_cifar(root: str | os.PathLike[str], dataset: str = "cifar10", split: str = "train",
               label: str = "fine", layout: str = "auto") -> CifarSplit:
    """Read one split of CIFAR-10 or CIFAR-100 from the official python or binary files.

    Parameters
    ----------
    root : the extracted folder or its parent (see ``locate_cifar``).
    dataset : "cifar10" or "cifar100".
    split : "train" (50,000 images, in file order) or "test" (10,000).
    label : "fine" (CIFAR-10's labels, CIFAR-100's 100 classes) or "coarse" (CIFAR-100's
        20 superclasses).
    layout : "auto" (detect), "python" or "binary".

    Raises ``FileNotFoundError`` naming the expected files, ``CifarFormatError`` naming the
    file (and record) that does not fit the format, ``UnsafePickleError`` for a pickle
    that references anything but numpy arrays.
    """
    _check_choice("split", split, SPLITS)
    _check_choice("label", label, LABEL_KINDS)
    _check_choice("dataset", dataset, DATASETS)
    if (dataset, label) not in _LABEL_SETS:
        raise ValueError(f"{_DISPLAY[dataset]} has a single label set: use label='fine'")
    folder, kind = locate_cifar(root, dataset, layout)
    spec = _LAYOUTS[(dataset, kind)]
    label_set = _LABEL_SETS[(dataset, label)]
    files = spec.train if split == "train" else spec.test
    meta_file = label_set.names_file if kind == "binary" else spec.meta[0]
    missing = [name for name in (*files, meta_file) if not (folder / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{folder} ({_DISPLAY[dataset]}, {kind} layout) is missing {', '.join(missing)}; "
            f"a complete copy holds {', '.join(spec.files)}")
    class_names = _read_class_names(folder, kind, label_set, meta_file)
    images, labels = [], []
    for name in files:
        if kind == "python":
            batch_images, (batch_labels,) = _read_python_batch(folder / name, [label_set])
        else:
            batch_images, (batch_labels,) = _read_binary_batch(folder / name,
                                                               spec.label_bytes, [label_set])
        images.append(batch_images)
        labels.append(batch_labels)
    result = CifarSplit(np.concatenate(images), np.concatenate(labels), class_names)
    logger.info("Loaded %s %s (%s labels, %s layout) from %s: %d images, %d classes",
                _DISPLAY[dataset], split, label, kind, folder, len(result), len(class_names))
    return result


# ---------------------------------------------------------------------------------------
# The train/validation split


def train_val_indices(labels: np.ndarray | Sequence[int], val_size: int = 5000,
                      seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Stratified, reproducible split of ``range(len(labels))`` into (train, val) indices.

    Each class gives ``val_size * count / N`` images to validation, rounded by largest
    remainder (ties to the lower class) so the sizes add up to ``val_size`` exactly. Both
    index arrays are sorted, i.e. keep file order; shuffling is the iterator's job.
    """
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


def train_val_split(split: CifarSplit, val_size: int = 5000,
                    seed: int = 0) -> tuple[CifarSplit, CifarSplit]:
    """Hold out ``val_size`` images of a training split, stratified by class.

    With the defaults on CIFAR-10 train this is the 45k/5k train/val split of He et al.,
    "Deep Residual Learning for Image Recognition" (CVPR 2016), section 4.2, with 500
    images of each class held out.
    """
    train_idx, val_idx = train_val_indices(split.labels, val_size, seed)
    logger.info("Split %d images into %d train / %d val (seed %d, stratified by class)",
                len(split), len(train_idx), len(val_idx), seed)
    return split.subset(train_idx), split.subset(val_idx)


# ---------------------------------------------------------------------------------------
# Writing the official formats


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
    _check_choice("dataset", dataset, DATASETS)
    _check_choice("layout", layout, LAYOUTS)
    spec = _LAYOUTS[(dataset, layout)]
    fine = _LABEL_SETS[(dataset, "fine")]
    for name, arrays in (("train", train), ("test", test)):
        _check_label_array(arrays.labels, len(arrays), fine.num_classes, f"{name}.labels")
        if dataset == "cifar100":
            if arrays.coarse_labels is None:
                raise ValueError(f"{name}.coarse_labels is required for CIFAR-100")
            _check_label_array(arrays.coarse_labels, len(arrays), 20, f"{name}.coarse_labels")
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
        planes = _to_planes(arrays.images)
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
                _DISPLAY[dataset], layout, folder, len(train), len(test))
    return folder


def fake_cifar_arrays(count: int, dataset: str = "cifar10", seed: int = 0) -> CifarArrays:
    """``count`` images whose colour depends on the class (so a network can learn them),
    with balanced labels and, for CIFAR-100, the real fine -> coarse hierarchy."""
    _check_choice("dataset", dataset, DATASETS)
    num_classes = _LABEL_SETS[(dataset, "fine")].num_classes
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
