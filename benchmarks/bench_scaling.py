"""Scaling on MXNet's parameter server: the demo's GoogLeNet trained locally and with 1 and
2 dist_sync workers, and the communication share of a step, derived and timed
(benchmarks/README.md, "bench_scaling.py").

    python benchmarks/bench_scaling.py [--epochs 4] [--images 512] [--quick]
"""

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import benchlib
from benchlib import REPO_ROOT, make_training_dataset, spread, summary

from pyimagesearch.distributed import launch
from pyimagesearch.run.checkpoints import read_manifest
from pyimagesearch.run.logs import parse_log

TRAIN_SCRIPT = REPO_ROOT / "train_googlenet.py"
# Runs train_googlenet.py with allreduce_grads and train_epoch timed; writes per-epoch
# records to $BENCH_SCALING_OUT/<pid>.json after every epoch.
INSTRUMENT = '''
import json, os, runpy, sys, time
import mxnet as mx
from mxnet import gluon
from pyimagesearch.training import loop
script, out = sys.argv[1], os.environ["BENCH_SCALING_OUT"]
state, records = {"allreduce": 0.0, "calls": 0}, []
allreduce, train_epoch = gluon.Trainer.allreduce_grads, loop.train_epoch
def timed_allreduce(self):
    mx.nd.waitall()
    tic = time.perf_counter()
    allreduce(self)
    mx.nd.waitall()
    state["allreduce"] += time.perf_counter() - tic
    state["calls"] += 1
def timed_epoch(setup, data_iter, epoch, stop, progress):
    state.update(allreduce=0.0, calls=0)
    tic = time.perf_counter()
    result = train_epoch(setup, data_iter, epoch, stop, progress)
    records.append({"epoch": epoch, "seconds": time.perf_counter() - tic,
                    "allreduce_seconds": state["allreduce"], "steps": state["calls"],
                    "main": setup.is_main})
    with open(os.path.join(out, f"{os.getpid()}.json"), "w") as handle:
        json.dump(records, handle)
    return result
gluon.Trainer.allreduce_grads, loop.train_epoch = timed_allreduce, timed_epoch
sys.argv = [script] + sys.argv[2:]
runpy.run_path(script, run_name="__main__")
'''


def throughput(folder: Path, prefix: str, epochs: int) -> dict[str, Any]:
    """img/s per epoch from worker 0's log and the checkpoints' updates and batch."""
    log = parse_log(folder / "training_0.log")
    identity = read_manifest(folder, prefix, epochs, verify=False)["identity"]
    images = identity["updates_per_epoch"] * identity["batch_size"]
    seconds = [log.epochs[e].time for e in range(1, epochs) if log.epochs.get(e)
               and log.epochs[e].time]
    return {"images_per_epoch": images, "global_batch": identity["batch_size"],
            "updates_per_epoch": identity["updates_per_epoch"],
            "epoch_seconds": seconds, "img_s": summary([images / s for s in seconds])}


def run(config: Path, folder: Path, epochs: int, workers: int, timeout: float,
        env: dict[str, str], instrument: Path | None = None) -> dict[str, Any]:
    """One training: local (``workers`` 0) or dist_sync with 1 server; its throughput, or
    with ``instrument`` the share of ``allreduce_grads`` in the epochs."""
    command = [sys.executable, str(TRAIN_SCRIPT), "--config", str(config), "--checkpoints",
               str(folder), "--prefix", "scale", "--end-epoch", str(epochs)]
    if not workers:
        done = subprocess.run(command, cwd=REPO_ROOT, env=benchlib.child_env(), timeout=timeout,
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"local run exited {done.returncode}: {done.stdout[-800:]}"
                               f"{done.stderr[-800:]}")
        return throughput(folder, "scale", epochs)
    command += ["--kvstore", "dist_sync"]
    env = {"PYTHONPATH": str(REPO_ROOT), **env}
    if instrument is not None:
        records = folder / "allreduce"
        records.mkdir(parents=True)
        command[1:2] = [str(instrument), str(TRAIN_SCRIPT)]
        env["BENCH_SCALING_OUT"] = str(records)
    result = launch(command, workers=workers, servers=1, timeout=timeout, echo=False,
                    env=env, workdir=str(REPO_ROOT))
    if result.returncode != 0:
        raise RuntimeError(f"dist_sync x{workers} failed: {result.message}")
    found = throughput(folder, "scale", epochs)
    if instrument is None:
        return found
    per_worker = [json.loads(p.read_text()) for p in sorted(records.glob("*.json"))]
    epochs_run = [r for worker in per_worker for r in worker if r["epoch"] >= 1]
    shares = [r["allreduce_seconds"] / r["seconds"] for r in epochs_run]
    steps = [1000 * r["allreduce_seconds"] / r["steps"] for r in epochs_run if r["steps"]]
    return {"allreduce_share": summary(shares) if shares else None,
            "allreduce_ms_per_step": summary(steps) if steps else None,
            "workers_reporting": len(per_worker)}


def main(argv: list[str] | None = None) -> int:
    args = benchlib.parser(__doc__, "32 px, 2 epochs, 3 of the 6 runs", epochs=4, images=512,
                           timeout=(900.0, "seconds per run")).parse_args(argv)
    crop, resize, batch = 56, 64, 32
    model: dict[str, Any] = {}
    if args.quick:  # the code paths only: the smallest CIFAR ResNet, 2 tiny epochs
        crop, resize, batch, args.images, args.epochs = 32, 36, 8, 32, 2
        model = {"MODEL": "cifar_resnet", "MODEL_PARAMS": {"depth": 8}}
    classes = batch // 2 + 1  # validation holds classes - 1 images: at least half a batch
    # (name, workers (0: one local process), environment, allreduce timed?)
    plan = [("local", 0, {}, False), ("dist_sync x1", 1, {}, False),
            ("dist_sync x2", 2, {}, False),
            ("dist_sync x2, OMP_NUM_THREADS=1", 2, {"OMP_NUM_THREADS": "1"}, False),
            ("dist_sync x1, allreduce timed", 1, {}, True),
            ("dist_sync x2, allreduce timed", 2, {}, True)]
    if args.quick:  # each launch costs seconds of start-up: one run of each kind
        plan = [plan[0], plan[1], plan[5]]
    runs: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench_scaling_") as scratch_name:
        scratch = Path(scratch_name)
        config = make_training_dataset(
            scratch / "data", images=args.images + classes, classes=classes,
            image_size=resize * 4 // 3 + 8, resize=resize,
            base_config="config.demo_googlenet_config",
            overrides={"INPUT_SIZE": crop, "BATCH_SIZE": batch, "NUM_DEVICES": 1,
                       "LOG_INTERVAL": 1000, "DIST_LR_SCALING": "none", **model})
        instrument = scratch / "instrumented_train.py"
        instrument.write_text(INSTRUMENT)
        for number, (name, workers, env, timed) in enumerate(plan):
            tic = time.perf_counter()
            try:
                runs[name] = run(config, scratch / f"run{number}", args.epochs, workers,
                                 args.timeout, env, instrument if timed else None)
            except Exception as exc:
                runs[name] = {"error": f"{type(exc).__name__}: {exc}"}
            runs[name]["wall_seconds"] = time.perf_counter() - tic
            figure = runs[name].get("img_s") or runs[name].get("allreduce_share")
            print(f"[scaling] {name}: {runs[name].get('error') or spread(figure)}", flush=True)

    def rate(name: str) -> float | None:
        entry = runs.get(name, {}).get("img_s")
        return entry["median"] if entry else None

    local, one, two = rate("local"), rate("dist_sync x1"), rate("dist_sync x2")
    two_single = rate("dist_sync x2, OMP_NUM_THREADS=1")
    best_two = max(filter(None, [two, two_single]), default=None)
    derived = {
        "speedup_2_over_1": two / one if two and one else None,
        "speedup_2_single_thread_over_1": two_single / one if two_single and one else None,
        "best_2_over_local": best_two / local if best_two and local else None,
        "communication_share_1_worker": 1 - one / local if one and local else None,
    }
    print(f"[scaling] {derived}", flush=True)
    benchlib.write_report(args, "scaling.json", {
        "benchmark": "parameter-server scaling", "quick": args.quick,
        "network": model.get("MODEL", "googlenet"), "crop": crop, "batch_per_worker": batch,
        "train_images": args.images, "epochs": args.epochs,
        "measured_epochs": args.epochs - 1, "runs": runs, "derived": derived})
    return 0 if not any("error" in r for r in runs.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
