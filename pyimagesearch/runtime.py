"""Thread settings that MXNet reads once, when it is first imported.

With ``OMP_NUM_THREADS`` unset, MXNet 1.9 runs its operators on max(cores/2 - 1, 1)
threads: on 2 cores that is one, and CIFAR ResNet-20 trains at about 60% of its speed on
both (benchmarks/RESULTS.md). More than one engine worker thread
(``MXNET_CPU_WORKER_NTHREADS``) makes operators compete for the same cores (several times
slower again).
(``ImageRecordIter`` caps its decode threads the same way whatever is exported; the
training iterator gets past that with several iterators, see ``data.iterators``.) So,
unless the user has set them:

- ``OMP_NUM_THREADS`` = the cores this process may run on;
- ``MXNET_CPU_WORKER_NTHREADS`` = 1 (operators in order, each on every core).

Importing any ``pyimagesearch`` module applies them (``pyimagesearch/__init__.py``), which
is early enough for every script here: they import the package before MXNet. Values the
user exported win. The trap to avoid elsewhere: an ``OMP_NUM_THREADS`` exported into
forked data-loader *processes* makes each of them spin that many threads (3.5x slower in
the PyTorch peer); our build workers are spawned and use Pillow/OpenCV, not OpenMP.

``return_large_blocks`` is the other process setting: training calls it so that its heap
does not creep over a long run.
"""

from __future__ import annotations

import ctypes
import os
import sys


def usable_cores() -> int:
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not Linux
        return max(os.cpu_count() or 1, 1)


def configure_threads() -> dict[str, str]:
    """Set the defaults above where unset; return what MXNet will see."""
    defaults = {"OMP_NUM_THREADS": str(usable_cores()), "MXNET_CPU_WORKER_NTHREADS": "1"}
    if "mxnet" not in sys.modules:  # too late otherwise: MXNet read them at import
        for name, value in defaults.items():
            os.environ.setdefault(name, value)
    return {name: os.environ.get(name, "") for name in defaults}


# glibc's default threshold above which malloc maps blocks of their own (M_MMAP_THRESHOLD).
MMAP_THRESHOLD = 128 * 1024
_M_MMAP_THRESHOLD = -3


def return_large_blocks() -> bool:
    """Keep a long-running process's heap from creeping: blocks over 128 KiB go straight
    to the operating system and back.

    glibc raises its mmap threshold every time it frees a mapped block, up to 32 MiB, and
    from then on serves blocks below it from its heaps, which fragment and seldom shrink.
    A training process frees blocks of a few hundred KiB to a few MiB all the time (MXNet's
    and oneDNN's temporaries, checkpoints, evaluation): GoogLeNet at 224 px crept up by
    about 125 MiB from its 3rd epoch to its 12th (``benchmarks/bench_memory.py``, the
    leaking iterators already in processes of their own) and stays flat with this (a
    4 MiB threshold still crept; ``malloc_trim`` once an epoch held it 200 MiB higher).
    Setting the threshold fixes it at its default and stops the raising. Returns False
    where the C library has no ``mallopt`` (not glibc); nothing changes there.
    """
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
