"""The restricted unpickler for CIFAR's python layout.

Unpickling runs code named by the file, so a python-layout batch is read with an
unpickler that resolves only the few globals a genuine batch references (see
``ALLOWED_GLOBALS``) and refuses everything else before it can be called.
"""

from __future__ import annotations

import io
import os
import pickle
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from pyimagesearch.data.sources.cifar_format import CifarFormatError
from pyimagesearch.errors import ProjectError


class UnsafePickleError(ProjectError, pickle.UnpicklingError):
    """A python-layout file asks the unpickler for something a CIFAR batch never needs."""

    def __str__(self) -> str:
        return (f"{super().__str__()}. Nothing in the file was run and nothing was written; "
                f"re-download the dataset from https://www.cs.toronto.edu/~kriz/cifar.html")


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
