"""Check a ``.rec``/``.idx`` pair before MXNet's C++ iterator reads it.

``mx.io.ImageRecordIter`` trusts its files: on a truncated ``.rec`` it aborts the whole
process (uncatchable from Python), a stale or short ``.idx`` gives ``bad_alloc`` or a
silent count mismatch, and ``SoftmaxCrossEntropyLoss`` maps an out-of-range label onto a
valid class without a word. :func:`verify_split` walks both files first and raises
:class:`RecordError` naming the file, the ``.idx`` line, the record id and what is wrong:

* every ``.idx`` line is ``<id><TAB><offset>``; ids are unique; offsets strictly
  increase, are multiples of 4 and lie inside the ``.rec``;
* at every offset a RecordIO record starts (magic ``0xced7230a``, then
  ``lrecord = cflag << 29 | length``, data padded to 4 bytes; multi-part records, which
  MXNet writes when a payload holds the magic word, are followed part by part) and fits
  in the file;
* the records tile the ``.rec`` exactly (no bytes outside the index, none overlapping);
* each record's ``IRHeader`` (``flag, label, id, id2``; struct ``IfQQ``) has the id the
  ``.idx`` gives it and a whole label in ``[0, num_classes)`` (``flag > 0``: every label
  of the array);
* the count, and the file sizes (and with ``check_hash`` the SHA-256s), match the
  manifest; with ``decode`` every image decodes with OpenCV, as the iterator decodes it,
  to 3 channels and at least ``min_side`` pixels on its shorter side.

Speed: the walk reads the headers through ``mmap`` with NumPy gathers, no per-record
Python (only the rare multi-part or label-array records take a Python path), so it runs
at every train and test start. Measured on 100,000 records: 0.09 s for 2 KB records and
0.4 s for ImageNet-sized ones (110 KB, an 11 GB file) from the page cache; 2.3-2.5 s for
the latter from a cold virtual disk (one 4 KB page per record, read by 16 threads). For
ImageNet's 1.28 M training records that is about 5 s warm and 30 s cold. Hashing and
decoding read every byte and are for the ``verify_records.py`` command.

:class:`RecordError` is a :class:`~pyimagesearch.utils.imagenethelper.DatasetError`, like
every other "a data file is wrong" error of the project: it carries ``path`` (the file to
blame), ``line`` (the ``.idx`` line, when there is one), ``record_id`` and ``kind``.
"""

from __future__ import annotations

import logging
import mmap
import os
import re
import struct
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pyimagesearch.config import Settings
from pyimagesearch.data.dataset import SPLITS, DatasetError, split_records
from pyimagesearch.data.records import (
    IR_FORMAT,
    IR_SIZE,
    MAX_PART_LENGTH,
    RECORDIO_MAGIC,
    RecordFormatError,
    read_record_at,
)
from pyimagesearch.utils.files import sha256_file

logger = logging.getLogger(__name__)

_PREFETCH_MIN = 20_000      # records below which prefetching threads are not worth it
_PREFETCH_THREADS = 16
_IDX_LINE = re.compile(rb"\d{1,18}\t\d{1,18}")

# kind -> what it means, for people (docs/faults_data.md lists the same)
KINDS = {
    "missing": "a file is absent",
    "bad_idx_line": "an .idx line is not '<id><TAB><offset>'",
    "duplicate_id": "an id appears twice in the .idx",
    "offset_order": ".idx offsets do not increase",
    "misaligned_idx": "an .idx offset is not a multiple of 4",
    "truncated_rec": "the .rec ends inside a record",
    "stale_idx": "an .idx offset is not where a record starts (index from another build)",
    "short_idx": "the .idx lists fewer records than the manifest and the .rec hold",
    "unindexed_bytes": "the .rec holds bytes that no .idx line points at",
    "damaged_rec": "a multi-part record is broken",
    "short_record": "a record is too short to hold its IRHeader",
    "id_mismatch": "a record's header id differs from its .idx id",
    "label_not_integral": "a label is not a whole number",
    "label_range": "a label lies outside [0, NUM_CLASSES)",
    "count_mismatch": "the record count differs from the manifest's",
    "size_mismatch": "a file's size differs from the manifest's",
    "hash_mismatch": "a file's SHA-256 differs from the manifest's",
    "decode": "an image does not decode to 3 channels of the stored size",
}


class RecordError(DatasetError):
    """A ``.rec``/``.idx`` pair is damaged or does not fit its manifest.

    Attributes
    ----------
    kind : str
        One of :data:`KINDS`.
    path : str
        The file to blame (``.idx`` for index lines, ``.rec`` for records).
    line : int or None
        1-based line within ``path`` (set when ``path`` is the ``.idx``).
    idx_line : int or None
        1-based ``.idx`` line of the record involved, whichever file is blamed.
    record_id : int or None
        The record's id (the ``.idx`` key, which is the ``.lst`` index).
    """

    def __init__(self, kind: str, message: str, path: str | Path, line: int | None = None,
                 record_id: int | None = None, idx_line: int | None = None) -> None:
        self.kind = kind
        self.record_id = record_id
        self.idx_line = line if idx_line is None else idx_line
        super().__init__(message, path, line)


@dataclass(frozen=True)
class VerifyResult:
    """What :func:`verify_split` found in a sound ``.rec``/``.idx`` pair."""

    rec_path: str
    idx_path: str
    count: int
    rec_bytes: int
    idx_bytes: int
    label_counts: tuple[int, ...]   # records per label (flag-0 records)
    multipart: int                  # records MXNet split at a magic word
    decoded: int = 0                # images decoded (``decode=True``)
    smallest_side: int | None = None
    hashed: bool = False
    seconds: float = 0.0


# --- the .idx -------------------------------------------------------------------------------
def _index_is_well_formed(data: bytes) -> bool:
    """``data`` is ``(<digits>\t<digits>\n)*`` with 1-18 digits per field (vectorised)."""
    raw = np.frombuffer(data, np.uint8)
    digit = (raw >= ord("0")) & (raw <= ord("9"))
    separators = np.flatnonzero(~digit)
    kinds = raw[separators]
    widths = np.diff(separators, prepend=-1) - 1  # digits before each separator
    return bool(len(separators) % 2 == 0 and (kinds[0::2] == ord("\t")).all()
                and (kinds[1::2] == ord("\n")).all()
                and ((widths >= 1) & (widths <= 18)).all())


def _read_index(idx_path: str) -> tuple[np.ndarray, np.ndarray]:
    with open(idx_path, "rb") as handle:
        data = handle.read()
    if data and not data.endswith(b"\n"):
        data += b"\n"
    if not data:
        empty = np.zeros(0, np.int64)
        return empty, empty
    if not _index_is_well_formed(data):
        for number, line in enumerate(data.split(b"\n")[:-1], start=1):
            if not _IDX_LINE.fullmatch(line):
                text = line[:60].decode("ascii", "replace")
                raise RecordError("bad_idx_line", f"malformed index line {text!r}: expected "
                                  f"'<record id><TAB><offset>' (the .idx is damaged or is "
                                  f"not an MXNet index)", idx_path, number)
    values = np.fromstring(data.decode("ascii"), dtype=np.int64, sep=" ")
    keys, offsets = values[0::2], values[1::2]
    if len(keys) > 1:
        order = np.argsort(keys, kind="stable")
        repeated = np.flatnonzero(keys[order][1:] == keys[order][:-1])
        if repeated.size:
            # The earliest line that repeats an id, and where that id first appeared.
            second = order[repeated + 1]
            at = int(second.min())
            first = int(order[repeated[np.argmin(second)]])
            raise RecordError("duplicate_id", f"record id {keys[at]} appears again (first at "
                              f"line {first + 1}): the .idx is damaged", idx_path, at + 1,
                              int(keys[at]))
        backwards = np.flatnonzero(offsets[1:] <= offsets[:-1])
        if backwards.size:
            at = int(backwards[0]) + 1
            raise RecordError(
                "offset_order", f"record id {keys[at]}: offset {offsets[at]} does not come "
                f"after the previous line's {offsets[at - 1]}; offsets must increase (the "
                f".idx is damaged or belongs to another .rec)", idx_path, at + 1, int(keys[at]))
    return keys, offsets


# --- the walk -------------------------------------------------------------------------------
@contextmanager
def _mapped(path: str, size: int) -> Iterator[memoryview | bytes]:
    if size == 0:
        yield b""
        return
    with open(path, "rb") as handle:
        mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    if hasattr(mapped, "madvise") and hasattr(mmap, "MADV_RANDOM"):
        # One page per record is read; readahead would pull in the whole file.
        mapped.madvise(mmap.MADV_RANDOM)
    try:
        yield mapped
    finally:
        # A NumPy view may still be alive (an exception in flight holds it): GC closes it then.
        with suppress(BufferError):
            mapped.close()


def _prefetch(words: np.ndarray, positions: np.ndarray) -> None:
    """Touch the page of every record header from several threads.

    From a cold page cache the walk is one 4 KB read per record; NumPy releases the GIL in
    its gathers, so threads keep many reads in flight (measured: 100,000 records of 110 KB
    from a cold virtual disk, 8.8 s with one thread, 2.3-2.5 s with 16).
    """
    if len(positions) < _PREFETCH_MIN:
        return
    chunks = np.array_split(positions, _PREFETCH_THREADS * 4)
    with ThreadPoolExecutor(max_workers=_PREFETCH_THREADS) as pool:
        for _ in pool.map(words.take, chunks):
            pass


class _Walk:
    """Vectorised structure and header checks of one pair; see :func:`verify_split`."""

    def __init__(self, rec: str, idx: str, keys: np.ndarray, offsets: np.ndarray,
                 buffer: memoryview | bytes, size: int) -> None:
        self.rec, self.idx = rec, idx
        self.rec_name, self.idx_name = Path(rec).name, Path(idx).name
        self.keys, self.offsets, self.buffer, self.size = keys, offsets, buffer, size
        self.n = len(keys)

    # messages
    def where(self, i: int) -> str:
        return (f"record id {self.keys[i]} (line {i + 1} of {self.idx_name}, offset "
                f"{self.offsets[i]})")

    def error(self, kind: str, i: int, message: str, blame_idx: bool = False) -> RecordError:
        if blame_idx:
            return RecordError(kind, message, self.idx, i + 1, int(self.keys[i]))
        return RecordError(kind, message, self.rec, None, int(self.keys[i]), idx_line=i + 1)

    def run(self, num_classes: int | None, expected_count: int | None
            ) -> tuple[np.ndarray, np.ndarray, int]:
        """Raise the first problem in file order; return (label values, flags, multipart)."""
        n, size, offsets = self.n, self.size, self.offsets
        words = np.frombuffer(self.buffer, dtype="<u4", count=size // 4)

        def gather(selected: np.ndarray, word_offset: int, dtype: str = "<u4") -> np.ndarray:
            values = np.zeros(n, dtype)
            values[selected] = words[offsets[selected] // 4 + word_offset].view(dtype)
            return values

        misaligned = offsets % 4 != 0
        has_head = ~misaligned & (offsets + 8 <= size)
        at_head = np.flatnonzero(has_head)
        _prefetch(words, offsets[at_head] // 4)
        magic, word = gather(at_head, 0), gather(at_head, 1)
        no_magic = has_head & (magic != RECORDIO_MAGIC)
        started = has_head & ~no_magic
        cflag = word >> 29
        length = (word & MAX_PART_LENGTH).astype(np.int64)
        bad_cflag = started & (cflag > 1)
        single = started & (cflag == 0)
        end = offsets + 8 + ((length + 3) & ~3)
        truncated = single & (end > size)

        # Multi-part records (rare): walk their parts in Python.
        multi_error: dict[int, RecordFormatError] = {}
        heads: dict[int, bytes] = {}
        for i in np.flatnonzero(started & (cflag == 1)).tolist():
            try:
                heads[i], end[i], _ = read_record_at(self.buffer, int(offsets[i]))
            except RecordFormatError as exc:
                multi_error[i] = exc
        damaged = np.zeros(n, bool)
        damaged[list(multi_error)] = True
        in_heads = np.zeros(n, bool)
        in_heads[list(heads)] = True
        whole = (single & ~truncated) | in_heads
        previous_end = np.concatenate([[0], end[:-1]])
        out_of_place = whole & (offsets != previous_end)

        # IRHeader of every whole record (flag, label, id), from the record's first part;
        # multi-part records take theirs from the joined payload.
        first_length = np.where(single, length, 0)
        for i, payload in heads.items():
            first_length[i] = len(payload)
        short = whole & (first_length < IR_SIZE)
        readable = whole & ~short
        direct = np.flatnonzero(readable & single)
        flag = gather(direct, 2)
        label = gather(direct, 3, "<f4").astype(np.float64)
        header_id = gather(direct, 4).astype(np.uint64) | (
            gather(direct, 5).astype(np.uint64) << np.uint64(32))
        for i, payload in heads.items():
            if len(payload) >= IR_SIZE:
                flag[i], label[i], header_id[i], _ = struct.unpack_from(IR_FORMAT, payload)
        id_mismatch = readable & (header_id != self.keys.astype(np.uint64))
        plain = readable & (flag == 0)
        not_integral = plain & ~(np.isfinite(label) & (label == np.floor(label)))
        out_of_range = plain & ~not_integral & (label < 0)
        if num_classes is not None:
            out_of_range |= plain & ~not_integral & (label >= num_classes)
        array_problem = self._label_arrays(np.flatnonzero(readable & (flag > 0)), flag,
                                           first_length, heads, num_classes)

        checks = [
            (misaligned, self._misaligned), ((~misaligned) & ~has_head, self._beyond_end),
            (no_magic, self._no_magic), (bad_cflag, self._bad_cflag),
            (damaged, lambda i: self._damaged(i, multi_error[i])),
            (truncated, lambda i: self._truncated(i, int(end[i]))),
            (out_of_place, lambda i: self._out_of_place(i, int(previous_end[i]),
                                                        expected_count)),
            (short, lambda i: self._short(i, int(first_length[i]))),
            (id_mismatch, lambda i: self._id_mismatch(i, int(header_id[i]))),
            (not_integral, lambda i: self._label(i, "label_not_integral", float(label[i]),
                                                 num_classes)),
            (out_of_range, lambda i: self._label(i, "label_range", float(label[i]),
                                                 num_classes)),
            (array_problem[0], array_problem[1]),
        ]
        first, report = n, None
        for mask, describe in checks:  # the earliest record wins; ties: this order
            hits = np.flatnonzero(mask[:first])
            if hits.size:
                first, report = int(hits[0]), describe
        if report is not None:
            raise report(first)
        if n and int(end[-1]) != size:
            raise self._tail(int(end[-1]), expected_count)
        if n == 0 and size:
            raise RecordError("unindexed_bytes", f"{self.idx_name} is empty but "
                              f"{self.rec_name} holds {size} bytes", self.idx)
        return label[plain], flag, len(heads)

    def _label_arrays(self, candidates: np.ndarray, flag: np.ndarray,
                      first_length: np.ndarray, heads: dict[int, bytes],
                      num_classes: int | None) -> tuple[np.ndarray, Any]:
        """flag > 0: ``flag`` float32 labels follow the header; check each of them."""
        mask = np.zeros(self.n, bool)
        found: dict[int, RecordError] = {}
        for i in candidates.tolist():
            count = int(flag[i])
            if i in heads:
                raw = heads[i][IR_SIZE:IR_SIZE + 4 * count]
            else:
                start = int(self.offsets[i]) + 8 + IR_SIZE
                raw = bytes(self.buffer[start:min(start + 4 * count,
                                                  start - IR_SIZE + int(first_length[i]))])
            if len(raw) < 4 * count:
                found[i] = self.error("short_record", i, f"{self.where(i)} is too short for "
                                      f"the {count} labels its IRHeader announces")
                continue
            for position, value in enumerate(np.frombuffer(raw, "<f4").tolist()):
                if not (np.isfinite(value) and float(value).is_integer()):
                    kind = "label_not_integral"
                elif value < 0 or (num_classes is not None and value >= num_classes):
                    kind = "label_range"
                else:
                    continue
                found[i] = self._label(i, kind, value, num_classes,
                                       f" (label {position + 1} of {count})")
                break
        mask[list(found)] = True
        return mask, found.__getitem__

    # one method per kind of problem
    def _misaligned(self, i: int) -> RecordError:
        return self.error("misaligned_idx", i, f"{self.where(i)}: misaligned .idx offset: "
                          f"{self.offsets[i]} is not a multiple of 4, so no record can start "
                          f"there (the .idx is damaged)", blame_idx=True)

    def _beyond_end(self, i: int) -> RecordError:
        offset = int(self.offsets[i])
        lost = self.n - i
        if offset < self.size:
            detail = f"the file ends at {self.size} bytes, inside this record's header"
        else:
            detail = (f"the record would start at or after the end of the file "
                      f"({self.size} bytes)")
        return self.error("truncated_rec", i, f"truncated .rec: {self.where(i)}: {detail}; "
                          f"this record and the {lost - 1} after it are missing (an "
                          f"interrupted copy or build, or an .idx of a longer .rec)")

    def _no_magic(self, i: int) -> RecordError:
        return self.error("stale_idx", i, f"stale .idx: {self.where(i)}: no record starts at "
                          f"offset {self.offsets[i]} of {self.rec_name} (no RecordIO magic "
                          f"there): the .idx does not belong to this .rec (an index from "
                          f"another build?)", blame_idx=True)

    def _bad_cflag(self, i: int) -> RecordError:
        return self.error("stale_idx", i, f"stale .idx: {self.where(i)}: offset "
                          f"{self.offsets[i]} is in the middle of a multi-part record of "
                          f"{self.rec_name}, not at a record start: the .idx does not belong "
                          f"to this .rec", blame_idx=True)

    def _damaged(self, i: int, exc: RecordFormatError) -> RecordError:
        kind = "truncated_rec" if exc.kind == "truncated" else "damaged_rec"
        what = "truncated .rec" if kind == "truncated_rec" else "damaged multi-part record"
        return self.error(kind, i, f"{what}: {self.where(i)}: {exc}")

    def _truncated(self, i: int, end: int) -> RecordError:
        lost = self.n - i - 1
        return self.error("truncated_rec", i, f"truncated .rec: {self.where(i)} is cut off: it "
                          f"needs bytes up to offset {end} but the file ends at {self.size}; "
                          f"it and the {lost} record(s) after it are lost (an interrupted copy "
                          f"or build): copy the file again or rebuild")

    def _out_of_place(self, i: int, previous_end: int, expected: int | None) -> RecordError:
        offset = int(self.offsets[i])
        if offset < previous_end:
            return self.error("stale_idx", i, f"stale .idx: {self.where(i)}: offset {offset} "
                              f"lies inside the previous record, which ends at {previous_end}: "
                              f"the .idx does not belong to this .rec", blame_idx=True)
        gap = offset - previous_end
        before = (f"record id {self.keys[i - 1]}" if i else "the start of the file")
        short = expected is not None and self.n < expected
        kind = "short_idx" if short else "stale_idx"
        because = (f"short .idx: it lists {self.n} records, the manifest {expected}" if short
                   else "stale .idx")
        return self.error(kind, i, f"{because}: {gap} bytes of {self.rec_name} between "
                          f"{before} (ending at {previous_end}) and {self.where(i)} are in no "
                          f".idx line (records missing from the index)", blame_idx=True)

    def _short(self, i: int, length: int) -> RecordError:
        return self.error("short_record", i, f"{self.where(i)} holds {length} bytes, fewer than "
                          f"the {IR_SIZE}-byte IRHeader: not an image record")

    def _id_mismatch(self, i: int, header_id: int) -> RecordError:
        return self.error("id_mismatch", i, f"header id mismatch: {self.where(i)}: the record "
                          f"there has id {header_id} in its IRHeader: the .idx is from another "
                          f"build (stale index)")

    def _label(self, i: int, kind: str, value: float, num_classes: int | None,
               which: str = "") -> RecordError:
        if kind == "label_not_integral":
            problem = f"label {value!r}{which} is not a whole number (one class per image)"
        else:
            bound = "0" if num_classes is None else f"[0, {num_classes})"
            problem = (f"label {value:g}{which} lies outside {bound} (NUM_CLASSES); the loss "
                       f"would silently map it onto a valid class")
        return self.error(kind, i, f"{self.where(i)}: {problem}")

    def _tail(self, last_end: int, expected: int | None) -> RecordError:
        i = self.n - 1
        extra = self.size - last_end
        if expected is not None and self.n < expected:
            return self.error(
                "short_idx", i, f"short .idx: it lists {self.n} records but the manifest says "
                f"{expected}; {self.rec_name} continues for {extra} bytes after the last "
                f"listed record, {self.where(i)}, which ends at {last_end}", blame_idx=True)
        return self.error("unindexed_bytes", i, f"{extra} bytes of {self.rec_name} after the "
                          f"last indexed record, {self.where(i)}, ending at {last_end}, are in "
                          f"no .idx line (a short or stale index)", blame_idx=True)



# --- decoding -------------------------------------------------------------------------------
def _image_bytes(buffer: memoryview | bytes, offset: int) -> tuple[bytes | memoryview, int]:
    payload, _, _ = read_record_at(buffer, offset)
    flag = int.from_bytes(payload[:4], "little")
    return payload[IR_SIZE + 4 * flag:], flag


def _decode_problem(image: bytes | memoryview, min_side: int | None) -> tuple[str | None, int]:
    data = np.frombuffer(image, np.uint8)
    if data[:2].tobytes() == b"\xff\xd8" and data[-2:].tobytes() != b"\xff\xd9":
        return "the JPEG has no end-of-image marker (truncated image data)", 0
    decoded = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if decoded is None:
        return "the image cannot be decoded by OpenCV (not an image, or damaged)", 0
    channels = 1 if decoded.ndim == 2 else decoded.shape[2]
    height, width = decoded.shape[:2]
    if channels != 3:
        return f"the image has {channels} channel(s), not 3", min(height, width)
    if min_side is not None and min(height, width) < min_side:
        return (f"the image is {width}x{height}, its shorter side below the {min_side} px "
                f"the dataset stores"), min(height, width)
    return None, min(height, width)


def _decode_all(walk: _Walk, min_side: int | None, threads: int | None) -> int:
    """Decode every record (threads: OpenCV releases the GIL); return the smallest side."""
    offsets = walk.offsets.tolist()

    def check(chunk: range) -> tuple[int | None, str | None, int]:
        smallest = 1 << 30
        for i in chunk:
            image, _ = _image_bytes(walk.buffer, offsets[i])
            problem, side = _decode_problem(image, min_side)
            if problem:
                return i, problem, side
            smallest = min(smallest, side)
        return None, None, smallest

    step = 256
    chunks = [range(start, min(start + step, len(offsets)))
              for start in range(0, len(offsets), step)]
    smallest = 1 << 30
    with ThreadPoolExecutor(max_workers=threads or min(os.cpu_count() or 1, 8)) as pool:
        for index, problem, side in pool.map(check, chunks):
            if index is not None:
                raise walk.error("decode", index, f"{walk.where(index)}: {problem}")
            smallest = min(smallest, side)
    return smallest


# --- the checks ---------------------------------------------------------------------------
def _check_against_manifest(entry: dict[str, Any], files: dict[str, str],
                            check_hash: bool) -> bool:
    for kind, path in files.items():
        expected = entry.get(f"{kind}_bytes")
        actual = os.path.getsize(path)
        if expected is not None and int(expected) != actual:
            raise RecordError("size_mismatch", f"is {actual} bytes but the manifest says "
                              f"{expected}: the file changed, or was copied incompletely, "
                              f"since the build", path)
    if not check_hash:
        return False
    for kind, path in files.items():
        expected = entry.get(f"{kind}_sha256")
        if expected is None:
            continue
        actual = sha256_file(path)
        if actual != expected:
            raise RecordError("hash_mismatch", f"SHA-256 {actual[:16]}... differs from the "
                              f"manifest's {expected[:16]}...: the file changed since the build "
                              f"(bit rot, a damaged copy, or another build's file)", path)
    return True


def verify_split(rec_path: str | Path, idx_path: str | Path,
                 expected_count: int | None = None, num_classes: int | None = None,
                 decode: bool = False, manifest_entry: dict[str, Any] | None = None, *,
                 check_hash: bool = False, min_side: int | None = None,
                 threads: int | None = None) -> VerifyResult:
    """Check one ``.rec``/``.idx`` pair; raise :class:`RecordError` at the first problem.

    Parameters
    ----------
    rec_path, idx_path : path
        The pair, as ``mx.io.ImageRecordIter`` would be given it.
    expected_count : int, optional
        Records the manifest says were written (default: ``manifest_entry["count"]``).
    num_classes : int, optional
        Labels must lie in ``[0, num_classes)``; without it only ``>= 0`` and whole.
    decode : bool
        Also decode every image (reads every byte: minutes on ImageNet).
    manifest_entry : dict, optional
        The split's manifest entry: ``rec_bytes``/``idx_bytes`` are checked, and with
        ``check_hash`` also ``rec_sha256``/``idx_sha256``.
    min_side : int, optional
        With ``decode``: the smallest shorter side allowed (the manifest's ``resize``).
    threads : int, optional
        Decoding threads (default: the CPU count, at most 8).
    """
    started = time.monotonic()
    rec, idx = str(rec_path), str(idx_path)
    for path in (rec, idx):
        if not os.path.isfile(path):
            raise RecordError("missing", "file not found (build the dataset with "
                              "build_imagenet.py)", path)
    if expected_count is None and manifest_entry is not None:
        expected_count = int(manifest_entry.get("count", manifest_entry.get("written")))
    keys, offsets = _read_index(idx)
    size = os.path.getsize(rec)
    smallest = None
    with _mapped(rec, size) as buffer:
        walk = _Walk(rec, idx, keys, offsets, buffer, size)
        labels, _, multipart = walk.run(num_classes, expected_count)
        if expected_count is not None and walk.n != expected_count:
            raise RecordError(
                "count_mismatch", f"holds {walk.n} records (and its .idx as many) but the "
                f"manifest says {expected_count}: these are not the files the manifest "
                f"describes (a copy of another build?)", rec)
        hashed = False
        if manifest_entry is not None:
            hashed = _check_against_manifest(manifest_entry, {"rec": rec, "idx": idx},
                                             check_hash)
        if decode and walk.n:
            smallest = _decode_all(walk, min_side, threads)
        del walk
    counts = np.bincount(labels.astype(np.int64), minlength=num_classes or 0) \
        if labels.size else np.zeros(num_classes or 0, np.int64)
    return VerifyResult(rec_path=rec, idx_path=idx, count=len(keys), rec_bytes=size,
                        idx_bytes=os.path.getsize(idx),
                        label_counts=tuple(int(c) for c in counts), multipart=multipart,
                        decoded=len(keys) if decode else 0, smallest_side=smallest,
                        hashed=hashed, seconds=time.monotonic() - started)


def split_paths(config: Settings, split: str) -> tuple[str, str]:
    """The ``.rec`` and ``.idx`` of ``split`` as the config names them."""
    rec = str(split_records(config, split))
    return rec, str(Path(rec).with_suffix(".idx"))


def verify_dataset(config: Settings, splits: Sequence[str] = SPLITS, *,
                   decode: bool = False, check_hash: bool = False,
                   manifest: dict[str, Any] | None = None) -> dict[str, VerifyResult]:
    """:func:`verify_split` for each split of ``config``'s dataset, against its manifest,
    after the contract's own checks (:func:`~pyimagesearch.data.dataset.check_dataset`)."""
    from pyimagesearch.data.dataset import check_dataset

    manifest = check_dataset(config, ()).manifest if manifest is None else manifest
    num_classes = config.NUM_CLASSES
    results = {}
    for split in splits:
        rec, idx = split_paths(config, split)
        entry = manifest["splits"][split]
        results[split] = verify_split(rec, idx, int(entry["count"]), num_classes,
                                      decode=decode, manifest_entry=entry,
                                      check_hash=check_hash,
                                      min_side=int(manifest["resize"]) if decode else None)
    return results


def describe(result: VerifyResult) -> str:
    """One line for people: counts, per-class spread, what was checked, time."""
    counts = [c for c in result.label_counts]
    spread = (f", {len(counts)} classes ({min(counts)}-{max(counts)} per class)"
              if counts else "")
    checks = ["structure", "labels", "sizes"]
    if result.hashed:
        checks.append("sha256")
    if result.decoded:
        checks.append(f"{result.decoded} images decoded (shorter side >= "
                      f"{result.smallest_side} px)")
    multipart = f", {result.multipart} multi-part" if result.multipart else ""
    return (f"OK  {result.count} records{spread}{multipart}; {result.rec_bytes} + "
            f"{result.idx_bytes} bytes; checked {', '.join(checks)} in "
            f"{result.seconds:.2f} s")


def describe_contract(config: Settings, check_hash: bool = False) -> str:
    """The dataset contract's checks (manifest, classes, stored size, mean; with
    ``check_hash`` the mean file's SHA-256 too), as one line; ``DatasetError`` if not met."""
    from pyimagesearch.data.dataset import check_dataset

    info = check_dataset(config, ())
    manifest = info.manifest
    if check_hash and manifest.get("mean_sha256") and \
            sha256_file(config.DATASET_MEAN) != manifest["mean_sha256"]:
        raise DatasetError(f"SHA-256 differs from the mean file built with these records "
                           f"({manifest['path']})", config.DATASET_MEAN)
    return (f"OK  {manifest['num_classes']} classes ({manifest['label_order']} order), "
            f"{manifest['resize']} px, mean as built; identity {manifest['identity'][:12]}")


def check_splits(config: Settings, manifest: dict[str, Any], splits: Sequence[str], *,
                 decode: bool = False, check_hash: bool = False) -> tuple[bool, list[str]]:
    """Verify each split, carrying on after a bad one; (all sound, one report line each)."""
    width = max(len(split) for split in (*splits, "dataset")) + 1
    num_classes = config.NUM_CLASSES
    lines, sound = [], True
    try:
        lines.append(f"{'dataset:':<{width}} {describe_contract(config, check_hash)}")
    except DatasetError as exc:
        lines.append(f"{'dataset:':<{width}} FAILED {exc}")
        sound = False
    for split in splits:
        rec, idx = split_paths(config, split)
        entry = manifest["splits"][split]
        try:
            result = verify_split(rec, idx, int(entry["count"]), num_classes, decode=decode,
                                  manifest_entry=entry, check_hash=check_hash,
                                  min_side=int(manifest["resize"]) if decode else None)
        except DatasetError as exc:
            kind = getattr(exc, "kind", "error")
            lines.append(f"{split + ':':<{width}} FAILED [{kind}] {exc}")
            sound = False
        else:
            lines.append(f"{split + ':':<{width}} {describe(result)}")
    return sound, lines
