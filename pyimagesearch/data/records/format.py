"""MXNet's RecordIO files in Python: ``.rec`` records, the ``.idx`` index, and their errors.

Byte for byte what ``mx.recordio.MXIndexedRecordIO`` writes (a test compares them): the one
source of truth for the format, for the builders (:class:`RecordWriter`) and the checks
(:func:`read_record_at`, :func:`read_index`). Why not MXNet's writer: docs/data.md.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from pyimagesearch.errors import DatasetError

# A record is  magic (uint32) | lrecord (uint32) | data | zero padding to 4 bytes,  all
# little-endian, where lrecord = cflag << 29 | length. A payload holding the magic word at a
# 4-aligned position is cut there into parts (cflag 1 first, 2 middle, 3 last; 0 = whole
# record) and the magic word itself is dropped: the reader puts it back between parts.
RECORDIO_MAGIC = 0xCED7230A
MAGIC_BYTES = struct.pack("<I", RECORDIO_MAGIC)
MAX_PART_LENGTH = (1 << 29) - 1
# mx.recordio.IRHeader(flag, label, id, id2), struct "IfQQ"; flag > 0: that many float32
# labels follow the header and the label field is unused.
IR_FORMAT = "<IfQQ"
IR_SIZE = struct.calcsize(IR_FORMAT)
_IDX_LINE = re.compile(rb"\d{1,18}\t\d{1,18}")


class RecordError(DatasetError):
    """A ``.rec``/``.idx`` pair is damaged or does not fit its manifest.

    ``kind``: what is wrong (the kinds are listed in docs/data.md); ``path``: the file to
    blame, ``line`` the 1-based line when it is the ``.idx``; ``idx_line``: the ``.idx``
    line of the record involved, whichever file is blamed; ``record_id``: the record's id
    (the ``.idx`` key, which is the ``.lst`` index).
    """

    def __init__(self, kind: str, message: str, path: str | Path, line: int | None = None,
                 record_id: int | None = None, idx_line: int | None = None) -> None:
        self.kind = kind
        self.record_id = record_id
        self.idx_line = line if idx_line is None else idx_line
        super().__init__(message, path, line)


class RecordFormatError(ValueError):
    """Bytes at an offset are not a whole RecordIO record; ``kind`` says how."""

    def __init__(self, kind: str, message: str, offset: int) -> None:
        self.kind = kind
        self.offset = offset
        super().__init__(message)


# --- records ---------------------------------------------------------------------------------
def frame_record(payload: bytes) -> bytes:
    """The bytes that ``dmlc::RecordIOWriter::WriteRecord`` writes for ``payload``."""
    if len(payload) > MAX_PART_LENGTH:
        raise ValueError(f"a RecordIO record holds at most {MAX_PART_LENGTH} bytes, "
                         f"not {len(payload)}")
    # The magic word counts only at 4-aligned positions: compare whole words (a third of
    # the cost of bytes.find on JPEG data, and this runs once per record).
    words = np.frombuffer(payload, dtype="<u4", count=len(payload) // 4)
    parts = []
    start = 0
    for found in (4 * np.flatnonzero(words == RECORDIO_MAGIC)).tolist():
        cflag = 2 if start else 1
        parts += [struct.pack("<II", RECORDIO_MAGIC, (cflag << 29) | (found - start)),
                  payload[start:found]]
        start = found + 4
    tail = len(payload) - start
    cflag = 3 if start else 0
    parts += [struct.pack("<II", RECORDIO_MAGIC, (cflag << 29) | tail), payload[start:],
              b"\0" * (-tail % 4)]
    return b"".join(parts)


def read_record_at(buffer: memoryview | bytes, offset: int) -> tuple[bytes, int, int]:
    """``(payload, end, parts)`` of the record at ``offset`` of a ``.rec``'s bytes: the
    parts joined as ``dmlc::RecordIOReader::NextRecord`` joins them, where the next record
    starts, and how many parts (1 unless the payload held the magic word). Raises
    :class:`RecordFormatError` (``"misaligned"``, ``"no_magic"``, ``"truncated"``,
    ``"bad_cflag"``)."""
    size = len(buffer)
    pieces: list[bytes] = []
    position, parts = offset, 0
    if offset % 4:
        raise RecordFormatError("misaligned", f"offset {offset} is not a multiple of 4, so "
                                "it cannot be the start of a record", offset)
    while True:
        if position + 8 > size:
            raise RecordFormatError(
                "truncated", f"the file ends at {size} bytes, inside the record header at "
                f"offset {position}", position)
        magic, word = struct.unpack_from("<II", buffer, position)
        if magic != RECORDIO_MAGIC:
            what = "record" if parts == 0 else f"part {parts + 1} of the record"
            raise RecordFormatError(
                "no_magic", f"no RecordIO magic word at offset {position} (found "
                f"0x{magic:08x}), so it is not the start of a {what}", position)
        cflag, length = word >> 29, word & MAX_PART_LENGTH
        expected = (0, 1) if parts == 0 else (2, 3)
        if cflag not in expected:
            raise RecordFormatError(
                "bad_cflag", f"continuation flag {cflag} at offset {position} where "
                f"{' or '.join(map(str, expected))} belongs (the offset is in the middle of "
                "a multi-part record, or the file is damaged)", position)
        end = position + 8 + ((length + 3) & ~3)
        if end > size:
            raise RecordFormatError(
                "truncated", f"the record needs bytes up to offset {end} but the file ends "
                f"at {size}", position)
        if parts:
            pieces.append(MAGIC_BYTES)
        pieces.append(bytes(buffer[position + 8:position + 8 + length]))
        parts += 1
        position = end
        if cflag in (0, 3):
            return b"".join(pieces), end, parts


def image_bytes_at(buffer: memoryview | bytes, offset: int) -> bytes:
    """The image stored in the record at ``offset``: its payload after the ``IRHeader``
    and, when ``flag > 0``, the ``flag`` float32 labels that follow it."""
    payload, _, _ = read_record_at(buffer, offset)
    flag = int.from_bytes(payload[:4], "little")
    return payload[IR_SIZE + 4 * flag:]


def pack_header(label: float, record_id: int) -> bytes:
    """``mx.recordio.pack(IRHeader(0, label, record_id, 0), b"")``."""
    return struct.pack(IR_FORMAT, 0, float(label), int(record_id), 0)


@contextmanager
def naming_errors(path: str | Path) -> Iterator[None]:
    """Give ``OSError`` s raised by writes on an open file (which carry no name) the name."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None:
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise


class RecordWriter:
    """Write a ``.rec``/``.idx`` pair as ``mx.recordio.MXIndexedRecordIO(idx, rec, "w")`` does.

    ``.idx`` lines are ``<key>\\t<offset>\\n``. A write error (disk full, ``ulimit -f``) is an
    ``OSError`` naming the file, at ``write`` or at ``close``.
    """

    def __init__(self, rec_path: str | Path, idx_path: str | Path) -> None:
        self.rec_path, self.idx_path = str(rec_path), str(idx_path)
        self.position = 0
        self._rec = open(self.rec_path, "wb")  # noqa: SIM115 - closed in close()
        try:
            self._idx = open(self.idx_path, "w", encoding="ascii", newline="\n")  # noqa: SIM115
        except BaseException:
            self._rec.close()
            raise

    def write(self, key: int, payload: bytes) -> None:
        data = frame_record(payload)
        with naming_errors(self.rec_path):
            self._rec.write(data)
        with naming_errors(self.idx_path):
            self._idx.write(f"{int(key)}\t{self.position}\n")
        self.position += len(data)

    def close(self) -> None:
        try:
            with naming_errors(self.rec_path):
                self._rec.close()
        finally:
            with naming_errors(self.idx_path):
                self._idx.close()

    def __enter__(self) -> RecordWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# --- the .idx: one "<record id><TAB><byte offset>" line per record ---------------------------
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


def read_index(idx_path: str) -> tuple[np.ndarray, np.ndarray]:
    """The ``.idx``'s record ids and offsets (``int64`` arrays, in file order).

    Raises :class:`RecordError` at the first line that is not two numbers, repeats an id
    or does not increase the offset, and for a file that cannot be read.
    """
    try:
        with open(idx_path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise RecordError("missing", f"cannot be read ({exc.strerror or exc})",
                          idx_path) from None
    if not data:
        empty = np.zeros(0, np.int64)
        return empty, empty
    if not data.endswith(b"\n"):
        data += b"\n"
    if not _index_is_well_formed(data):
        for number, line in enumerate(data.split(b"\n")[:-1], start=1):
            if not _IDX_LINE.fullmatch(line):
                text = line[:60].decode("ascii", "replace")
                raise RecordError("bad_idx_line", f"malformed index line {text!r}: expected "
                                  f"'<record id><TAB><offset>' (the .idx is damaged or is "
                                  f"not an MXNet index)", idx_path, number)
    values = np.fromstring(data.decode("ascii"), dtype=np.int64, sep=" ")
    keys, offsets = values[0::2], values[1::2]
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
