"""Thread defaults: set before MXNet is imported, and never over the user's own values."""

import json
import os
import subprocess
import sys

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
