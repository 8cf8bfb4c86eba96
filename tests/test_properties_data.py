"""Property tests of every reader of a data file the project did not just write itself.

Generated content is written to a real file (a fresh folder per example: Hypothesis reuses
function-scoped fixtures) and read; any input must end in a result of the right type or in one
line naming the file (a ``ProjectError``, usually ``DatasetError``; for an image, the
``UnreadableImage`` reason the build files under the image's path), never a traceback, a hang,
unbounded memory or a silently wrong value. The examples that once failed are pinned at the
end as regular tests.
"""

from __future__ import annotations

import io
import json
import re
import struct
import tempfile
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import mxnet as mx
import numpy as np
import pytest
from conftest import make_ilsvrc_tree, write_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from pyimagesearch.config import load_config
from pyimagesearch.data.dataset import (
    identity_digest,
    load_mean,
    load_mean_image,
    manifest_checksum,
    manifest_problem,
    manifest_text,
    read_manifest,
)
from pyimagesearch.data.images import (
    StoredImage,
    UnreadableImage,
    decode_image,
    prepare_stored_image,
)
from pyimagesearch.data.records.format import RecordWriter, pack_header, read_index
from pyimagesearch.data.records.lists import ListEntry, read_list, unsafe_path_reason, write_list
from pyimagesearch.data.records.verify import VerifyResult, verify_split
from pyimagesearch.data.sources.imagenethelper import ImageNetHelper
from pyimagesearch.errors import DatasetError, ProjectError

# Bounded so that all of them together take well under a minute on a busy 2-core machine.
PROPERTY = settings(max_examples=100, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@contextmanager
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="properties-") as folder:
        yield Path(folder)


def refused_or(read: Callable[[], Any], *paths: Path) -> Any:
    """``read()``'s result, or None when it refused in one line naming one of ``paths``;
    any other exception fails the property."""
    try:
        return read()
    except ProjectError as exc:
        text = str(exc)
        assert any(str(path) in text for path in paths) and "\n" not in text, text
        return None


def is_integer(word: str) -> bool:
    """Written as the lists and the devkit write whole numbers: ASCII digits."""
    return word.isascii() and word.lstrip("+-").isdigit()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=16)


def damaged(data: bytes) -> st.SearchStrategy[bytes]:
    """``data`` cut, with bytes changed, or with bytes added."""
    size = len(data)
    cut = st.integers(0, size).map(lambda end: data[:end])
    flipped = st.lists(st.tuples(st.integers(0, size - 1), st.integers(0, 255)), min_size=1,
                       max_size=4).map(lambda changes: _changed(data, changes))
    added = st.tuples(st.integers(0, size), st.binary(min_size=1, max_size=16)).map(
        lambda insert: data[:insert[0]] + insert[1] + data[insert[0]:])
    return cut | flipped | added


def _changed(data: bytes, changes: list[tuple[int, int]]) -> bytes:
    array = bytearray(data)
    for position, value in changes:
        array[position] = value
    return bytes(array)


# --- dataset.py: the manifest, the mean, the per-pixel mean ---------------------------------
def valid_manifest() -> dict[str, Any]:
    """A manifest as a build writes it (two classes, a skipped file per split)."""
    digest = "ab" * 32

    def split(written: int) -> dict[str, Any]:
        return {"listed": written + 1, "written": written, "count": written,
                "skipped": [{"path": "a/b.jpg", "reason": "empty file"}], "seconds": 0.5,
                "class_counts": [written - 1, 1], "rec": "x.rec", "idx": "x.idx",
                "rec_bytes": 100, "rec_sha256": digest, "idx_bytes": 10, "idx_sha256": digest}

    manifest = {
        "format": 2, "builder": "folders", "config": "c.py", "created": "2026-01-01T00:00:00",
        "build_seconds": 1.5, "label_order": "sorted", "num_classes": 2,
        "classes": [{"label": 0, "name": "apple"}, {"label": 1, "name": "mango"}],
        "resize": 32, "encoding": "jpeg", "quality": 95, "input_size": 28,
        "mean": {"R": 120.5, "G": 110.25, "B": 100.0}, "mean_file": "mean.json",
        "mean_sha256": digest, "mean_image_file": None, "mean_image_sha256": None,
        "splits": {"train": split(5), "val": split(3), "test": split(3)},
        "build": {"image_root": "/data"}, "sources": {}, "tools": {"python": "3.11"}}
    manifest["identity"] = identity_digest(manifest)
    manifest["checksum"] = manifest_checksum(manifest)
    return manifest


@st.composite
def edited(draw: st.DrawFn, manifest: dict[str, Any]) -> dict[str, Any]:
    """``manifest`` with one field, at any depth, removed or replaced by any JSON value."""
    copy = json.loads(json.dumps(manifest))
    node = copy
    while True:
        keys = list(node) if isinstance(node, dict) else list(range(len(node)))
        key = draw(st.sampled_from(keys))
        child = node[key]
        if isinstance(child, (dict, list)) and child and draw(st.booleans()):
            node = child
            continue
        if isinstance(node, dict) and draw(st.booleans()):
            del node[key]
        else:
            node[key] = draw(json_values)
        return copy


def test_the_valid_manifest_reads(tmp_path):
    path = tmp_path / "manifest.json"
    path.write_text(manifest_text(valid_manifest()))
    assert read_manifest(path)["num_classes"] == 2


@PROPERTY
@given(st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()))
def test_any_bytes_as_a_manifest(data):
    with scratch() as folder:
        path = folder / "manifest.json"
        path.write_bytes(data)
        manifest = refused_or(lambda: read_manifest(path), path)
        assert manifest is None or manifest_problem(manifest) is None


@PROPERTY
@given(edited(valid_manifest()))
def test_a_manifest_edited_anywhere_is_refused(manifest):
    original = valid_manifest()
    with scratch() as folder:
        path = folder / "manifest.json"
        path.write_text(manifest_text(manifest))
        read = refused_or(lambda: read_manifest(path), path)
    unchanged = {k: v for k, v in manifest.items() if k != "checksum"} == \
        {k: v for k, v in original.items() if k != "checksum"}
    if read is not None:  # only a manifest as written, or one whose checksum was dropped
        assert unchanged, manifest


@PROPERTY
@given(edited(valid_manifest()))
def test_a_manifest_edited_and_resealed_is_consistent_or_refused(manifest):
    # An edit may break what the identity hashes: then the reader must say so.
    with suppress(KeyError, TypeError, AttributeError):
        manifest["identity"] = identity_digest(manifest)
    manifest["checksum"] = manifest_checksum(manifest)
    with scratch() as folder:
        path = folder / "manifest.json"
        path.write_text(manifest_text(manifest))
        read = refused_or(lambda: read_manifest(path), path)
    if read is not None:
        assert read["num_classes"] == len(read["classes"])
        for entry in (read["splits"][name] for name in ("train", "val", "test")):
            assert entry["listed"] == entry["written"] + len(entry["skipped"])
            assert entry["count"] == entry["written"] == sum(entry["class_counts"])


@PROPERTY
@given(st.binary(max_size=100) | json_values.map(lambda v: json.dumps(v).encode())
       | st.fixed_dictionaries({key: json_values | st.floats() | st.sampled_from(
           [10 ** 400, -(10 ** 400), "1"]) for key in "RGB"}).map(lambda v: json.dumps(v).encode()))
def test_any_bytes_as_a_mean_file(data):
    with scratch() as folder:
        path = folder / "mean.json"
        path.write_bytes(data)
        mean = refused_or(lambda: load_mean(path), path)
    if mean is not None:
        assert set(mean) == {"R", "G", "B"}
        assert all(isinstance(v, float) and np.isfinite(v) for v in mean.values())


def mean_image_bytes(mean: np.ndarray) -> bytes:
    with scratch() as folder:
        mx.nd.save(str(folder / "m.nd"), {"mean_img": mx.nd.array(mean, dtype="float32")})
        return (folder / "m.nd").read_bytes()


VALID_MEAN_IMAGE = mean_image_bytes(np.arange(3 * 4 * 5, dtype=np.float32).reshape(3, 4, 5))


@PROPERTY
@given(st.integers(1, 6), st.integers(1, 6), st.integers(0, 2 ** 32 - 1))
def test_a_per_pixel_mean_reads_as_mxnet_wrote_it(height, width, seed):
    mean = np.random.RandomState(seed).uniform(-300, 300, (3, height, width)).astype(np.float32)
    with scratch() as folder:
        path = folder / "mean.nd"
        path.write_bytes(mean_image_bytes(mean))
        np.testing.assert_array_equal(load_mean_image(path), mean)
        np.testing.assert_array_equal(mx.nd.load(str(path))["mean_img"].asnumpy(), mean)


@PROPERTY
@given(damaged(VALID_MEAN_IMAGE) | st.binary(max_size=200))
def test_any_bytes_as_a_per_pixel_mean(data):
    with scratch() as folder:
        path = folder / "mean.nd"
        path.write_bytes(data)
        mean = refused_or(lambda: load_mean_image(path), path)
    if mean is not None:
        assert mean.dtype == np.float32 and mean.ndim == 3 and mean.shape[0] == 3
        assert np.isfinite(mean).all()


# --- records/lists.py: .lst files ------------------------------------------------------------
# Mostly what a list holds, sometimes what only looks like it.
odd_numbers = st.sampled_from(["1_0", "\u0663", "+3", " 4 ", "3.000000", "1e3", "0x10", "nan",
                               "-0", "", "1e30", "18446744073709551617", "3.5"])
list_numbers = st.integers(0, 9).map(str) | st.integers(0, 9).map(str) | odd_numbers \
    | st.floats().map(repr) | st.text(max_size=4)
list_paths = st.one_of(
    st.sampled_from(["a.jpg", "b/c.png", "d.JPEG"]),
    st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12),
    st.sampled_from(["/etc/passwd", "../x.jpg", "a\\b.jpg", "C:/x.jpg", "a\0b", "a\x0cb.jpg",
                     "a\x85b.jpg", "a\u2028b.jpg", "a\rb.jpg", " a.jpg", "a.jpg "]))
list_lines = st.tuples(list_numbers, list_numbers, list_paths).map("\t".join) \
    | st.tuples(list_numbers, list_numbers, list_paths).map("\t".join) | st.text(max_size=20)


@PROPERTY
@given(st.lists(list_lines, max_size=6), st.sampled_from(["\n", "\r\n"]),
       st.none() | st.integers(1, 2 ** 30))
def test_any_lines_as_a_list_file(lines, newline, num_classes):
    with scratch() as folder:
        path = folder / "x.lst"
        path.write_bytes(newline.join(lines).encode("utf-8", "surrogatepass"))
        entries = refused_or(lambda: read_list(path, num_classes), path)
    if entries is None:
        return
    written = [line.rstrip("\r").split("\t") for line in newline.join(lines).split("\n")]
    while written and not "".join(written[-1]).strip():
        written.pop()
    assert len(entries) == len(written)  # one entry a line, lines ending at "\n" only
    for entry, (index, label, image) in zip(entries, written):
        assert is_integer(index.strip()) and int(index) == entry.index
        assert label.strip().replace(".", "", 1).isascii() and float(label) == entry.label
        assert image.strip() == entry.path and unsafe_path_reason(entry.path) is None
        assert num_classes is None or entry.label < num_classes
    assert len({e.index for e in entries}) == len({e.path for e in entries}) == len(entries)


@PROPERTY
@given(st.binary(max_size=200))
def test_any_bytes_as_a_list_file(data):
    with scratch() as folder:
        path = folder / "x.lst"
        path.write_bytes(data)
        refused_or(lambda: read_list(path), path)


@PROPERTY
@given(st.lists(st.tuples(st.integers(0, 2 ** 63), st.integers(0, 2 ** 40), list_paths),
                min_size=1, max_size=6, unique_by=(lambda e: e[0], lambda e: e[2])))
def test_a_list_written_is_read_back_as_written_or_refused_when_written(items):
    entries = [ListEntry(index, label, path) for index, label, path in items]
    with scratch() as folder:
        path = folder / "x.lst"
        try:
            write_list(path, entries)
        except ValueError:
            return  # refused when written: the writer names what a line cannot hold
        read = refused_or(lambda: read_list(path), path)
    assert read is None or read == entries


# --- records/format.py and verify.py: the .idx and the records --------------------------------
idx_lines = st.lists(st.tuples(st.integers(0, 10 ** 19), st.integers(0, 10 ** 19),
                               st.sampled_from(["\t", " ", "\t\t", ","])),
                     max_size=6).map(lambda rows: "".join(f"{a}{sep}{b}\n" for a, b, sep in rows))


def test_an_index_that_is_missing_or_a_folder_is_one_line(tmp_path):
    for path in (tmp_path / "absent.idx", tmp_path):
        assert refused_or(lambda: read_index(str(path)), path) is None  # noqa: B023


@PROPERTY
@given(idx_lines.map(str.encode) | st.binary(max_size=100))
def test_any_bytes_as_an_index(data):
    with scratch() as folder:
        path = folder / "x.idx"
        path.write_bytes(data)
        found = refused_or(lambda: read_index(str(path)), path)
    if found is not None:
        keys, offsets = found
        rows = [line.split(b"\t") for line in data.split(b"\n") if line]
        assert keys.tolist() == [int(key) for key, _ in rows]
        assert offsets.tolist() == [int(offset) for _, offset in rows]


@PROPERTY
@given(st.lists(st.binary(max_size=40), min_size=1, max_size=5),
       st.sampled_from(["rec", "idx"]), st.booleans(), st.data())
def test_any_damage_to_records_is_found_or_they_read(payloads, which, decode, data):
    with scratch() as folder:
        rec, idx = folder / "x.rec", folder / "x.idx"
        with RecordWriter(rec, idx) as writer:
            for key, payload in enumerate(payloads):
                writer.write(key, pack_header(key % 3, key) + payload)
        target = rec if which == "rec" else idx
        target.write_bytes(data.draw(damaged(target.read_bytes())))
        # Either file may be to blame (a cut .rec, or an .idx that points past it).
        result = refused_or(lambda: verify_split(rec, idx, len(payloads), 3, decode=decode),
                            rec, idx)
        if result is None:
            return
        assert isinstance(result, VerifyResult) and result.count == len(payloads)
        assert result.label_counts == tuple(np.bincount(np.arange(len(payloads)) % 3,
                                                        minlength=3))


# --- sources/imagenethelper.py: the devkit files -----------------------------------------------
@pytest.fixture(scope="module")
def devkit_config(tmp_path_factory):
    root = tmp_path_factory.mktemp("devkit")
    tree = make_ilsvrc_tree(root / "ILSVRC2015")
    return load_config(str(write_config(root / "c.py", tree.base, root / "out")))


DEVKIT_FILES = ("WORD_IDS", "TRAIN_LIST", "VAL_LIST", "VAL_LABELS", "VAL_BLACKLIST")
devkit_tokens = st.one_of(
    st.integers(-1, 7).map(str), st.sampled_from(
        ["n02119789", "n0211978", "n\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667",
         "1_0", "\u0663", "+1", "01", "n02100735/../x", "n01440764/n01440764_1",
         "ILSVRC2012_val_00000009", "a/b", "\ufeff"]),
    st.text(max_size=4))
LINE_BREAKS = ("\x85", "\u2028", "\x0c", "\x0b", "\r", "\x1e", "\n\n", "\n \n")


@st.composite
def devkit_edits(draw: st.DrawFn, text: str) -> str:
    """The devkit file ``text`` with a few lines edited: a word replaced, a line doubled or
    removed, two lines joined by another line break, a byte-order mark put first."""
    lines = text.split("\n")[:-1]
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, max(len(lines) - 1, 0)))
        edit = draw(st.sampled_from(["word", "double", "drop", "join", "mark"]))
        if edit == "word" and lines:
            words = lines[at].split(" ")
            words[draw(st.integers(0, len(words) - 1))] = draw(devkit_tokens)
            lines[at] = " ".join(words)
        elif edit == "double" and lines:
            lines.insert(at, lines[at])
        elif edit == "drop" and lines:
            del lines[at]
        elif edit == "join" and at + 1 < len(lines):
            lines[at:at + 2] = [lines[at] + draw(st.sampled_from(LINE_BREAKS)) + lines[at + 1]]
        elif edit == "mark":
            lines.insert(0, "\ufeff" + (lines.pop(0) if lines else ""))
    return "".join(f"{line}\n" for line in lines)


def devkit_lines(data: bytes) -> list[list[str]]:
    """The words of a devkit file's lines as MXNet's tools and the devkit read them: lines
    end at "\n" (or "\r\n"), nothing else; trailing blank lines do not count."""
    lines = [line.rstrip("\r").split() for line in data.decode("utf-8-sig").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return lines


@PROPERTY
@given(st.sampled_from(DEVKIT_FILES), st.data())
def test_any_devkit_file_is_read_as_written_or_refused(devkit_config, field, data):
    text = Path(getattr(devkit_config, field)).read_text(encoding="utf-8")
    edited_text = data.draw(devkit_edits(text))
    encoding = data.draw(st.sampled_from(["utf-8", "utf-8", "utf-16"]))
    with scratch() as folder:
        path = folder / f"{field}.txt"
        path.write_bytes(edited_text.encode(encoding))
        config = devkit_config.replace(**{field: str(path)})
        read = {
            "WORD_IDS": lambda: [(c.wnid, c.class_id) for c in ImageNetHelper(config).classes],
            "TRAIN_LIST": lambda: ImageNetHelper(config).build_training_set()[0],
            "VAL_LIST": lambda: ImageNetHelper(config).read_validation_names(),
            "VAL_LABELS": lambda: ImageNetHelper(config).read_validation_labels(),
            "VAL_BLACKLIST": lambda: sorted(ImageNetHelper(config).read_blacklist(6)),
        }[field]
        result = refused_or(read, path)
    if result is None:
        return
    lines = devkit_lines(edited_text.encode(encoding))  # accepted: UTF-8, and as written
    if field == "WORD_IDS":
        assert all(is_integer(words[1]) for words in lines)
        assert sorted(result) == sorted((words[0], int(words[1])) for words in lines)
    elif field == "TRAIN_LIST":
        assert result == [f"train/{words[0]}.JPEG" for words in lines]
    elif field == "VAL_LIST":
        assert result == [words[0] for words in lines]
    else:
        assert all(len(words) == 1 and is_integer(words[0]) for words in lines)
        assert len(result) == len(lines)
        if field == "VAL_BLACKLIST":
            assert result == sorted(int(words[0]) for words in lines)


# --- images.py: every mode and sample type Pillow opens -----------------------------------------
# (mode, formats Pillow writes it to and reads it back from, the range of its samples)
IMAGE_MODES = {
    "1": (("PNG", "BMP", "TIFF", "PPM"), (0, 1)),
    "L": (("PNG", "BMP", "TIFF", "PPM", "GIF", "JPEG", "TGA"), (0, 255)),
    "P": (("PNG", "BMP", "TIFF", "GIF"), (0, 255)),
    "RGB": (("PNG", "BMP", "TIFF", "PPM", "JPEG", "WEBP", "TGA"), (0, 255)),
    "RGBA": (("PNG", "TIFF", "WEBP", "TGA"), (0, 255)),
    "CMYK": (("TIFF", "JPEG"), (0, 255)),
    "YCbCr": (("TIFF",), (0, 255)),
    "LAB": (("TIFF",), (0, 255)),
    "LA": (("PNG", "TIFF"), (0, 255)),
    "PA": (("TIFF",), (0, 255)),
    "I;16": (("PNG", "TIFF"), (0, 65535)),
    "I;16B": (("TIFF",), (0, 65535)),
    "I": (("TIFF", "PPM"), (-2 ** 31, 2 ** 31 - 1)),
    "F": (("TIFF",), (-1e6, 1e6)),
}
LOSSY = ("JPEG", "WEBP")


@st.composite
def images(draw: st.DrawFn) -> tuple[str, str, np.ndarray, bytes]:
    mode = draw(st.sampled_from(sorted(IMAGE_MODES)))
    formats, (low, high) = IMAGE_MODES[mode]
    fmt = draw(st.sampled_from(formats))
    width, height = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    if mode == "I" and fmt == "PPM":
        low, high = 0, 65535
    if mode == "F":
        low, high = draw(st.sampled_from([(0.0, 1.0), (0.0, 255.0), (0.0, 65535.0), (low, high)]))
    channels = len(Image.new(mode, (1, 1)).getbands())
    rng = np.random.RandomState(draw(st.integers(0, 2 ** 32 - 1)))
    samples = rng.uniform(low, high, (height, width, channels))
    image = Image.new(mode, (width, height))
    if channels == 1:
        values = samples[:, :, 0] if mode == "F" else np.rint(samples[:, :, 0]).astype(np.int64)
        image.putdata(values.ravel().tolist())
    else:
        image.putdata([tuple(int(v) for v in pixel)
                       for pixel in np.rint(samples).astype(np.int64).reshape(-1, channels)])
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return mode, fmt, np.asarray(image), buffer.getvalue()


def expected_levels(mode: str, values: np.ndarray) -> np.ndarray:
    """What a faithful conversion gives for a gray image of wide samples (docs/data.md)."""
    values = values.astype(np.float64)
    low, high = values.min(), values.max()
    if mode.startswith("I;16"):
        black, white = 0.0, 65535.0
    else:
        whites = [w for w in ((1.0, 255.0, 65535.0) if mode == "F" else (65535.0,))
                  if low >= 0 and high <= w]
        black, white = (0.0, whites[0]) if whites else (low, high)
    scale = 255.0 / (white - black) if white > black else 0.0
    return np.clip(np.floor((values - black) * scale + 0.5), 0, 255).astype(np.uint8)


@PROPERTY
@given(images())
def test_every_image_mode_is_converted_faithfully(image):
    mode, fmt, pixels, data = image
    with scratch() as folder:
        path = folder / f"image.{fmt.lower()}"
        path.write_bytes(data)
        stored = prepare_stored_image(path, 8, 95, encoding="png", with_pixels=True)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            opened = Image.open(path)
            opened.load()
    rgb = decode_image(data)
    assert rgb.shape == (pixels.shape[0], pixels.shape[1], 3) and rgb.dtype == np.uint8
    assert stored.pixels.shape[2] == 3 and min(stored.pixels.shape[:2]) == 8
    if opened.mode in ("I", "F") or opened.mode.startswith("I;16"):
        np.testing.assert_array_equal(rgb[:, :, 0], expected_levels(opened.mode,
                                                                    np.asarray(opened)))
    elif fmt not in LOSSY:
        np.testing.assert_array_equal(rgb, np.asarray(opened.convert("RGB")))


# TIFF sample types Pillow reads but does not write: (bits, sample format 1 unsigned, 2 signed,
# 3 float) -> little-endian dtype ("12": packed, most significant bit first).
SAMPLE_TYPES = {(8, 2): "<i1", (12, 1): "12", (16, 2): "<i2", (32, 1): "<u4", (32, 2): "<i4",
                (32, 3): "<f4", (8, 1): "<u1", (16, 1): "<u2"}


def raw_tiff(values: np.ndarray, bits: int, sample_format: int) -> bytes:
    """A one-channel, uncompressed, little-endian TIFF holding ``values`` as they are."""
    height, width = values.shape
    if bits == 12:
        rows = []
        for row in values:
            text = "".join(format(int(v), "012b") for v in row)
            text += "0" * (-len(text) % 8)
            rows.append(int(text, 2).to_bytes(len(text) // 8, "big"))
        data = b"".join(rows)
    else:
        data = values.astype(SAMPLE_TYPES[bits, sample_format]).tobytes()
    tags = [(256, 4, width), (257, 4, height), (258, 3, bits), (259, 3, 1), (262, 3, 1),
            (273, 4, 8 + 2 + 12 * 10 + 4), (277, 3, 1), (278, 4, height),
            (279, 4, len(data)), (339, 3, sample_format)]
    entries = b"".join(struct.pack("<HHII", tag, kind, 1, value) for tag, kind, value in tags)
    return b"II*\x00" + struct.pack("<IH", 8, len(tags)) + entries + b"\0\0\0\0" + data


@st.composite
def sample_type_images(draw: st.DrawFn) -> tuple[bytes, np.ndarray]:
    """A TIFF of any sample type and the 8-bit levels a faithful conversion gives it."""
    bits, sample_format = draw(st.sampled_from(sorted(SAMPLE_TYPES)))
    shape = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    rng = np.random.RandomState(draw(st.integers(0, 2 ** 32 - 1)))
    if sample_format == 3:
        low, high = draw(st.sampled_from([(0.0, 1.0), (0.0, 255.0), (-50.0, 1e6)]))
        values = rng.uniform(low, high, shape)
    else:
        kind = np.iinfo(SAMPLE_TYPES[bits, sample_format]) if bits != 12 else None
        low, high = (0, 4095) if kind is None else (kind.min, kind.max)
        values = rng.randint(low, high, shape, dtype=np.int64) if draw(st.booleans()) \
            else np.full(shape, draw(st.sampled_from([low, high, 0])), np.int64)
    if (bits, sample_format) in ((8, 1), (8, 2)):
        expected = np.asarray(values + (128 if sample_format == 2 else 0), np.uint8)
    elif bits <= 16 and sample_format == 1:  # a nominal white: 4095 or 65535
        expected = np.floor(values * 255.0 / (2 ** bits - 1) + 0.5).astype(np.uint8)
    else:
        expected = expected_levels("F" if sample_format == 3 else "I",
                                   values.astype(np.float32 if sample_format == 3 else np.int64))
    return raw_tiff(values, bits, sample_format), expected


@PROPERTY
@given(sample_type_images())
def test_every_sample_type_is_scaled_not_clipped(image):
    data, expected = image
    np.testing.assert_array_equal(decode_image(data)[:, :, 0], expected)


IMAGE_SAMPLES = [image for image in (
    b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"GIF89a", b"II*\x00", b"MM\x00*", b"BM",
    b"RIFF\x00\x00\x00\x00WEBPVP8 ", b"P5\n2 2\n255\n", b"P6\n1 1\n65535\n")]


@PROPERTY
@given(images().flatmap(lambda image: damaged(image[3]))
       | st.tuples(st.sampled_from(IMAGE_SAMPLES), st.binary(max_size=64)).map(
           lambda parts: parts[0] + parts[1]))
def test_any_damaged_image_is_stored_or_skipped_with_a_reason(data):
    with scratch() as folder:
        path = folder / "image.jpg"
        path.write_bytes(data)
        try:
            stored = prepare_stored_image(path, 8, 95)
        except UnreadableImage as exc:
            assert str(exc) and "\n" not in str(exc)
            return
    assert isinstance(stored, StoredImage) and stored.data


# --- examples that once failed (found by the properties above, or while writing them) --------
def test_pinned_a_per_pixel_mean_whose_array_name_is_damaged(tmp_path):
    # mx.nd.load failed with a UnicodeDecodeError traceback ("\x80ean_img").
    path = tmp_path / "mean.nd"
    path.write_bytes(VALID_MEAN_IMAGE.replace(b"mean_img", b"\x80ean_img"))
    with pytest.raises(DatasetError, match="not one array named 'mean_img'"):
        load_mean_image(path)


def test_pinned_a_per_pixel_mean_that_declares_a_huge_array(tmp_path):
    # mx.nd.load tried to allocate it: killed for memory, or hung.
    head = bytearray(VALID_MEAN_IMAGE)
    struct.pack_into("<qq", head, 48, 1 << 20, 1 << 20)
    path = tmp_path / "mean.nd"
    path.write_bytes(bytes(head))
    with pytest.raises(DatasetError, match="another layout, type or shape"):
        load_mean_image(path)


def test_pinned_a_mean_file_holding_an_integer_beyond_any_float(tmp_path):
    # math.isfinite(10 ** 400) raised an OverflowError traceback.
    path = tmp_path / "mean.json"
    path.write_text(json.dumps({"R": 10 ** 400, "G": 1.0, "B": 2.0}))
    with pytest.raises(DatasetError, match="mean file lacks a finite number for 'R'"):
        load_mean(path)


def test_pinned_list_lines_that_a_list_cannot_hold(tmp_path):
    # " a.jpg" was written and read back as "a.jpg"; "1_0" was read as index 10.
    with pytest.raises(ValueError, match="begins or ends with white space"):
        write_list(tmp_path / "x.lst", [ListEntry(0, 0, " a.jpg")])
    path = tmp_path / "y.lst"
    path.write_text("1_0\t0\ta.jpg\n")
    with pytest.raises(DatasetError, match=r"line 1: index is not an integer: '1_0'"):
        read_list(path)


@pytest.mark.parametrize(("field", "text"), [
    ("VAL_LABELS", "2\x853\n1\n2\n3\n1\n"),  # read as six labels, misaligning the rest
    ("WORD_IDS", "n02119789 1 class_0\x85n02100735 2 class_1\nn01440764 3 class_2\n"),
])
def test_pinned_a_devkit_line_holding_another_line_break(devkit_config, tmp_path, field,
                                                          text):
    path = tmp_path / f"{field}.txt"
    path.write_text(text, encoding="utf-8")
    config = devkit_config.replace(**{field: str(path)})
    with pytest.raises(DatasetError, match=f"^{re.escape(str(path))}"):
        ImageNetHelper(config).read_validation_labels()


@pytest.mark.parametrize(("bits", "sample_format", "values", "levels"), [
    (32, 3, [0.0, 0.25, 0.5488135, 1.0], [0, 64, 140, 255]),  # floats in 0..1 were black
    (12, 1, [0, 1365, 2730, 4095], [0, 85, 170, 255]),        # 12-bit: 16 at most
    (16, 2, [-32768, -1, 0, 32767], [0, 127, 128, 255]),     # signed: negatives black
    (32, 1, [0, 1, 2 ** 31, 2 ** 32 - 1], [0, 0, 128, 255]),  # read as signed: black
    (32, 2, [-2 ** 31, 0, 5, 2 ** 31 - 1], [0, 128, 128, 255]),
    (8, 2, [-128, -1, 0, 127], [0, 127, 128, 255]),          # read as unsigned
])
def test_pinned_sample_types_scaled_not_clipped(bits, sample_format, values, levels):
    data = raw_tiff(np.array([values]), bits, sample_format)
    assert decode_image(data)[0, :, 0].tolist() == levels


def test_pinned_float_samples_that_are_not_numbers_are_refused_by_name():
    data = raw_tiff(np.array([[0.0, np.nan, 1.0]]), 32, 3)
    with pytest.raises(UnreadableImage, match="^float samples that are NaN or infinite$"):
        decode_image(data)
