"""MXNet's ``.idx`` files: one ``<record id><TAB><byte offset>`` line per record.

:func:`read_index` parses a whole index at NumPy speed and raises
:class:`~pyimagesearch.data.records.errors.RecordError` naming the first bad line: a line
that is not two numbers, an id seen before, an offset that does not increase.
"""

from __future__ import annotations

import re

import numpy as np

from pyimagesearch.data.records.errors import RecordError

_IDX_LINE = re.compile(rb"\d{1,18}\t\d{1,18}")


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


def _raise_bad_line(data: bytes, idx_path: str) -> None:
    for number, line in enumerate(data.split(b"\n")[:-1], start=1):
        if not _IDX_LINE.fullmatch(line):
            text = line[:60].decode("ascii", "replace")
            raise RecordError("bad_idx_line", f"malformed index line {text!r}: expected "
                              f"'<record id><TAB><offset>' (the .idx is damaged or is "
                              f"not an MXNet index)", idx_path, number)


def _check_unique_ids(keys: np.ndarray, idx_path: str) -> None:
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


def _check_increasing_offsets(keys: np.ndarray, offsets: np.ndarray, idx_path: str) -> None:
    backwards = np.flatnonzero(offsets[1:] <= offsets[:-1])
    if backwards.size:
        at = int(backwards[0]) + 1
        raise RecordError(
            "offset_order", f"record id {keys[at]}: offset {offsets[at]} does not come "
            f"after the previous line's {offsets[at - 1]}; offsets must increase (the "
            f".idx is damaged or belongs to another .rec)", idx_path, at + 1, int(keys[at]))


def read_index(idx_path: str) -> tuple[np.ndarray, np.ndarray]:
    """The ``.idx``'s record ids and offsets (``int64`` arrays, in file order)."""
    with open(idx_path, "rb") as handle:
        data = handle.read()
    if not data:
        empty = np.zeros(0, np.int64)
        return empty, empty
    if not data.endswith(b"\n"):
        data += b"\n"
    if not _index_is_well_formed(data):
        _raise_bad_line(data, idx_path)
    values = np.fromstring(data.decode("ascii"), dtype=np.int64, sep=" ")
    keys, offsets = values[0::2], values[1::2]
    if len(keys) > 1:
        _check_unique_ids(keys, idx_path)
        _check_increasing_offsets(keys, offsets, idx_path)
    return keys, offsets
