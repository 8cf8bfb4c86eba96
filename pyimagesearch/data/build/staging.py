"""Datasets written under temporary names and committed all at once, manifest last.

Every file of a dataset build goes to ``<name>.partial-<pid>`` beside its final name;
when everything is written and flushed, the old manifest is removed, the files are
renamed into place and the new manifest goes last: the folder holds either the previous
complete dataset or the new one, and a folder without a manifest reads as incomplete.
``remove_stale_partials`` clears what a killed build left.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pyimagesearch.data.dataset import manifest_text
from pyimagesearch.data.records.format import naming_errors
from pyimagesearch.files import PARTIAL, fsync_path, partial_path

logger = logging.getLogger(__name__)



def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_partials(finals: Iterable[Path]) -> list[Path]:
    """Delete ``<name>.partial-<pid>`` files that a dead build left beside ``finals``.

    Folders named ``<name>.partial-<pid>.<what>`` go too (im2rec's work folder).
    """
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


def temporary_name(final: Path) -> Path:
    return partial_path(final)


class Staging:
    """Temporary files that become a dataset only all together, when committed.

    ``touched`` turns true when the first final name is about to change; until then a
    failure leaves the previous dataset exactly as it was.
    """

    def __init__(self) -> None:
        self.pending: list[tuple[Path, Path]] = []
        self.touched = False

    def path(self, final: str | Path) -> Path:
        final = Path(final)
        final.parent.mkdir(parents=True, exist_ok=True)
        temporary = temporary_name(final)
        self.pending.append((temporary, final))
        return temporary

    def final_of(self, temporary: str | Path) -> Path | None:
        return next((final for temp, final in self.pending if str(temp) == str(temporary)),
                    None)

    def commit(self, manifest_file: Path, manifest: dict[str, Any]) -> None:
        # Every byte, the manifest's included, is written and flushed before any final name
        # changes: a full disk is found here, while the previous dataset is intact.
        manifest_temporary = self.path(manifest_file)
        with naming_errors(manifest_temporary):
            manifest_temporary.write_text(manifest_text(manifest), encoding="utf-8")
        for temporary, _ in self.pending:
            with naming_errors(temporary):
                fsync_path(temporary)
        self.touched = True
        # Drop the old manifest first: if we die half-way through the renames, the folder
        # has no manifest and reads as incomplete rather than as a mix of two builds.
        manifest_file.unlink(missing_ok=True)
        for temporary, final in self.pending:
            if final != manifest_file:
                os.replace(temporary, final)
        for folder in {final.parent for _, final in self.pending}:
            fsync_path(folder)
        os.replace(manifest_temporary, manifest_file)  # the manifest last: it marks "done"
        fsync_path(manifest_file.parent)
        self.pending.clear()

    def discard(self) -> None:
        for temporary, _ in self.pending:
            temporary.unlink(missing_ok=True)
        self.pending.clear()
