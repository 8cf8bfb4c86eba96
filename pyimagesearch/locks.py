"""One writer per folder: a ``flock`` on a lock file that names its holder and dies with it
(a killed writer never blocks the next one).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shlex
import socket
import sys
import time
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from types import TracebackType

from pyimagesearch.errors import LockError
from pyimagesearch.files import write_all

# How long a refused writer waits for the holder to write its name: the holder locks the
# file first and writes its description a moment later.
_HOLDER_WAIT_SECONDS = 2.0


class FolderBusy(LockError):
    """Another process holds the lock; ``holder`` says who, when it could be read."""

    def __init__(self, lock_file: Path, purpose: str, holder: Holder | None) -> None:
        self.lock_file, self.holder = lock_file, holder
        who = holder.describe() if holder else "a process that has not written its name"
        super().__init__(f"{lock_file.parent} is in use: {purpose} is already running there "
                         f"({who}; lock {lock_file.name}); wait for it to finish or stop "
                         f"it, or use another folder")


@dataclass(frozen=True)
class Holder:
    """Who holds a lock: what the holder writes into the lock file."""

    pid: int
    host: str
    command: str
    started: str

    @classmethod
    def this_process(cls) -> Holder:
        return cls(pid=os.getpid(), host=socket.gethostname(),
                   command=shlex.join([sys.executable, *sys.argv]),
                   started=datetime.now().astimezone().isoformat(timespec="seconds"))

    @classmethod
    def parse(cls, text: str) -> Holder | None:
        try:
            fields = json.loads(text)
            return cls(int(fields["pid"]), str(fields["host"]), str(fields["command"]),
                       str(fields["started"]))
        except (ValueError, KeyError, TypeError):
            return None

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host} since {self.started}: {self.command}"


class FolderLock:
    """An exclusive lock on ``folder / name``, held from :meth:`acquire` to :meth:`release`.

    ``purpose`` says what holds it, for the refusal message ("the training 'googlenet'",
    "a dataset build"). Used as a context manager it is acquired on entry.
    """

    def __init__(self, folder: str | Path, name: str, purpose: str) -> None:
        self.path = Path(folder) / name
        self.purpose = purpose
        self._descriptor: int | None = None
        self._created: list[Path] = []  # folders made for the lock, removed with it if empty

    @property
    def held(self) -> bool:
        return self._descriptor is not None

    def acquire(self) -> FolderLock:
        """Take the lock or raise at once: :class:`FolderBusy` naming the holder, or
        :class:`LockError` when the folder or the lock file cannot be created."""
        while True:
            descriptor = self._open()
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(descriptor)
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise LockError(f"cannot lock {self.path} ({exc.strerror or exc})") from None
                raise FolderBusy(self.path, self.purpose, self._read_holder()) from None
            if self._still_linked(descriptor):
                break
            # The previous holder removed the file between our open and our lock: the
            # lock is on a file nobody else will open. Start again with the path's file.
            os.close(descriptor)
        with suppress(OSError):  # a full disk: the lock holds all the same, only unnamed
            os.ftruncate(descriptor, 0)
            write_all(descriptor, json.dumps(asdict(Holder.this_process())).encode() + b"\n")
        self._descriptor = descriptor
        return self

    def _open(self) -> int:
        try:
            missing = [f for f in (self.path.parent, *self.path.parent.parents) if not f.exists()]
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._created = missing
            # O_CLOEXEC (Python's default): a child process never inherits the lock.
            return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise LockError(f"cannot create the lock file {self.path} "
                            f"({exc.strerror or exc}); {self.purpose} needs a folder it "
                            f"can write") from None

    def _still_linked(self, descriptor: int) -> bool:
        try:
            named = os.stat(self.path)
        except FileNotFoundError:
            return False
        opened = os.fstat(descriptor)
        return (named.st_dev, named.st_ino) == (opened.st_dev, opened.st_ino)

    def _read_holder(self) -> Holder | None:
        deadline = time.monotonic() + _HOLDER_WAIT_SECONDS
        while True:
            try:
                holder = Holder.parse(self.path.read_text(encoding="utf-8"))
            except OSError:
                holder = None
            if holder is not None or time.monotonic() > deadline:
                return holder
            time.sleep(0.02)

    def release(self) -> None:
        """Remove the lock file and let go of the lock (a process that dies lets go too,
        leaving the file, which the next writer takes over)."""
        if self._descriptor is None:
            return
        descriptor, self._descriptor = self._descriptor, None
        # Removed while still locked: whoever opened it meanwhile sees that it is no longer
        # the path's file once it gets the lock, and starts again (see acquire).
        with suppress(OSError):
            self.path.unlink()
        os.close(descriptor)  # closing the last descriptor releases the flock
        # A writer that failed before writing anything leaves no empty folder behind.
        for folder in self._created:
            with suppress(OSError):
                folder.rmdir()

    def __enter__(self) -> FolderLock:
        return self.acquire()

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.release()


BUILD_LOCK_NAME = ".build.lock"


@contextmanager
def build_lock(outputs: Iterable[str | Path]) -> Iterator[list[FolderLock]]:
    """Hold the build lock of every folder that one of ``outputs`` goes to (records,
    lists and mean may lie in different folders), for the ``with`` block."""
    folders = sorted({Path(path).resolve().parent for path in outputs})
    with ExitStack() as held:
        yield [held.enter_context(FolderLock(folder, BUILD_LOCK_NAME, "a dataset build"))
               for folder in folders]
