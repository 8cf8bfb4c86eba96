"""A dataset written under temporary names and committed all at once, the manifest last.

Every file of a build goes to ``<name>.partial-<pid>`` beside its final name; the commit
renames them into place, the manifest last, so a folder holds either the previous complete
dataset or the new one. How and why, and what a failure leaves: docs/data.md.
"""

from __future__ import annotations

import errno
import logging
import os
import shutil
import signal
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pyimagesearch.data.build.workers import BuildError
from pyimagesearch.data.dataset import manifest_text
from pyimagesearch.data.records.format import naming_errors
from pyimagesearch.errors import EXIT_TERMINATED, ProjectError
from pyimagesearch.files import PARTIAL, fsync_path, partial_path

logger = logging.getLogger(__name__)

# What a write fails with when the disk (or a quota, or `ulimit -f`) says no more.
_FULL_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the build is: it unwinds as Ctrl-C does (workers stopped,
    temporary files removed, locks released)."""


class BuildTerminated(ProjectError):
    """The build stopped on SIGTERM; the message says what it left."""

    exit_status = EXIT_TERMINATED
    label = ""


def _terminate(signum: int, frame: object) -> None:
    raise _Terminated


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_partials(finals: Iterable[Path]) -> list[Path]:
    """Delete the ``<name>.partial-<pid>`` files (and ``<name>.partial-<pid>.<what>``
    folders, im2rec's) that a dead build left beside ``finals``."""
    removed = []
    for final in finals:
        if not final.parent.is_dir():
            continue
        for candidate in final.parent.glob(f"{final.name}{PARTIAL}*"):
            pid = candidate.name.rsplit(PARTIAL, 1)[1].split(".", 1)[0]
            if pid.isdigit() and int(pid) != os.getpid() and not _pid_alive(int(pid)):
                if candidate.is_dir() and not candidate.is_symlink():
                    shutil.rmtree(candidate, ignore_errors=True)
                else:
                    candidate.unlink(missing_ok=True)
                removed.append(candidate)
                logger.info("removed %s, left by an interrupted build", candidate)
    return removed


class Staging:
    """Temporary files that become a dataset only all together, when committed; until
    ``touched`` (a final name is about to change) a failure leaves the ``previous`` dataset
    exactly as it was. ``started``, ``started_at``: when the build began."""

    def __init__(self, manifest_file: Path, previous: bool) -> None:
        self.manifest_file, self.previous = manifest_file, previous
        self.pending: list[tuple[Path, Path]] = []
        self.touched = False
        self.started, self.started_at = time.monotonic(), datetime.now(timezone.utc)

    def path(self, final: str | Path) -> Path:
        final = Path(final)
        final.parent.mkdir(parents=True, exist_ok=True)
        temporary = partial_path(final)
        self.pending.append((temporary, final))
        return temporary

    def commit(self, manifest: dict[str, Any]) -> None:
        # Every byte, the manifest's included, is written and flushed before any final name
        # changes: a full disk is found here, while the previous dataset is intact.
        manifest_temporary = self.path(self.manifest_file)
        with naming_errors(manifest_temporary):
            manifest_temporary.write_text(manifest_text(manifest), encoding="utf-8")
        for temporary, _ in self.pending:
            with naming_errors(temporary):
                fsync_path(temporary)
        self.touched = True
        # Drop the old manifest first: if we die half-way through the renames, the folder
        # has no manifest and reads as incomplete rather than as a mix of two builds.
        self.manifest_file.unlink(missing_ok=True)
        for temporary, final in self.pending:
            if final != self.manifest_file:
                os.replace(temporary, final)
        for folder in {final.parent for _, final in self.pending}:
            fsync_path(folder)
        os.replace(manifest_temporary, self.manifest_file)  # the manifest last: it marks "done"
        fsync_path(self.manifest_file.parent)
        self.pending.clear()

    def discard(self) -> None:
        for temporary, _ in self.pending:
            temporary.unlink(missing_ok=True)
        self.pending.clear()

    def state(self) -> str:
        """What a failure now leaves in the output folder, for its message."""
        folder = self.manifest_file.parent
        if self.touched:
            return (f"the failure came while renaming the new files into place, so the "
                    f"dataset in {folder} is incomplete (it has no manifest and will not be "
                    f"used); run the build again")
        if self.previous:
            return (f"nothing was replaced: the previous dataset in {folder} is untouched and "
                    f"the temporary files were removed")
        return "nothing final-named was written and the temporary files were removed"

    def write_failure(self, exc: OSError) -> str:
        """The message of a write that failed: the file, the system's reason, the state."""
        filename = exc.filename
        final = next((final for temporary, final in self.pending
                      if str(temporary) == str(filename)), None)
        if final is not None:
            where = f"writing {final} (as {Path(filename).name})"
        else:
            where = "writing the dataset" if filename is None else f"writing {filename}"
        reason = f"[Errno {exc.errno}] {exc.strerror}" if exc.errno else str(exc)
        hint = (": the disk is full, or a quota or a file-size limit (ulimit -f) was reached"
                if exc.errno in _FULL_ERRNOS else "")
        return f"{where} failed: {reason}{hint}; {self.state()}"


@contextmanager
def staged(manifest_file: Path, finals: Iterable[Path]) -> Iterator[Staging]:
    """A :class:`Staging` for a build of ``finals`` and ``manifest_file``.

    What dead builds left beside them is removed first, the temporary files always at the
    end. A failed write (``OSError``) or a :class:`BuildError` becomes a ``BuildError``
    that says in which state the output folder is; SIGTERM unwinds as Ctrl-C does and
    becomes a :class:`BuildTerminated` that says it.
    """
    finals = [*finals, manifest_file]
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminate) if main else None
    try:
        remove_stale_partials(finals)
        staging = Staging(manifest_file, manifest_file.is_file())
        try:
            yield staging
        except BuildError as exc:
            raise BuildError(f"{exc}; {staging.state()}") from exc
        except ProjectError:  # a file missing or malformed (some are OSErrors too): as it is
            raise
        except OSError as exc:
            raise BuildError(staging.write_failure(exc)) from exc
        except _Terminated:
            raise BuildTerminated(f"interrupted by SIGTERM; {staging.state()}") from None
        finally:
            staging.discard()
    finally:
        if main:
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
