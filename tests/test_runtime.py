"""Process settings: thread defaults set before MXNet is imported (never over the user's own
values), and a heap that gives large blocks back."""

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO_ROOT

PROBE = ("import json, os, pyimagesearch, mxnet; "
         "print(json.dumps({k: os.environ.get(k) for k in "
         "('OMP_NUM_THREADS', 'MXNET_CPU_WORKER_NTHREADS')}))")


def probe(**env):
    clean = {k: v for k, v in os.environ.items()
             if k not in ("OMP_NUM_THREADS", "MXNET_CPU_WORKER_NTHREADS")}
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=REPO_ROOT, check=True,
                            capture_output=True, text=True, env={**clean, **env})
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_importing_the_package_sets_every_core_and_one_engine_worker():
    assert probe() == {"OMP_NUM_THREADS": str(len(os.sched_getaffinity(0))),
                       "MXNET_CPU_WORKER_NTHREADS": "1"}


def test_values_the_user_exported_win():
    assert probe(OMP_NUM_THREADS="1", MXNET_CPU_WORKER_NTHREADS="3") == \
        {"OMP_NUM_THREADS": "1", "MXNET_CPU_WORKER_NTHREADS": "3"}


HEAP_PROBE = """
import ctypes, sys
import numpy as np
from pyimagesearch.runtime import return_large_blocks

def rss_mib():
    with open("/proc/self/status") as status:
        return next(int(l.split()[1]) for l in status if l.startswith("VmRSS")) / 1024

if sys.argv[1] == "on":
    assert return_large_blocks()
big = np.ones(16 << 20, np.uint8)
del big  # a mapped block freed: glibc raises its threshold past the blocks below
before = rss_mib()
blocks, pins = [], []
for _ in range(100):
    blocks.append(np.ones(1 << 20, np.uint8))
    pins.append(ctypes.create_string_buffer(4096))  # small blocks that stay, in between
del blocks
print(round(rss_mib() - before))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc and /proc")
def test_large_blocks_go_back_to_the_system_once_freed():
    def kept_mib(mode):
        result = subprocess.run([sys.executable, "-c", HEAP_PROBE, mode], cwd=REPO_ROOT,
                                check=True, capture_output=True, text=True,
                                env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
        return int(result.stdout.strip().splitlines()[-1])

    assert kept_mib("off") >= 80  # glibc's default: 100 freed MiB stay in the process
    assert kept_mib("on") <= 10
