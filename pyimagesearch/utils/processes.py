"""A child process's exit status in words, for the messages that report it."""

from __future__ import annotations

import contextlib
import signal


def describe_returncode(returncode: int | None, remote: bool = False) -> str:
    """``exit status 3``, ``killed by SIGKILL``, ... (a remote process's status is ssh's)."""
    if returncode is None:
        return "still running"
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    if remote and returncode == 255:
        return "exit status 255 (ssh could not connect, or the connection broke)"
    if returncode > 128:
        with contextlib.suppress(ValueError):
            return (f"exit status {returncode} "
                    f"(128 + {signal.Signals(returncode - 128).name})")
    return f"exit status {returncode}"
