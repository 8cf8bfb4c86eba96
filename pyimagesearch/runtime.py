"""Thread settings that MXNet reads once, when it is first imported.

Measured on a 2-core machine (benchmarks/RESULTS.md): with ``OMP_NUM_THREADS`` unset,
MXNet 1.9 runs its operators on max(cores/2 - 1, 1) threads, i.e. one here: CIFAR
ResNet-20 trains at ~590 img/s instead of ~1,000. More than one engine worker thread
(``MXNET_CPU_WORKER_NTHREADS``) makes operators compete for the same cores (134 img/s).
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
"""

from __future__ import annotations

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
