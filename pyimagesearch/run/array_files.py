"""Files of ``mx.nd.save`` (``.params``, ``.states``), walked before MXNet reads them: every
count and size they declare must fit in the file, so a damaged or foreign file is one line
naming it, never an allocation of gigabytes, a minute's wait or a Python traceback inside
``mx.nd.load``. The layout is MXNet 1.9's ``NDArray::Save`` (src/ndarray/ndarray.cc).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import mxnet as mx

from pyimagesearch.errors import ProjectError

LIST_MAGIC = 0x112  # the file's first 8 bytes (little-endian)
_V1, _V2, _V3 = 0xF993FAC8, 0xF993FAC9, 0xF993FACA  # an array's mark; older files have none
# Bytes per item of the data types ``mx.nd.load`` reads (mshadow's type flags).
_ITEM_BYTES = {0: 4, 1: 8, 2: 2, 3: 1, 4: 4, 5: 1, 6: 8, 7: 1, 12: 2}
_DEVICE_TYPES = (1, 2, 3, 5)  # cpu, gpu, cpu_pinned, cpu_shared


class _Misfit(Exception):
    """What does not fit: completes "not an array file MXNet wrote: "."""


class _Walk:
    """A reader of the file's layout that never reads or skips past its end."""

    def __init__(self, handle: BinaryIO, size: int) -> None:
        self.handle, self.size = handle, size

    def read(self, layout: str, what: str) -> tuple[int, ...]:
        count = struct.calcsize(layout)
        if self.handle.tell() + count > self.size:
            raise _Misfit(f"it ends inside {what}")
        return struct.unpack(layout, self.handle.read(count))

    def skip(self, count: int, what: str) -> None:
        if self.handle.tell() + count > self.size:
            raise _Misfit(f"{what} declares {count:,} bytes, past the file's end")
        self.handle.seek(count, 1)

    def dims(self, ndim: int, code: str, what: str) -> tuple[int, ...]:
        """``ndim`` sizes of the struct ``code``, none negative."""
        if ndim < 0:
            raise _Misfit(f"{what} has {ndim} dimensions")
        shape = self.read(f"<{ndim}{code}", what) if ndim else ()
        if any(d < 0 for d in shape):
            raise _Misfit(f"{what} has a negative size")
        return shape


def _array(walk: _Walk, what: str) -> None:
    (mark,) = walk.read("<I", what)
    if mark == _V3:
        raise _Misfit(f"{what} was saved with NumPy shapes (mx.np), which nothing here reads")
    if mark == _V2:
        (storage,) = walk.read("<i", what)
        if storage != 0:
            raise _Misfit(f"{what} is sparse (storage type {storage}); checkpoints are dense")
        (ndim,) = walk.read("<i", what)
        if ndim == 0:
            raise _Misfit(f"{what} is empty (no shape)")  # mx.nd.load fails on it in Python
        shape = walk.dims(ndim, "q", what)
    elif mark == _V1:
        (ndim,) = walk.read("<i", what)
        shape = walk.dims(ndim, "q", what)
    else:
        shape = walk.dims(mark, "I", what)  # the oldest layout: the mark is the ndim
    device, device_id = walk.read("<ii", what)
    if device not in _DEVICE_TYPES or not 0 <= device_id < 1024:
        raise _Misfit(f"{what} was saved on device ({device}, {device_id})")
    (dtype,) = walk.read("<i", what)
    if dtype not in _ITEM_BYTES:
        raise _Misfit(f"{what} has the unknown data type {dtype}")
    walk.skip(math.prod(shape) * _ITEM_BYTES[dtype], what)


def _names(walk: _Walk, arrays: int) -> None:
    (count,) = walk.read("<Q", "the count of names")
    if count not in (0, arrays):
        raise _Misfit(f"it names {count:,} arrays of {arrays:,}")
    seen = set()
    for position in range(count):
        (length,) = walk.read("<Q", f"name {position}")
        if walk.handle.tell() + length > walk.size:
            raise _Misfit(f"name {position} declares {length:,} bytes, past the file's end")
        try:
            name = walk.handle.read(length).decode("utf-8")
        except UnicodeDecodeError:
            raise _Misfit(f"name {position} is not UTF-8") from None
        if name in seen:
            raise _Misfit(f"it names two arrays {name!r}")
        seen.add(name)


def array_file_problem(path: str | Path) -> str | None:
    """What keeps ``mx.nd.load`` from reading ``path`` safely, or None."""
    with open(path, "rb") as handle:
        walk = _Walk(handle, Path(path).stat().st_size)
        try:
            magic, _ = walk.read("<QQ", "its header")
            if magic != LIST_MAGIC:
                raise _Misfit("it lacks the mark of mx.nd.save")
            (arrays,) = walk.read("<Q", "the count of arrays")
            if arrays * 4 > walk.size:  # each array takes 4 bytes at least
                raise _Misfit(f"it declares {arrays:,} arrays in {walk.size:,} bytes")
            for position in range(arrays):
                _array(walk, f"array {position}")
            _names(walk, arrays)
            if handle.tell() != walk.size:
                raise _Misfit(f"{walk.size - handle.tell():,} bytes follow its last name")
        except _Misfit as misfit:
            return f"not an array file MXNet wrote: {misfit}"
    return None


def mxnet_reason(error: mx.base.MXNetError) -> str:
    """The line of an MXNet error that says what failed (its first ones are a traceback)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return lines[-1].removeprefix("MXNetError: ") if lines else type(error).__name__


def load_arrays(path: str | Path, what: str,
                error: Callable[[str], ProjectError]) -> dict[str, mx.nd.NDArray]:
    """The named arrays of ``path``, or ``error`` of one line: "<path>: not a readable
    <what> (<why>)"."""
    try:
        problem = array_file_problem(path)
        saved = mx.nd.load(str(path)) if problem is None else None
    except OSError as exc:
        problem = exc.strerror or str(exc)
    except mx.base.MXNetError as exc:
        problem = mxnet_reason(exc)
    if problem is None and isinstance(saved, list):
        # mx.nd.load gives a list where no array is named, even for none.
        problem = None if not saved else "its arrays have no names"
        saved = {}
    if problem is not None:
        raise error(f"{path}: not a readable {what} ({problem})")
    return saved


def unprefixed(saved: dict[str, mx.nd.NDArray], path: str | Path,
               error: Callable[[str], ProjectError]) -> dict[str, mx.nd.NDArray]:
    """The arrays by parameter name, MXNet's ``arg:`` and ``aux:`` taken off; two arrays
    left with one name (``arg:w`` and ``aux:w``) are ``error``: one would silently win."""
    arrays: dict[str, mx.nd.NDArray] = {}
    for name, array in saved.items():
        if arrays.setdefault(name.split(":", 1)[-1], array) is not array:
            raise error(f"{path}: holds two arrays named {name.split(':', 1)[-1]!r}")
    return arrays
