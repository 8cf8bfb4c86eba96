"""The failures a command expects, in one hierarchy, and the exit statuses they end it with.

Every expected failure is a :class:`ProjectError`: its message is the one line the
command prints, its ``exit_status`` the command's status. The commands catch the base
class in one place (:mod:`pyimagesearch.commands.common`); an error class never needs a
command to know it.
"""

from __future__ import annotations

from pathlib import Path

EXIT_OK = 0
EXIT_FAILED = 1             # the command ran and found a problem (--strict, verify_records)
EXIT_ERROR = 2              # bad option, config, data file or busy output folder
EXIT_BUILD_FAILED = 3       # build_imagenet.py: a worker died or hung, the disk filled
EXIT_DIVERGED = 3           # train_*.py: the loss went NaN/inf (the health monitor stopped it)
EXIT_UNREADABLE = 3         # classify_image.py: an image could not be read
EXIT_BELOW_TARGET = 4       # test_*.py --require-rank1: rank-1 below the target
EXIT_NOT_SAVED = 5          # test_*.py: the result could not be saved with the checkpoint
EXIT_PARITY = 5             # export_onnx.py: ONNX output differs from MXNet's
EXIT_TIMEOUT = 124          # launch_distributed.py --timeout, as timeout(1) says it
EXIT_INTERRUPTED = 130      # SIGINT (128 + 2)
EXIT_TERMINATED = 143       # SIGTERM (128 + 15)


class ProjectError(Exception):
    """An expected failure: ``str(error)`` is the line to print, ``exit_status`` the status.

    ``label`` replaces the command's prefix (``[ERROR] ``, ``error: ``) where the line
    is not an error report (a stop by signal, the ``--strict`` verdict).
    """

    exit_status: int = EXIT_ERROR
    label: str | None = None


class ConfigError(ProjectError, ValueError):
    """A config or command-line value is missing, cannot be imported or is not allowed."""


class DatasetError(ProjectError, ValueError):
    """A dataset file is missing, malformed, or does not fit the config or the checkpoint.

    The message names the file (and 1-based ``line``) first; ``reason`` is the rest.
    """

    def __init__(self, message: str, path: str | Path | None = None,
                 line: int | None = None) -> None:
        self.path = None if path is None else str(path)
        self.line = line
        self.reason = message
        where = ""
        if path is not None:
            where = f"{path}, line {line}: " if line is not None else f"{path}: "
        super().__init__(where + message)


class CheckpointError(ProjectError, RuntimeError):
    """A checkpoint is missing, incomplete, corrupt or does not fit the run."""


class LockError(ProjectError, RuntimeError):
    """A folder's lock cannot be taken: another writer holds it, or the file cannot exist."""
