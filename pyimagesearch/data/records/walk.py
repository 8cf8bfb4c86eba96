"""The structure and header checks of a ``.rec`` against its ``.idx``, all records at once.

:func:`walk_records` reads every RecordIO header and ``IRHeader`` through ``mmap`` with NumPy
gathers (only multi-part and label-array records take a Python path), fast enough for every
train and test start (figures in docs/data.md), and reports the earliest damaged record.
"""

from __future__ import annotations

import mmap
import struct
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pyimagesearch.data.records.format import (
    IR_FORMAT,
    IR_SIZE,
    MAX_PART_LENGTH,
    RECORDIO_MAGIC,
    RecordError,
    RecordFormatError,
    read_record_at,
)

_PREFETCH_MIN = 20_000      # records below which prefetching threads are not worth it
_PREFETCH_THREADS = 16


@contextmanager
def mapped_file(path: str, size: int) -> Iterator[memoryview | bytes]:
    """The file's bytes, memory-mapped for random reads (``b""`` for an empty file)."""
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
    """Touch the page of every record header from several threads: from a cold page cache
    the walk is one 4 KB read per record, and NumPy's gathers release the GIL."""
    if len(positions) < _PREFETCH_MIN:
        return
    chunks = np.array_split(positions, _PREFETCH_THREADS * 4)
    with ThreadPoolExecutor(max_workers=_PREFETCH_THREADS) as pool:
        for _ in pool.map(words.take, chunks):
            pass


class IndexedRec:
    """A ``.rec``'s bytes with its parsed ``.idx``; names records in messages."""

    def __init__(self, rec: str, idx: str, keys: np.ndarray, offsets: np.ndarray,
                 buffer: memoryview | bytes, size: int) -> None:
        self.rec, self.idx = rec, idx
        self.rec_name, self.idx_name = Path(rec).name, Path(idx).name
        self.keys, self.offsets, self.buffer, self.size = keys, offsets, buffer, size
        self.n = len(keys)

    def where(self, i: int) -> str:
        return (f"record id {self.keys[i]} (line {i + 1} of {self.idx_name}, offset "
                f"{self.offsets[i]})")

    def error(self, kind: str, i: int, message: str, blame_idx: bool = False) -> RecordError:
        if blame_idx:
            return RecordError(kind, message, self.idx, i + 1, int(self.keys[i]))
        return RecordError(kind, message, self.rec, None, int(self.keys[i]), idx_line=i + 1)


def _mask(n: int, records: Iterable[int]) -> np.ndarray:
    mask = np.zeros(n, bool)
    mask[list(records)] = True
    return mask


class _Headers:
    """What the walk read at every ``.idx`` offset (arrays of one entry per record)."""

    def __init__(self, rec: IndexedRec) -> None:
        n, size, offsets = rec.n, rec.size, rec.offsets
        words = np.frombuffer(rec.buffer, dtype="<u4", count=size // 4)

        def gather(selected: np.ndarray, word_offset: int, dtype: str = "<u4") -> np.ndarray:
            values = np.zeros(n, dtype)
            values[selected] = words[offsets[selected] // 4 + word_offset].view(dtype)
            return values

        self.misaligned = offsets % 4 != 0
        has_head = ~self.misaligned & (offsets + 8 <= size)
        self.beyond_end = ~self.misaligned & ~has_head  # no room for a RecordIO header
        at_head = np.flatnonzero(has_head)
        _prefetch(words, offsets[at_head] // 4)
        magic, word = gather(at_head, 0), gather(at_head, 1)
        self.no_magic = has_head & (magic != RECORDIO_MAGIC)
        started = has_head & ~self.no_magic
        cflag = word >> 29
        self.bad_cflag = started & (cflag > 1)  # the offset is inside a multi-part record
        length = (word & MAX_PART_LENGTH).astype(np.int64)
        single = started & (cflag == 0)
        self.end = offsets + 8 + ((length + 3) & ~3)  # offset after each record
        self.truncated = single & (self.end > size)  # a one-part record cut off

        # Multi-part records (rare): their parts are followed in Python.
        self.multi_error: dict[int, RecordFormatError] = {}
        heads: dict[int, bytes] = {}
        for i in np.flatnonzero(started & (cflag == 1)).tolist():
            try:
                heads[i], self.end[i], _ = read_record_at(rec.buffer, int(offsets[i]))
            except RecordFormatError as exc:
                self.multi_error[i] = exc
        self.multipart = len(heads)  # multi-part records that are whole
        self.previous_end = np.concatenate([[0], self.end[:-1]])  # where each should start
        self.whole = (single & ~self.truncated) | _mask(n, heads)

        # IRHeader of every whole record (flag, label, id), from the record's first part;
        # multi-part records take theirs from the joined payload.
        self.first_length = np.where(single, length, 0)  # bytes available for the IRHeader
        for i, payload in heads.items():
            self.first_length[i] = len(payload)
        self.readable = self.whole & (self.first_length >= IR_SIZE)
        direct = np.flatnonzero(self.readable & single)
        self.flag = gather(direct, 2)
        self.label = gather(direct, 3, "<f4").astype(np.float64)
        self.header_id = gather(direct, 4).astype(np.uint64) | (
            gather(direct, 5).astype(np.uint64) << np.uint64(32))
        for i, payload in heads.items():
            if len(payload) >= IR_SIZE:
                self.flag[i], self.label[i], self.header_id[i], _ = struct.unpack_from(
                    IR_FORMAT, payload)
        self.plain = self.readable & (self.flag == 0)  # one label in the header

        # flag > 0: the bytes of the float32 labels that follow the header (maybe short).
        self.label_arrays = {}
        for i in np.flatnonzero(self.readable & (self.flag > 0)).tolist():
            count = int(self.flag[i])
            if i in heads:
                self.label_arrays[i] = heads[i][IR_SIZE:IR_SIZE + 4 * count]
            else:
                start = int(offsets[i]) + 8 + IR_SIZE
                stop = min(start + 4 * count, start - IR_SIZE + int(self.first_length[i]))
                self.label_arrays[i] = bytes(rec.buffer[start:stop])


# --- the checks ---------------------------------------------------------------------------------
# A check: the records it finds damaged, the error's kind, whether the .idx is to blame, and
# the message for record i. The earliest damaged record is reported; ties go to the first check.
_Check = tuple[np.ndarray, str, bool, Callable[[int], str]]


def _label_kind(value: float, num_classes: int | None) -> str | None:
    if not (np.isfinite(value) and float(value).is_integer()):
        return "label_not_integral"
    if value < 0 or (num_classes is not None and value >= num_classes):
        return "label_range"
    return None


def _label_text(kind: str, value: float, num_classes: int | None, which: str = "") -> str:
    if kind == "label_not_integral":
        return f"label {value!r}{which} is not a whole number (one class per image)"
    bound = "0" if num_classes is None else f"[0, {num_classes})"
    return (f"label {value:g}{which} lies outside {bound} (NUM_CLASSES); the loss would "
            f"silently map it onto a valid class")


def _label_array_problems(headers: _Headers,
                          num_classes: int | None) -> dict[int, tuple[str, str]]:
    """flag > 0: ``flag`` float32 labels follow the header; each array's first problem, as
    (kind, what follows the record's name in the message)."""
    found = {}
    for i, raw in headers.label_arrays.items():
        count = int(headers.flag[i])
        if len(raw) < 4 * count:
            found[i] = ("short_record", f" is too short for the {count} labels its IRHeader "
                        f"announces")
            continue
        for position, value in enumerate(np.frombuffer(raw, "<f4").tolist()):
            kind = _label_kind(value, num_classes)
            if kind:
                which = f" (label {position + 1} of {count})"
                found[i] = kind, f": {_label_text(kind, value, num_classes, which)}"
                break
    return found


def _checks(rec: IndexedRec, h: _Headers, num_classes: int | None,
            expected: int | None) -> list[_Check]:
    where, offsets, n, size, name = rec.where, rec.offsets, rec.n, rec.size, rec.rec_name
    multi_truncated = {i for i, exc in h.multi_error.items() if exc.kind == "truncated"}
    integral = np.isfinite(h.label) & (h.label == np.floor(h.label))
    outside = h.label < 0
    if num_classes is not None:
        outside |= h.label >= num_classes
    short = expected is not None and n < expected
    arrays = _label_array_problems(h, num_classes)

    def gap(i: int) -> str:
        before = f"record id {rec.keys[i - 1]}" if i else "the start of the file"
        because = f"short .idx: it lists {n} records, the manifest {expected}" if short \
            else "stale .idx"
        return (f"{because}: {offsets[i] - h.previous_end[i]} bytes of {name} between "
                f"{before} (ending at {h.previous_end[i]}) and {where(i)} are in no .idx line "
                f"(records missing from the index)")

    def beyond_end(i: int) -> str:
        detail = (f"the file ends at {size} bytes, inside this record's header"
                  if offsets[i] < size else
                  f"the record would start at or after the end of the file ({size} bytes)")
        return (f"truncated .rec: {where(i)}: {detail}; this record and the {n - i - 1} after "
                f"it are missing (an interrupted copy or build, or an .idx of a longer .rec)")

    checks: list[_Check] = [
        (h.misaligned, "misaligned_idx", True, lambda i: (
            f"{where(i)}: misaligned .idx offset: {offsets[i]} is not a multiple of 4, so no "
            f"record can start there (the .idx is damaged)")),
        (h.beyond_end, "truncated_rec", False, beyond_end),
        (h.no_magic, "stale_idx", True, lambda i: (
            f"stale .idx: {where(i)}: no record starts at offset {offsets[i]} of {name} (no "
            f"RecordIO magic there): the .idx does not belong to this .rec (an index from "
            f"another build?)")),
        (h.bad_cflag, "stale_idx", True, lambda i: (
            f"stale .idx: {where(i)}: offset {offsets[i]} is in the middle of a multi-part "
            f"record of {name}, not at a record start: the .idx does not belong to this .rec")),
        (_mask(n, multi_truncated), "truncated_rec", False,
         lambda i: f"truncated .rec: {where(i)}: {h.multi_error[i]}"),
        (_mask(n, set(h.multi_error) - multi_truncated), "damaged_rec", False,
         lambda i: f"damaged multi-part record: {where(i)}: {h.multi_error[i]}"),
        (h.truncated, "truncated_rec", False, lambda i: (
            f"truncated .rec: {where(i)} is cut off: it needs bytes up to offset {h.end[i]} "
            f"but the file ends at {size}; it and the {n - i - 1} record(s) after it are lost "
            f"(an interrupted copy or build): copy the file again or rebuild")),
        # Each whole record starts where the previous one ends.
        (h.whole & (offsets < h.previous_end), "stale_idx", True, lambda i: (
            f"stale .idx: {where(i)}: offset {offsets[i]} lies inside the previous record, "
            f"which ends at {h.previous_end[i]}: the .idx does not belong to this .rec")),
        (h.whole & (offsets > h.previous_end), "short_idx" if short else "stale_idx", True,
         gap),
        (h.whole & ~h.readable, "short_record", False, lambda i: (
            f"{where(i)} holds {h.first_length[i]} bytes, fewer than the {IR_SIZE}-byte "
            f"IRHeader: not an image record")),
        (h.readable & (h.header_id != rec.keys.astype(np.uint64)), "id_mismatch", False,
         lambda i: (f"header id mismatch: {where(i)}: the record there has id "
                    f"{h.header_id[i]} in its IRHeader: the .idx is from another build "
                    f"(stale index)")),
        (h.plain & ~integral, "label_not_integral", False, lambda i: (
            f"{where(i)}: {_label_text('label_not_integral', float(h.label[i]), num_classes)}")),
        (h.plain & integral & outside, "label_range", False, lambda i: (
            f"{where(i)}: {_label_text('label_range', float(h.label[i]), num_classes)}")),
    ]
    for kind in ("short_record", "label_not_integral", "label_range"):
        found = [i for i, (problem, _) in arrays.items() if problem == kind]
        checks.append((_mask(n, found), kind, False, lambda i: where(i) + arrays[i][1]))
    return checks


def _check_tail(rec: IndexedRec, headers: _Headers, expected: int | None) -> None:
    """Nothing of the ``.rec`` lies after the last indexed record."""
    if rec.n == 0:
        if rec.size:
            raise RecordError("unindexed_bytes", f"{rec.idx_name} is empty but "
                              f"{rec.rec_name} holds {rec.size} bytes", rec.idx)
        return
    last_end = int(headers.end[-1])
    if last_end == rec.size:
        return
    i = rec.n - 1
    extra = rec.size - last_end
    if expected is not None and rec.n < expected:
        raise rec.error("short_idx", i, f"short .idx: it lists {rec.n} records but the "
                        f"manifest says {expected}; {rec.rec_name} continues for {extra} "
                        f"bytes after the last listed record, {rec.where(i)}, which ends at "
                        f"{last_end}", blame_idx=True)
    raise rec.error("unindexed_bytes", i, f"{extra} bytes of {rec.rec_name} after the last "
                    f"indexed record, {rec.where(i)}, ending at {last_end}, are in no .idx "
                    f"line (a short or stale index)", blame_idx=True)


@dataclass(frozen=True)
class WalkResult:
    """What the walk found in a sound pair."""

    labels: np.ndarray      # the label of every flag-0 record
    multipart: int          # records MXNet split at a magic word


def walk_records(rec: IndexedRec, num_classes: int | None,
                 expected_count: int | None) -> WalkResult:
    """Raise the first problem in file order (:class:`RecordError`); else the labels."""
    headers = _Headers(rec)
    first = None
    for mask, kind, blame_idx, message in _checks(rec, headers, num_classes, expected_count):
        hits = np.flatnonzero(mask[:rec.n if first is None else first[0]])
        if hits.size:
            first = int(hits[0]), kind, blame_idx, message
    if first is not None:
        i, kind, blame_idx, message = first
        raise rec.error(kind, i, message(i), blame_idx)
    _check_tail(rec, headers, expected_count)
    return WalkResult(labels=headers.label[headers.plain], multipart=headers.multipart)
