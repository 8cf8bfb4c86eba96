"""What the benchmark scripts share: spreads, the machine and its thread settings, JSON
output, and a small generated dataset with a training config built on a real one.

Scripts in this folder import it as ``benchlib`` (Python puts a script's folder first on
``sys.path``); ``run_all.py`` runs every script as a subprocess, so each measures in a
fresh process with the environment it reports.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
OUTPUT = BENCH_DIR / "output"
# The scripts import ``pyimagesearch`` after this module, from wherever they were started.
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(1, str(REPO_ROOT))

# Environment variables that decide how many threads do what (and MXNet's engine and
# oneDNN switches): recorded with every result. Every MXNET_*, OMP_*, KMP_*, MKL_*,
# OPENBLAS_*, DNNL_* and ONEDNN_* variable is recorded too, whatever its name.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MXNET_CPU_WORKER_NTHREADS",
                    "MXNET_CPU_PRIORITY_NTHREADS", "MXNET_ENGINE_TYPE", "MKL_NUM_THREADS",
                    "OPENBLAS_NUM_THREADS", "MXNET_MKLDNN_ENABLED", "MXNET_SUBGRAPH_BACKEND")
THREAD_PREFIXES = ("MXNET_", "OMP_", "KMP_", "MKL_", "OPENBLAS_", "DNNL_", "ONEDNN_", "GOMP_")


def summary(values: list[float]) -> dict[str, float]:
    """Median, min and max of a measurement's repeats (and how many there were)."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "repeats": len(values)}


def thread_environment() -> dict[str, str | None]:
    """The thread and engine variables as this process sees them (None: not set)."""
    seen = {name: os.environ.get(name) for name in THREAD_VARIABLES}
    seen.update({k: v for k, v in sorted(os.environ.items()) if k.startswith(THREAD_PREFIXES)})
    return seen


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    """CPU, cores, versions and thread settings of this process (imports MXNet)."""
    import mxnet as mx
    import numpy as np

    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count()
    features = mx.runtime.Features()
    return {
        "cpu": cpu_model(), "cores": cores, "cpu_count": os.cpu_count(),
        "platform": platform.platform(), "python": platform.python_version(),
        "mxnet": mx.__version__, "numpy": np.__version__,
        "mxnet_features": sorted(name for name in features if features.is_enabled(name)),
        "threads": thread_environment(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def write_json(path: Path, report: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return path


def output_path(name: str | None, default: str, quick: bool) -> Path:
    """``name`` (a file name in benchmarks/output, or a path), else the default name."""
    if name:
        return Path(name) if ("/" in name or os.sep in name) else OUTPUT / name
    stem, suffix = default.rsplit(".", 1)
    return OUTPUT / (f"{stem}_quick.{suffix}" if quick else default)


def read_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM (peak RSS) and VmSize of a live process, in KiB, from /proc."""
    values = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM", "VmSize"):
                values[key] = int(rest.split()[0])
    except (OSError, ValueError, IndexError):
        pass
    return values


def child_env(**changes: str | None) -> dict[str, str]:
    """This process's environment with the repository importable and ``changes`` applied
    (None removes a variable)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT),
                                                      env.get("PYTHONPATH")]))
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def run_json_child(argv: list[str], env: dict[str, str], timeout: float) -> dict[str, Any]:
    """Run a child that prints one JSON object as its last stdout line; return it.

    Its stderr passes through (MXNet's warnings); a failure raises with the child's tail.
    """
    done = subprocess.run([sys.executable, *argv], env=env, cwd=REPO_ROOT, timeout=timeout,
                          stdout=subprocess.PIPE, text=True)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"{' '.join(argv)} exited {done.returncode}: "
                           f"{' | '.join(lines[-5:])}")
    return json.loads(lines[-1])


def make_training_dataset(folder: Path, *, images: int, classes: int, image_size: int,
                          resize: int, base_config: str, overrides: dict[str, Any],
                          tree: Path | None = None) -> Path:
    """A built record dataset of photo-like JPEGs and a config for it; returns the config.

    The config starts with ``from <base_config> import *`` (so a real config's network,
    recipe, augmentation, health and thread settings apply), points every path at the
    generated tree under ``folder``, then applies ``overrides``. Images are landscape
    ``image_size`` x 3/4 (every third portrait); ``build_dataset`` (our build path) stores
    them with shorter side ``resize``. The validation split holds ``classes - 1`` images.
    ``tree``: an existing ILSVRC2015 folder to build instead (nothing is generated then).
    """
    from bench_build import write_config, write_tree

    from pyimagesearch.config import load_config
    from pyimagesearch.data.build.builder import build_dataset

    base = tree or folder / "ILSVRC2015"
    if tree is None:
        write_tree(base, images, classes, (image_size, image_size * 3 // 4))
    folder.mkdir(parents=True, exist_ok=True)
    paths = folder / "paths_config.py"
    write_config(paths, base, folder / "out", classes, threads=min(os.cpu_count() or 1, 4))
    config = folder / "bench_config.py"
    lines = [f"from {base_config} import *  # noqa: F403", paths.read_text(),
             f"RESIZE = {resize}"]
    lines += [f"{name} = {value!r}" for name, value in overrides.items()]
    config.write_text("\n".join(lines) + "\n")
    build_dataset(load_config(str(config)))
    return config


def markdown_table(header: list[str], rows: list[list[str]], left: int = 1) -> list[str]:
    """A Markdown table's lines; the first ``left`` columns are text, the others figures."""
    align = ["---"] * left + ["---:"] * (len(header) - left)
    return ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |",
            *("| " + " | ".join(row) + " |" for row in rows), ""]
