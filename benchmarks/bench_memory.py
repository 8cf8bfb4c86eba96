"""Memory of a real training run: peak RSS, and RSS epoch after epoch (it must stay flat).
Each network trains through ``train_googlenet.py`` on a generated dataset with a config
built on its real one (benchmarks/README.md, "bench_memory.py").

    python benchmarks/bench_memory.py [--networks googlenet,inception_resnet_v2] [--epochs N]
"""

import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from benchlib import REPO_ROOT, child_env, make_training_dataset, parser, write_report

from pyimagesearch.run.logs import TIME_COST_LINE


@dataclass(frozen=True)
class Run:
    base_config: str
    crop: int
    resize: int
    batch: int
    train_images: int
    epochs: int


GOOGLENET, IRV2 = "config.imagenet_googlenet_config", "config.imagenet_inception_resnet_v2_config"
RUNS = {"googlenet": Run(GOOGLENET, 224, 256, 32, 64, 20),
        "inception_resnet_v2": Run(IRV2, 299, 328, 16, 32, 2)}
QUICK = {"googlenet": Run(GOOGLENET, 32, 36, 8, 16, 4)}
GROWTH_FROM = 3  # epochs counted from 1: RSS after the 3rd epoch -> after the last


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (children, their children, ...), from /proc."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:  # "pid (comm) state ppid ...": comm may hold spaces, so split after its ")"
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


def proc_mib(pid: int, file: str, key: str) -> float:
    """A ``key: N kB`` line of /proc/<pid>/<file> in MiB (0 when the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/{file}").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0.0


def measure(name: str, run: Run, folder: Path, timeout: float) -> dict[str, Any]:
    # The validation split holds classes - 1 images: at least half a batch, as the
    # iterator needs. One test image per class is carved out of the training images.
    classes = run.batch // 2 + 1
    config = make_training_dataset(
        folder / name, images=run.train_images + classes, classes=classes,
        image_size=max(run.resize * 4 // 3 + 8, 64), resize=run.resize,
        base_config=run.base_config, overrides={"INPUT_SIZE": run.crop, "BATCH_SIZE": run.batch,
                                                "NUM_DEVICES": 1, "LOG_INTERVAL": 1})
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
    for line in child.stdout:  # at the end of each epoch's training: the memory of now
        tail = [*tail[-19:], line.rstrip()]
        if (match := TIME_COST_LINE.search(line)) is not None:
            helpers = descendants(child.pid)
            epochs.append({"epoch": int(match.group(1)), "seconds": float(match.group(2)),
                           "rss_mib": proc_mib(child.pid, "status", "VmRSS"),
                           "hwm_mib": proc_mib(child.pid, "status", "VmHWM"),
                           "pss_mib": proc_mib(child.pid, "smaps_rollup", "Pss"),
                           "helper_processes": len(helpers),
                           "helpers_pss_mib": sum(proc_mib(p, "smaps_rollup", "Pss")
                                                  for p in helpers)})
            print(f"[memory] {name} epoch {len(epochs)}/{run.epochs}: RSS "
                  f"{epochs[-1]['rss_mib']:.0f} MiB; {len(helpers)} helper processes, PSS "
                  f"{epochs[-1]['helpers_pss_mib']:.0f} MiB", flush=True)
    _, status, usage = os.wait4(child.pid, 0)  # ru_maxrss: the child's peak RSS
    watchdog.cancel()
    code = os.waitstatus_to_exitcode(status)
    result: dict[str, Any] = {
        "network": name, "config": run.base_config, "crop": run.crop, "batch": run.batch,
        "train_images": run.train_images, "epochs_asked": run.epochs, "returncode": code,
        "seconds": time.perf_counter() - tic, "peak_rss_mib": usage.ru_maxrss / 1024,
        "rss_by_epoch": epochs}
    if code != 0:
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
    print(f"[memory] {name}: peak RSS {result['peak_rss_mib']:.0f} MiB; growth "
          f"{result.get('growth', {}).get('mib')} MiB; {result.get('error', 'ok')}", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    cli = parser(__doc__, "32 px, 4 epochs", networks=",".join(RUNS), timeout=1800.0,
                 epochs=(int, "epochs of every run (default 20, IRv2 2)"))
    args = cli.parse_args(argv)
    table = QUICK if args.quick else RUNS
    if not (chosen := [n.strip() for n in args.networks.split(",") if n.strip() in table]):
        cli.error(f"no known network in {args.networks!r}; known: {', '.join(table)}")
    with tempfile.TemporaryDirectory(prefix="bench_memory_") as scratch:
        results = [measure(name, replace(table[name], epochs=args.epochs or table[name].epochs),
                           Path(scratch), args.timeout) for name in chosen]
    write_report(args, "memory.json", {"benchmark": "training memory", "quick": args.quick,
                                       "results": results})
    return 0 if all(r["returncode"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
