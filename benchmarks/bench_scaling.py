"""Scaling on MXNet's parameter server: 1 vs 2 CPU workers of one training run, here.

    python benchmarks/bench_scaling.py              # GoogLeNet at 56 px (the demo's network)
    python benchmarks/bench_scaling.py --quick      # a smoke run (CI)

The same training command (``train_googlenet.py`` with a config that imports
``config.demo_googlenet_config`` and points at a generated record dataset) runs:

* ``local``: one process, no parameter server (the config's kvstore);
* ``dist_sync x1``: ``launch_distributed.py``'s ``launch``: 1 scheduler, 1 server,
  1 worker, ``--kvstore dist_sync``;
* ``dist_sync x2``: the same with 2 workers (each reads half the records; the global
  batch doubles), once with the inherited thread settings and once with
  ``OMP_NUM_THREADS=1`` in every process (two workers on two cores);
* the two ``dist_sync`` runs again with ``trainer.allreduce_grads`` timed inside each
  worker (``mx.nd.waitall()`` before it, so the step's backward is done, and after it,
  so the summed gradients have arrived): the communication share of a step measured
  directly, including any wait for the other worker. Those runs are slower (the
  barriers stop backward and communication from overlapping) and give no img/s.

img/s of a run = updates per epoch x global batch / the epoch's ``Time cost`` (worker
0's log; the median over epochs after the first, which builds graphs and memory pools).
The communication share is also derived without instrumentation: a 1-worker dist_sync
step does what a local step does plus push, server sum and pull, so
share = 1 - img/s(dist_sync x1) / img/s(local). Writes benchmarks/output/scaling.json
(scaling_quick.json with --quick).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchlib import (
    REPO_ROOT,
    child_env,
    machine,
    make_training_dataset,
    output_path,
    summary,
    write_json,
)

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
allreduce = gluon.Trainer.allreduce_grads
train_epoch = loop.train_epoch


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


gluon.Trainer.allreduce_grads = timed_allreduce
loop.train_epoch = timed_epoch
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


def run_local(config: Path, folder: Path, epochs: int, timeout: float) -> dict[str, Any]:
    command = [sys.executable, str(TRAIN_SCRIPT), "--config", str(config), "--checkpoints",
               str(folder), "--prefix", "scale", "--end-epoch", str(epochs)]
    done = subprocess.run(command, cwd=REPO_ROOT, env=child_env(), timeout=timeout,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"local run exited {done.returncode}: {done.stdout[-800:]}"
                           f"{done.stderr[-800:]}")
    return throughput(folder, "scale", epochs)


def run_dist(config: Path, folder: Path, epochs: int, workers: int, timeout: float,
             env: dict[str, str], instrument: Path | None = None) -> dict[str, Any]:
    command = [sys.executable, str(TRAIN_SCRIPT), "--config", str(config), "--checkpoints",
               str(folder), "--prefix", "scale", "--end-epoch", str(epochs),
               "--kvstore", "dist_sync"]
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
    if instrument is not None:
        per_worker = [json.loads(p.read_text()) for p in sorted(records.glob("*.json"))]
        shares = [r["allreduce_seconds"] / r["seconds"]
                  for worker in per_worker for r in worker if r["epoch"] >= 1]
        steps = [r["allreduce_seconds"] / r["steps"]
                 for worker in per_worker for r in worker if r["epoch"] >= 1 and r["steps"]]
        found = {"allreduce_share": summary(shares) if shares else None,
                 "allreduce_ms_per_step": summary([1000 * s for s in steps]) if steps else None,
                 "workers_reporting": len(per_worker)}
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: 32 px, 2 epochs, 3 of the 6 runs")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--images", type=int, default=512, help="training images")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per run")
    parser.add_argument("--output", default=None)
    args = parser.parse_args(argv)
    crop, resize, batch = 56, 64, 32
    model: dict[str, Any] = {}
    if args.quick:  # the code paths only: the smallest CIFAR ResNet, 2 tiny epochs
        crop, resize, batch, args.images, args.epochs = 32, 36, 8, 32, 2
        model = {"MODEL": "cifar_resnet", "MODEL_PARAMS": {"depth": 8}}
    classes = batch // 2 + 1  # validation holds classes - 1 images: at least half a batch
    runs: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench_scaling_") as scratch:
        scratch = Path(scratch)
        config = make_training_dataset(
            scratch / "data", images=args.images + classes, classes=classes,
            image_size=resize * 4 // 3 + 8, resize=resize,
            base_config="config.demo_googlenet_config",
            overrides={"INPUT_SIZE": crop, "BATCH_SIZE": batch, "NUM_DEVICES": 1,
                       "LOG_INTERVAL": 1000, "DIST_LR_SCALING": "none", **model})
        instrument = scratch / "instrumented_train.py"
        instrument.write_text(INSTRUMENT)
        plan = [
            ("local", lambda f: run_local(config, f, args.epochs, args.timeout)),
            ("dist_sync x1", lambda f: run_dist(config, f, args.epochs, 1, args.timeout, {})),
            ("dist_sync x2", lambda f: run_dist(config, f, args.epochs, 2, args.timeout, {})),
            ("dist_sync x2, OMP_NUM_THREADS=1",
             lambda f: run_dist(config, f, args.epochs, 2, args.timeout,
                                {"OMP_NUM_THREADS": "1"})),
            ("dist_sync x1, allreduce timed",
             lambda f: run_dist(config, f, args.epochs, 1, args.timeout, {}, instrument)),
            ("dist_sync x2, allreduce timed",
             lambda f: run_dist(config, f, args.epochs, 2, args.timeout, {}, instrument)),
        ]
        if args.quick:  # each launch costs seconds of start-up: one run of each kind
            plan = [plan[0], plan[1], plan[5]]
        for number, (name, run) in enumerate(plan):
            tic = time.perf_counter()
            try:
                runs[name] = run(scratch / f"run{number}")
            except Exception as exc:
                runs[name] = {"error": f"{type(exc).__name__}: {exc}"}
            runs[name]["wall_seconds"] = time.perf_counter() - tic
            figure = runs[name].get("img_s") or runs[name].get("allreduce_share")
            print(f"[scaling] {name}: " + (
                runs[name]["error"] if "error" in runs[name] else
                f"{figure['median']:.1f} img/s" if "img_s" in runs[name] else
                f"allreduce {100 * figure['median']:.1f}% of the epoch" if figure else
                "no figure"), flush=True)

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
    report = {"benchmark": "parameter-server scaling", "quick": args.quick,
              "network": model.get("MODEL", "googlenet"), "crop": crop, "batch_per_worker": batch,
              "train_images": args.images, "epochs": args.epochs,
              "measured_epochs": args.epochs - 1, "runs": runs, "derived": derived,
              "machine": machine()}
    path = write_json(output_path(args.output, "scaling.json", args.quick), report)
    for key, value in derived.items():
        print(f"[scaling] {key}: " + (f"{value:.3f}" if value is not None else "n/a"))
    print(f"[scaling] wrote {path}", flush=True)
    return 0 if not any("error" in r for r in runs.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
