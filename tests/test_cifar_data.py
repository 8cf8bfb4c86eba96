"""CIFAR-10/100 readers and writers on small files in the official python and binary formats."""

from __future__ import annotations

import os
import pickle
import pickletools
import shlex
import struct
from pathlib import Path

import numpy as np
import pytest

from pyimagesearch.data.sources.cifar import load_cifar, locate_cifar, train_val_indices
from pyimagesearch.data.sources.cifar_format import (
    CIFAR10_CLASSES,
    CIFAR100_COARSE_CLASSES,
    CIFAR100_FINE_CLASSES,
    CIFAR100_FINE_TO_COARSE,
    CifarArrays,
    CifarFormatError,
    CifarSplit,
)
from pyimagesearch.data.sources.cifar_pickle import UnsafePickleError, read_cifar_pickle
from pyimagesearch.data.sources.cifar_writer import write_cifar, write_fake_cifar

CASES = [(dataset, layout) for dataset in ("cifar10", "cifar100")
         for layout in ("python", "binary")]


# --- helpers that assemble pickles opcode by opcode -------------------------------------

def _str8(data: bytes) -> bytes:
    """A Python 2 str as cPickle writes it (SHORT_BINSTRING / BINSTRING)."""
    if len(data) < 256:
        return b"U" + bytes([len(data)]) + data
    return b"T" + struct.pack("<i", len(data)) + data


def _unicode(text: str) -> bytes:
    data = text.encode()
    return b"X" + struct.pack("<I", len(data)) + data


def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _python2_batch(planes: np.ndarray, labels: list[int]) -> bytes:
    """A CIFAR-10 batch exactly as Python 2's cPickle (protocol 2) and numpy wrote the
    originals: str as BINSTRING, dtype arguments as ints, no memo needed."""
    rows, cols = planes.shape
    array = (_global("numpy.core.multiarray", "_reconstruct") + _global("numpy", "ndarray")
             + b"K\x00\x85" + _str8(b"b") + b"\x87R"
             + b"(K\x01" + b"M" + struct.pack("<H", rows) + b"M" + struct.pack("<H", cols)
             + b"\x86" + _global("numpy", "dtype") + _str8(b"u1") + b"K\x00K\x01\x87R"
             + b"(K\x03" + _str8(b"|") + b"NNN" + b"J\xff\xff\xff\xff" * 2 + b"K\x00tb"
             + b"\x89" + _str8(planes.tobytes()) + b"tb")
    label_list = b"](" + b"".join(b"K" + bytes([x]) for x in labels) + b"e"
    return (b"\x80\x02}(" + _str8(b"batch_label") + _str8(b"testing batch 1 of 1")
            + _str8(b"labels") + label_list + _str8(b"data") + array + b"u.")


def _globals_in(path: Path) -> set[str]:
    names = set()
    for opcode, arg, _ in pickletools.genops(path.read_bytes()):
        if opcode.name == "GLOBAL":
            names.add(arg.replace(" ", "."))
        assert opcode.name != "STACK_GLOBAL"
    return names


def _dump(path: Path, obj: object, protocol: int = 2) -> None:
    with open(path, "wb") as handle:
        pickle.dump(obj, handle, protocol=protocol)


def _planes(images: np.ndarray) -> np.ndarray:
    return images.transpose(0, 3, 1, 2).reshape(len(images), -1)


# --- round trips and pixel layout -------------------------------------------------------

@pytest.mark.parametrize("dataset,layout", CASES)
def test_round_trip_gives_back_what_was_written(tmp_path, dataset, layout):
    fake = write_fake_cifar(tmp_path, dataset, layout, images_per_batch=6, seed=3)
    label_sets = ["fine"] if dataset == "cifar10" else ["fine", "coarse"]
    for split, written in (("train", fake.train), ("test", fake.test)):
        for label in label_sets:
            got = load_cifar(tmp_path, dataset, split, label)
            expected = written.labels if label == "fine" else written.coarse_labels
            assert got.images.dtype == np.uint8 and got.images.shape == (len(written), 32, 32, 3)
            assert got.labels.dtype == np.int64
            np.testing.assert_array_equal(got.images, written.images)
            np.testing.assert_array_equal(got.labels, expected)
            names = {("cifar10", "fine"): CIFAR10_CLASSES,
                     ("cifar100", "fine"): CIFAR100_FINE_CLASSES,
                     ("cifar100", "coarse"): CIFAR100_COARSE_CLASSES}[(dataset, label)]
            assert got.class_names == list(names)
    assert len(fake.train) == 30 and len(fake.test) == 6


def test_fake_cifar100_has_the_real_superclass_of_each_class(tmp_path):
    fake = write_fake_cifar(tmp_path, "cifar100", "python", images_per_batch=40)
    for fine, coarse in zip(fake.train.labels, fake.train.coarse_labels, strict=True):
        assert CIFAR100_FINE_TO_COARSE[fine] == coarse
    assert CIFAR100_FINE_CLASSES[19] == "cattle"  # fine label 19 in the official meta
    assert CIFAR100_COARSE_CLASSES[CIFAR100_FINE_TO_COARSE[19]] == \
        "large_omnivores_and_herbivores"


def _marked_arrays(dataset: str) -> tuple[CifarArrays, CifarArrays]:
    images = np.zeros((6, 32, 32, 3), np.uint8)
    images[1, 2, 5] = (11, 22, 33)  # row 2, column 5 of image 1
    images[0, 31, 30] = (200, 100, 50)
    labels = np.arange(6, dtype=np.int64)
    coarse = labels + 10 if dataset == "cifar100" else None
    arrays = CifarArrays(images, labels, coarse)
    return arrays, arrays


@pytest.mark.parametrize("dataset,layout", CASES)
def test_pixels_are_planar_row_major_in_files_and_hwc_rgb_in_memory(tmp_path, dataset, layout):
    train, test = _marked_arrays(dataset)
    folder = write_cifar(tmp_path, dataset, layout, train, test)
    name = {"cifar10": "test_batch", "cifar100": "test"}[dataset]
    offset = 2 * 32 + 5  # row-major index of (row 2, column 5) within a plane
    if layout == "binary":
        label_bytes = 1 if dataset == "cifar10" else 2
        raw = np.fromfile(folder / f"{name}.bin", np.uint8).reshape(6, label_bytes + 3072)
        if dataset == "cifar100":
            assert list(raw[1, :2]) == [11, 1]  # coarse label first, then fine
        row = raw[1, label_bytes:]
    else:
        with open(folder / name, "rb") as handle:  # our own file: plain pickle is fine
            row = pickle.load(handle, encoding="bytes")[b"data"][1]
    assert (row[offset], row[1024 + offset], row[2048 + offset]) == (11, 22, 33)
    assert np.count_nonzero(row) == 3

    got = load_cifar(tmp_path, dataset, "test")
    assert tuple(got.images[1, 2, 5]) == (11, 22, 33)
    assert tuple(got.images[0, 31, 30]) == (200, 100, 50)
    assert np.count_nonzero(got.images) == 6


@pytest.mark.parametrize("dataset", ["cifar10", "cifar100"])
def test_written_pickles_look_like_python2_originals(tmp_path, dataset):
    folder = write_fake_cifar(tmp_path, dataset, "python", images_per_batch=3).folder
    array_globals = {"numpy.core.multiarray._reconstruct", "numpy.ndarray", "numpy.dtype"}
    for path in sorted(folder.iterdir()):
        assert path.read_bytes()[:2] == b"\x80\x02"
        opcodes = {op.name for op, _, _ in pickletools.genops(path.read_bytes())}
        assert not opcodes & {"BINUNICODE", "SHORT_BINUNICODE", "BINBYTES", "SHORT_BINBYTES"}
        assert _globals_in(path) <= array_globals  # no _codecs.encode, as in the originals
        with open(path, "rb") as handle:
            batch = pickle.load(handle, encoding="bytes")
        assert all(isinstance(key, bytes) for key in batch)
    with open(folder / ("test_batch" if dataset == "cifar10" else "test"), "rb") as handle:
        batch = pickle.load(handle, encoding="bytes")
    expected = ({b"batch_label", b"labels", b"data", b"filenames"} if dataset == "cifar10"
                else {b"batch_label", b"fine_labels", b"coarse_labels", b"data", b"filenames"})
    assert set(batch) == expected
    assert batch[b"data"].shape == (3, 3072) and batch[b"data"].dtype == np.uint8


def test_reads_a_batch_byte_for_byte_as_python2_cpickle_wrote_it(tmp_path):
    folder = write_fake_cifar(tmp_path, "cifar10", "python", images_per_batch=2).folder
    images = np.random.default_rng(0).integers(0, 256, (2, 32, 32, 3), dtype=np.uint8)
    (folder / "test_batch").write_bytes(_python2_batch(_planes(images), [3, 7]))
    got = load_cifar(folder, "cifar10", "test")
    np.testing.assert_array_equal(got.images, images)
    assert got.labels.tolist() == [3, 7]


@pytest.mark.parametrize("protocol", [2, 3, 4])
@pytest.mark.parametrize("bytes_keys", [True, False])
def test_reads_batches_resaved_by_python3(tmp_path, protocol, bytes_keys):
    folder = write_fake_cifar(tmp_path, "cifar10", "python", images_per_batch=4).folder
    images = np.random.default_rng(1).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    batch = {"batch_label": b"", "labels": [1, 2, 3, 4], "data": _planes(images),
             "filenames": [b"a.png"] * 4}
    if bytes_keys:
        batch = {key.encode(): value for key, value in batch.items()}
    _dump(folder / "test_batch", batch, protocol)
    if protocol == 2:  # the path that needs _codecs.encode and bytes()
        assert {"_codecs.encode", "__builtin__.bytes"} <= _globals_in(folder / "test_batch")
    got = load_cifar(folder, "cifar10", "test")
    np.testing.assert_array_equal(got.images, images)
    assert got.labels.tolist() == [1, 2, 3, 4]


# --- the restricted unpickler -----------------------------------------------------------

class _RunsShell:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


class _OpensFile:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return open, (str(self.marker), "w")


@pytest.mark.parametrize("payload", [_RunsShell, _OpensFile])
def test_malicious_pickle_is_refused_and_never_runs(tmp_path, payload):
    # The payload is live: plain pickle runs it.
    probe = tmp_path / "probe"
    result = pickle.loads(pickle.dumps(payload(probe), protocol=2))
    if hasattr(result, "close"):
        result.close()
    assert probe.exists()

    folder = write_fake_cifar(tmp_path, "cifar10", "python", images_per_batch=2).folder
    marker = tmp_path / "marker"
    _dump(folder / "data_batch_1", {b"data": payload(marker), b"labels": [0, 1]})
    with pytest.raises(UnsafePickleError) as info:
        load_cifar(tmp_path, "cifar10", "train")
    message = str(info.value)
    assert str(folder / "data_batch_1") in message
    assert "refusing to load" in message and "a CIFAR batch never does" in message
    assert ("system" if payload is _RunsShell else "io.open") in message
    assert not marker.exists()


FORBIDDEN = [("os", "system"), ("posix", "system"), ("builtins", "eval"),
             ("__builtin__", "eval"), ("builtins", "getattr"), ("builtins", "__import__"),
             ("subprocess", "Popen"), ("numpy", "load"), ("numpy.core.multiarray", "scalar"),
             ("numpy.core.numeric", "_frombuffer"), ("copyreg", "_reconstructor")]


@pytest.mark.parametrize("module,name", FORBIDDEN)
@pytest.mark.parametrize("opcode", ["GLOBAL", "STACK_GLOBAL"])
def test_other_globals_are_refused_by_name(tmp_path, module, name, opcode):
    if opcode == "GLOBAL":
        head = b"\x80\x02" + _global(module, name)
    else:
        head = (b"\x80\x04\x8c" + bytes([len(module)]) + module.encode()
                + b"\x8c" + bytes([len(name)]) + name.encode() + b"\x93")
    path = tmp_path / "data_batch_1"
    path.write_bytes(head + b")R.")
    with pytest.raises(UnsafePickleError, match=f"references {module}.{name}, which a CIFAR"):
        read_cifar_pickle(path)


MISUSED = {
    "codec other than latin1": _global("_codecs", "encode") + _unicode("hello")
    + _unicode("rot13") + b"\x86R.",
    "object dtype": _global("numpy", "dtype") + _unicode("O8") + b"\x89\x88\x87R.",
    "huge reconstruct shape": _global("numpy.core.multiarray", "_reconstruct")
    + _global("numpy", "ndarray") + b"J\x00\xca\x9a\x3b\x85" + _str8(b"b") + b"\x87R.",
    "reconstruct of another class": _global("numpy.core.multiarray", "_reconstruct")
    + _global("numpy", "dtype") + b"K\x00\x85" + _str8(b"b") + b"\x87R.",
    "bytes of a size": _global("__builtin__", "bytes") + b"J\x00\xca\x9a\x3b\x85R.",
}


@pytest.mark.parametrize("case", sorted(MISUSED))
def test_allowed_globals_refuse_calls_a_batch_never_makes(tmp_path, case):
    path = tmp_path / "test_batch"
    path.write_bytes(b"\x80\x02" + MISUSED[case])
    with pytest.raises(UnsafePickleError, match=f"refusing to load {path}"):
        read_cifar_pickle(path)


def test_corrupt_or_foreign_pickles_are_format_errors(tmp_path):
    path = tmp_path / "data_batch_1"
    _dump(path, {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]})
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(CifarFormatError, match="not a readable pickle"):
        read_cifar_pickle(path)
    _dump(path, [1, 2, 3])
    with pytest.raises(CifarFormatError, match="holds a list, not the dict"):
        read_cifar_pickle(path)


# --- bad contents -----------------------------------------------------------------------

@pytest.mark.parametrize("batch,message", [
    ({b"data": np.zeros((2, 3000), np.uint8), b"labels": [0, 1]},
     r"'data' must be a uint8 array of shape \(N, 3072\), got uint8 \(2, 3000\)"),
    ({b"data": np.zeros((2, 3072), np.float32), b"labels": [0, 1]}, "got float32"),
    ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1, 2]},
     "3 labels for 2 images in 'data'"),
    ({b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]},
     "record 1 has labels 10, outside 0..9"),
    ({b"data": np.zeros((2, 3072), np.uint8), b"labels": ["a", "b"]}, "must be a list of ints"),
    ({b"data": np.zeros((2, 3072), np.uint8)}, "has no 'labels' entry"),
])
def test_python_batch_contents_are_validated(tmp_path, batch, message):
    folder = write_fake_cifar(tmp_path, "cifar10", "python", images_per_batch=2).folder
    _dump(folder / "test_batch", batch)
    with pytest.raises(CifarFormatError, match=message) as info:
        load_cifar(tmp_path, "cifar10", "test")
    assert str(folder / "test_batch") in str(info.value)


def test_class_name_count_is_validated(tmp_path):
    folder = write_fake_cifar(tmp_path, "cifar10", "python", images_per_batch=2).folder
    _dump(folder / "batches.meta", {b"label_names": [b"cat"] * 9})
    with pytest.raises(CifarFormatError, match="lists 9 class names where 10 belong"):
        load_cifar(tmp_path, "cifar10", "test")
    binary = write_fake_cifar(tmp_path, "cifar100", "binary", images_per_batch=2).folder
    (binary / "coarse_label_names.txt").write_text("a\n\nb\n")
    with pytest.raises(CifarFormatError, match="lists 2 class names where 20 belong"):
        load_cifar(binary, "cifar100", "test", "coarse")


def test_blank_lines_in_binary_name_files_are_ignored(tmp_path):
    folder = write_fake_cifar(tmp_path, "cifar10", "binary", images_per_batch=2).folder
    (folder / "batches.meta.txt").write_text("\n".join(CIFAR10_CLASSES) + "\n\n\n")
    assert load_cifar(folder, "cifar10", "test").class_names == list(CIFAR10_CLASSES)


@pytest.mark.parametrize("cut,message", [
    (-5, "record 3 is truncated (3068 of 3073 bytes)"),
    (+10, "record 4 is truncated (10 of 3073 bytes)"),
])
def test_truncated_binary_file_is_refused_naming_the_record(tmp_path, cut, message):
    folder = write_fake_cifar(tmp_path, "cifar10", "binary", images_per_batch=4).folder
    path = folder / "test_batch.bin"
    data = path.read_bytes()
    path.write_bytes(data[:cut] if cut < 0 else data + b"\x00" * cut)
    with pytest.raises(CifarFormatError) as info:
        load_cifar(tmp_path, "cifar10", "test")
    assert message in str(info.value) and str(path) in str(info.value)
    path.write_bytes(b"")
    with pytest.raises(CifarFormatError, match="is empty"):
        load_cifar(tmp_path, "cifar10", "test")


@pytest.mark.parametrize("dataset,label,byte,value,message", [
    ("cifar10", "fine", 0, 10, "record 2 has label 10, outside 0..9"),
    ("cifar100", "fine", 1, 100, "record 2 has fine label 100, outside 0..99"),
    ("cifar100", "coarse", 0, 20, "record 2 has coarse label 20, outside 0..19"),
])
def test_binary_labels_out_of_range_name_the_record(tmp_path, dataset, label, byte, value,
                                                   message):
    folder = write_fake_cifar(tmp_path, dataset, "binary", images_per_batch=4).folder
    path = folder / ("test_batch.bin" if dataset == "cifar10" else "test.bin")
    data = bytearray(path.read_bytes())
    record = len(data) // 4
    data[2 * record + byte] = value
    path.write_bytes(bytes(data))
    with pytest.raises(CifarFormatError, match=message) as info:
        load_cifar(tmp_path, dataset, "test", label)
    assert str(path) in str(info.value)


# --- finding the files ------------------------------------------------------------------

def test_missing_files_are_named(tmp_path):
    folder = write_fake_cifar(tmp_path, "cifar10", "python", images_per_batch=2).folder
    (folder / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match="is missing data_batch_3; a complete copy "
                       "holds data_batch_1, data_batch_2"):
        load_cifar(tmp_path, "cifar10", "train")
    assert len(load_cifar(tmp_path, "cifar10", "test")) == 2  # test needs no train batch
    (folder / "batches.meta").unlink()
    with pytest.raises(FileNotFoundError, match="is missing batches.meta;"):
        load_cifar(tmp_path, "cifar10", "test")


def test_nothing_found_lists_the_expected_layouts(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        load_cifar(tmp_path, "cifar100")
    message = str(info.value)
    for expected in ("cifar-100-python/", "cifar-100-binary/", "train.bin",
                     "fine_label_names.txt", "meta"):
        assert expected in message
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_cifar(tmp_path / "nowhere")


def test_wrong_dataset_gets_a_hint(tmp_path):
    write_fake_cifar(tmp_path, "cifar100", "python", images_per_batch=2)
    with pytest.raises(FileNotFoundError, match="holds CIFAR-100 instead: pass "
                       "dataset='cifar100'"):
        load_cifar(tmp_path, "cifar10")


def test_layout_is_detected_from_the_folder_or_its_parent(tmp_path):
    python = write_fake_cifar(tmp_path, "cifar10", "python", images_per_batch=2).folder
    assert locate_cifar(tmp_path, "cifar10") == (python, "python")
    assert locate_cifar(python, "cifar10") == (python, "python")
    binary = write_fake_cifar(tmp_path, "cifar10", "binary", images_per_batch=2).folder
    # Both present: binary wins (nothing to unpickle), unless asked for.
    assert locate_cifar(tmp_path, "cifar10") == (binary, "binary")
    assert locate_cifar(tmp_path, "cifar10", "python") == (python, "python")
    assert locate_cifar(binary, "cifar10") == (binary, "binary")
    # A renamed folder is recognised by its contents.
    renamed = binary.rename(tmp_path / "my copy")
    assert locate_cifar(renamed, "cifar10") == (renamed, "binary")
    # Both datasets side by side.
    c100 = write_fake_cifar(tmp_path, "cifar100", "python", images_per_batch=2).folder
    assert locate_cifar(tmp_path, "cifar100") == (c100, "python")
    assert locate_cifar(c100, "cifar100") == (c100, "python")
    assert locate_cifar(tmp_path, "cifar10") == (python, "python")
    with pytest.raises(FileNotFoundError):
        locate_cifar(python, "cifar10", "binary")


def test_argument_errors(tmp_path):
    write_fake_cifar(tmp_path, "cifar10", "python", images_per_batch=2)
    with pytest.raises(ValueError, match="single label set"):
        load_cifar(tmp_path, "cifar10", label="coarse")
    with pytest.raises(ValueError, match="split must be one of 'train', 'test'"):
        load_cifar(tmp_path, "cifar10", split="val")
    with pytest.raises(ValueError, match="dataset must be one of"):
        load_cifar(tmp_path, "cifar1000")


# --- containers and the writer's checks -------------------------------------------------

def test_containers_reject_wrong_sizes():
    images = np.zeros((3, 32, 32, 3), np.uint8)
    names = ["a", "b"]
    with pytest.raises(CifarFormatError, match=r"shape \(N, 32, 32, 3\)"):
        CifarSplit(np.zeros((3, 3, 32, 32), np.uint8), np.zeros(3, np.int64), names)
    with pytest.raises(CifarFormatError, match="2 labels for 3 images"):
        CifarSplit(images, np.zeros(2, np.int64), names)
    with pytest.raises(CifarFormatError, match=r"\[1\] is 2, outside 0..1"):
        CifarSplit(images, np.array([0, 2, 1]), names)
    with pytest.raises(CifarFormatError, match="integer"):
        CifarSplit(images, np.zeros(3), names)
    with pytest.raises(CifarFormatError, match="uint8"):
        CifarArrays(images.astype(np.float32), np.zeros(3, np.int64))


def test_writer_checks_its_input(tmp_path):
    images = np.zeros((6, 32, 32, 3), np.uint8)
    arrays = CifarArrays(images, np.zeros(6, np.int64))
    with pytest.raises(ValueError, match="coarse_labels is required for CIFAR-100"):
        write_cifar(tmp_path, "cifar100", "binary", arrays, arrays)
    with pytest.raises(CifarFormatError, match="outside 0..9"):
        write_cifar(tmp_path, "cifar10", "binary", CifarArrays(images, np.full(6, 10)), arrays)
    small = CifarArrays(images[:4], np.zeros(4, np.int64))
    with pytest.raises(ValueError, match="at least 5 images"):
        write_cifar(tmp_path, "cifar10", "python", small, arrays)


# --- the train/validation split ---------------------------------------------------------

def test_split_is_stratified_exact_and_reproducible():
    labels = np.random.default_rng(0).permutation(np.repeat([0, 1, 2], [30, 20, 10]))
    train, val = train_val_indices(labels, val_size=12, seed=7)
    assert np.bincount(labels[val]).tolist() == [6, 4, 2]
    assert np.bincount(labels[train]).tolist() == [24, 16, 8]
    assert np.array_equal(np.sort(np.concatenate([train, val])), np.arange(60))
    assert np.all(np.diff(train) > 0) and np.all(np.diff(val) > 0)
    again = train_val_indices(labels, val_size=12, seed=7)
    assert np.array_equal(again[0], train) and np.array_equal(again[1], val)
    other = train_val_indices(labels, val_size=12, seed=8)
    assert not np.array_equal(other[1], val)


def test_split_rounds_by_largest_remainder():
    labels = np.repeat([0, 1, 2], [5, 5, 6])
    _, val = train_val_indices(labels, val_size=4, seed=0)
    # Quotas 1.25, 1.25, 1.5: the remainder goes to the largest fraction (class 2).
    assert np.bincount(labels[val], minlength=3).tolist() == [1, 1, 2]
    labels = np.repeat([0, 1, 2], 5)
    _, val = train_val_indices(labels, val_size=4, seed=0)
    assert np.bincount(labels[val], minlength=3).tolist() == [2, 1, 1]  # ties: lower class


def test_paper_split_is_45k_5k_with_500_per_class():
    labels = np.tile(np.arange(10), 5000)
    train, val = train_val_indices(labels)
    assert (len(train), len(val)) == (45000, 5000)
    assert np.bincount(labels[val]).tolist() == [500] * 10


def test_held_out_subset_keeps_images_with_their_labels(tmp_path):
    write_fake_cifar(tmp_path, "cifar10", "binary", images_per_batch=20)
    full = load_cifar(tmp_path, "cifar10", "train")
    train_idx, val_idx = train_val_indices(full.labels, val_size=10, seed=1)
    train, val = full.subset(train_idx), full.subset(val_idx)
    assert (len(train), len(val)) == (90, 10)
    np.testing.assert_array_equal(val.images, full.images[val_idx])
    np.testing.assert_array_equal(val.labels, full.labels[val_idx])
    assert np.bincount(val.labels, minlength=10).tolist() == [1] * 10
    assert val.class_names == full.class_names
    for bad in (0, 100):
        with pytest.raises(ValueError, match="val_size must be between 1 and 99"):
            train_val_indices(full.labels, val_size=bad)
