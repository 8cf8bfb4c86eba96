"""Memory of a real training run: peak RSS, and RSS epoch after epoch (it must not grow).

    python benchmarks/bench_memory.py                   # GoogLeNet 224 b32, 20 epochs;
                                                        # Inception-ResNet-v2 299 b16, 2
    python benchmarks/bench_memory.py --networks googlenet --epochs 20
    python benchmarks/bench_memory.py --quick           # a smoke run (CI)

Each network trains through ``train_googlenet.py`` (the CLI over
``pyimagesearch.training.experiment.train``: records checked, network built and
hybridized, validation, a checkpoint every epoch) on a small generated record dataset, in
its own process, with a config that imports the network's real config
(``config.imagenet_googlenet_config``, ``config.imagenet_inception_resnet_v2_config``)
and changes only paths, the batch, one device and the epoch count. This script reads the
run's console as it comes; at every ``Epoch[N] Time cost`` line (the end of an epoch's
training) it reads VmRSS and VmHWM from ``/proc/<pid>/status``, and the proportional set
size (PSS: shared pages split between their users) of the trainer's descendants: the
fork server and the processes that decode each epoch (``pyimagesearch.data.decoder``).
Peak RSS is the child's ``ru_maxrss`` from ``wait4`` (the kernel's high-water mark of its
resident memory). Growth compares RSS after the 3rd epoch (the network's own buffers have
settled by then) with RSS after the last one.
Writes benchmarks/output/memory.json (memory_quick.json with --quick).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchlib import (
    REPO_ROOT,
    child_env,
    machine,
    make_training_dataset,
    output_path,
    read_status,
    write_json,
)

from pyimagesearch.run.logs import TIME_COST_LINE


@dataclass(frozen=True)
class Run:
    """One network's memory run."""

    base_config: str
    crop: int
    resize: int
    batch: int
    train_images: int
    epochs: int


RUNS = {
    "googlenet": Run("config.imagenet_googlenet_config", 224, 256, 32, 64, 20),
    "inception_resnet_v2": Run("config.imagenet_inception_resnet_v2_config", 299, 328, 16,
                               32, 2),
}
QUICK = {"googlenet": Run("config.imagenet_googlenet_config", 32, 36, 8, 16, 4)}
GROWTH_FROM = 3  # epochs counted from 1: RSS after the 3rd epoch -> after the last


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, their children, ...), from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            # "pid (comm) state ppid ...": comm may hold spaces, so split after its ")"
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            pass
    found, todo = [], [pid]
    while todo:
        below = children.get(todo.pop(), [])
        found += below
        todo += below
    return found


def pss_mib(pid: int) -> float:
    """Proportional set size of a live process (0 if it is gone or unreadable)."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0.0


def measure(name: str, run: Run, folder: Path, timeout: float) -> dict[str, Any]:
    # The generated validation split holds classes - 1 images: at least half a batch, as
    # the iterator needs. One test image per class is carved out of the training images.
    classes = run.batch // 2 + 1
    config = make_training_dataset(
        folder / name, images=run.train_images + classes, classes=classes,
        image_size=max(run.resize * 4 // 3 + 8, 64), resize=run.resize,
        base_config=run.base_config,
        overrides={"INPUT_SIZE": run.crop, "BATCH_SIZE": run.batch, "NUM_DEVICES": 1,
                   "LOG_INTERVAL": 1})
    command = [sys.executable, str(REPO_ROOT / "train_googlenet.py"), "--config", str(config),
               "--checkpoints", str(folder / name / "run"), "--prefix", name,
               "--end-epoch", str(run.epochs)]
    tic = time.perf_counter()
    child = subprocess.Popen(command, cwd=REPO_ROOT, env=child_env(), text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    epochs, tail = [], []
    watchdog = threading.Timer(timeout, child.kill)
    watchdog.start()
    assert child.stdout is not None
    for line in child.stdout:
        tail = [*tail[-19:], line.rstrip()]
        if (match := TIME_COST_LINE.search(line)) is not None:
            status = read_status(child.pid)
            helpers = descendants(child.pid)
            epochs.append({"epoch": int(match.group(1)), "seconds": float(match.group(2)),
                           "rss_mib": status.get("VmRSS", 0) / 1024,
                           "hwm_mib": status.get("VmHWM", 0) / 1024,
                           "pss_mib": pss_mib(child.pid),
                           "helper_processes": len(helpers),
                           "helpers_pss_mib": sum(pss_mib(p) for p in helpers)})
            print(f"[memory] {name} epoch {len(epochs)}/{run.epochs}: "
                  f"RSS {epochs[-1]['rss_mib']:.0f} MiB; {len(helpers)} helper processes, "
                  f"PSS {epochs[-1]['helpers_pss_mib']:.0f} MiB", flush=True)
    _, status, usage = os.wait4(child.pid, 0)
    watchdog.cancel()
    child.returncode = os.waitstatus_to_exitcode(status)
    result: dict[str, Any] = {
        "network": name, "config": run.base_config, "crop": run.crop, "batch": run.batch,
        "train_images": run.train_images, "epochs_asked": run.epochs,
        "returncode": child.returncode, "seconds": time.perf_counter() - tic,
        "peak_rss_mib": usage.ru_maxrss / 1024, "rss_by_epoch": epochs}
    if child.returncode != 0:
        result["error"] = " | ".join(tail[-8:])
    if len(epochs) > GROWTH_FROM:
        first, last = epochs[GROWTH_FROM - 1], epochs[-1]
        result["growth"] = {
            "from_epoch": GROWTH_FROM, "to_epoch": len(epochs),
            "rss_mib": [first["rss_mib"], last["rss_mib"]],
            "mib": last["rss_mib"] - first["rss_mib"],
            "fraction": (last["rss_mib"] - first["rss_mib"]) / first["rss_mib"],
            # the whole run: the trainer and its decoding processes, shared pages split
            "with_helpers_pss_mib": [first["pss_mib"] + first["helpers_pss_mib"],
                                     last["pss_mib"] + last["helpers_pss_mib"]]}
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", default=",".join(RUNS),
                        help=f"comma-separated, from: {', '.join(RUNS)}")
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs of every run (default: 20 for GoogLeNet, 2 for IRv2)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 32 px, 4 epochs")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--output", default=None)
    args = parser.parse_args(argv)
    table = QUICK if args.quick else RUNS
    names = [n.strip() for n in args.networks.split(",") if n.strip() in table]
    if not names:
        parser.error(f"no known network in {args.networks!r}; known: {', '.join(table)}")
    results = []
    with tempfile.TemporaryDirectory(prefix="bench_memory_") as scratch:
        for name in names:
            run = table[name]
            if args.epochs:
                run = Run(**{**run.__dict__, "epochs": args.epochs})
            results.append(measure(name, run, Path(scratch), args.timeout))
            r = results[-1]
            growth = r.get("growth")
            print(f"[memory] {name} {r['crop']} px, batch {r['batch']}: peak RSS "
                  f"{r['peak_rss_mib']:.0f} MiB"
                  + (f"; RSS after epoch {growth['from_epoch']} {growth['rss_mib'][0]:.0f} MiB, "
                     f"after epoch {growth['to_epoch']} {growth['rss_mib'][1]:.0f} MiB "
                     f"({growth['mib']:+.1f} MiB); with the decoding processes (PSS) "
                     f"{growth['with_helpers_pss_mib'][0]:.0f} -> "
                     f"{growth['with_helpers_pss_mib'][1]:.0f} MiB" if growth else "")
                  + (f"; FAILED: {r['error']}" if "error" in r else ""), flush=True)
    report = {"benchmark": "training memory", "quick": args.quick, "results": results,
              "machine": machine()}
    path = write_json(output_path(args.output, "memory.json", args.quick), report)
    print(f"[memory] wrote {path}", flush=True)
    return 0 if all(r["returncode"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
