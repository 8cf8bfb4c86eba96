"""The RecordIO format: MXNet's ``.rec``/``.idx`` pairs, written and read in Python.

Byte for byte what ``mx.recordio.MXIndexedRecordIO`` writes (a test compares them), and
the one source of truth for the format: :mod:`pyimagesearch.data.build.packing` and
:mod:`pyimagesearch.data.build.cifar` write records with :class:`RecordWriter`,
:mod:`pyimagesearch.data.records.walk` and :mod:`pyimagesearch.data.records.verify` read them with
:func:`read_record_at` (or :func:`image_bytes_at`).

Why not MXNet's own writer: its C++ writer loses its buffered tail silently when the disk
fills at ``close()`` (measured: a 9288-byte file comes out as 9000 bytes with no error);
here every write error is an ``OSError`` naming the file.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

# --- the RecordIO format (dmlc-core recordio.h) --------------------------------------------
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


def lrecord(cflag: int, length: int) -> int:
    return (cflag << 29) | length


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
        parts.append(struct.pack("<II", RECORDIO_MAGIC, lrecord(2 if start else 1,
                                                                found - start)))
        parts.append(payload[start:found])
        start = found + 4
    tail = len(payload) - start
    parts.append(struct.pack("<II", RECORDIO_MAGIC, lrecord(3 if start else 0, tail)))
    parts.append(payload[start:])
    parts.append(b"\0" * (-tail % 4))
    return b"".join(parts)


class RecordFormatError(ValueError):
    """Bytes at an offset are not a whole RecordIO record; ``kind`` says how."""

    def __init__(self, kind: str, message: str, offset: int) -> None:
        self.kind = kind
        self.offset = offset
        super().__init__(message)


def read_record_at(buffer: memoryview | bytes, offset: int) -> tuple[bytes, int, int]:
    """Read the record starting at ``offset`` of a ``.rec``'s bytes.

    Returns
    -------
    payload : bytes
        The record's data, parts joined as ``dmlc::RecordIOReader::NextRecord`` joins them.
    end : int
        Offset just after the record (where the next one starts).
    parts : int
        1 for an ordinary record, more when the payload held the magic word.

    Raises
    ------
    RecordFormatError
        ``kind`` is ``"misaligned"``, ``"no_magic"``, ``"truncated"`` or ``"bad_cflag"``.
    """
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

    ``.idx`` lines are ``<key>\\t<offset>\\n``. Write errors (disk full, ``ulimit -f``) are
    ``OSError`` naming the file, at ``write`` or at ``close`` (see the module docstring).
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


def pack_header(label: float, record_id: int) -> bytes:
    """``mx.recordio.pack(IRHeader(0, label, record_id, 0), b"")``."""
    return struct.pack(IR_FORMAT, 0, float(label), int(record_id), 0)


def idx_path_for(rec_path: str | Path) -> Path:
    """``train.rec`` -> ``train.idx``, the convention of im2rec and ImageRecordIter."""
    return Path(rec_path).with_suffix(".idx")
