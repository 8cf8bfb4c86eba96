"""Files never seen half-written: written under a temporary name, flushed, renamed into
place; checksums; one line for a write that failed.
"""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path


def sha256_file(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks (record files run to hundreds of GB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fsync_path(path: str | Path) -> None:
    """Flush a file's data, or a folder's entries (after a rename), to disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def commit_file(temporary: str | Path, final: str | Path) -> None:
    """Flush ``temporary`` and rename it to ``final`` (same folder, so the rename is atomic)."""
    fsync_path(temporary)
    os.replace(temporary, final)


def write_all(descriptor: int, data: bytes) -> None:
    """``os.write`` until every byte is written (a write may take only part of them)."""
    view = memoryview(data)
    while view:
        view = view[os.write(descriptor, view):]


# A file being written goes to "<name>.partial-<pid>" beside its final name.
PARTIAL = ".partial-"


def partial_path(final: str | Path, hidden: bool = False) -> Path:
    """This process's temporary name for ``final`` (``hidden``: with a leading dot)."""
    final = Path(final)
    return final.with_name(f"{'.' if hidden else ''}{final.name}{PARTIAL}{os.getpid()}")


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file, flushed, then renamed."""
    path = Path(path)
    temporary = partial_path(path)
    try:
        temporary.write_text(text, encoding="utf-8")
        commit_file(temporary, path)
        fsync_path(path.parent)
    finally:
        temporary.unlink(missing_ok=True)


# What a write fails with when the disk (or a quota, or `ulimit -f`) says no more, and when
# the folder may not be written.
_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EFBIG, errno.EDQUOT})
_DENIED_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})


def write_failure(path: str | Path, exc: OSError) -> str:
    """One line for a write that failed: the file, the system's reason and what it means."""
    reason = f"[Errno {exc.errno}] {exc.strerror}" if exc.errno else str(exc)
    if exc.errno in _FULL_ERRNOS:
        reason += ": the disk is full, or a quota or a file-size limit (ulimit -f) was reached"
    elif exc.errno in _DENIED_ERRNOS:
        reason += f": {Path(path).parent} is read-only or not writable by this user"
    return f"could not write {path} ({reason})"
