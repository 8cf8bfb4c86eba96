"""Process settings read once at start-up: MXNet's threads, the heap, child exit statuses.

Why these defaults: docs/design.md, "Threads and memory".
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys

# Set by data.decoder.start_server (to its pid) for the fork server it starts: there SIGINT
# and SIGTERM are ignored from before MXNet's import (seconds), and what it forks inherits it.
DECODING_SERVER_VARIABLE = "PYIMAGESEARCH_DECODING_SERVER"
SERVER_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def ignore_signals_in_decoding_server() -> None:
    """In the decoding processes' fork server only: a Ctrl-C to the process group is the
    trainer's to handle (it stops them), never theirs to die of. The server starts with
    these signals blocked (data.decoder.start_server): ignored first, then unblocked, one
    that came meanwhile is dropped."""
    if os.environ.pop(DECODING_SERVER_VARIABLE, None) == str(os.getppid()):
        for signum in SERVER_SIGNALS:
            signal.signal(signum, signal.SIG_IGN)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, SERVER_SIGNALS)


def usable_cores() -> int:
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not Linux
        return max(os.cpu_count() or 1, 1)


def configure_threads() -> dict[str, str]:
    """Where unset: ``OMP_NUM_THREADS`` = the usable cores, ``MXNET_CPU_WORKER_NTHREADS`` = 1.

    Returns what MXNet will see.
    """
    defaults = {"OMP_NUM_THREADS": str(usable_cores()), "MXNET_CPU_WORKER_NTHREADS": "1"}
    if "mxnet" not in sys.modules:  # too late otherwise: MXNet read them at import
        for name, value in defaults.items():
            os.environ.setdefault(name, value)
    return {name: os.environ.get(name, "") for name in defaults}


# glibc's default threshold above which malloc maps blocks of their own (M_MMAP_THRESHOLD).
MMAP_THRESHOLD = 128 * 1024
_M_MMAP_THRESHOLD = -3


def return_large_blocks() -> bool:
    """Serve blocks over 128 KiB straight from the OS, so a long run's heap does not creep.

    glibc would otherwise raise its mmap threshold on every free of a mapped block and
    serve MXNet's MiB-sized temporaries from heaps that seldom shrink. Returns False where
    the C library has no ``mallopt`` (not glibc).
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1


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
