"""Whole training loop vs the bare step, per network, and what the health monitor costs.

The bare step is forward + backward + update on one batch already in memory, which is
all the device must do. The loop is ``train_epoch`` over real records (decode and
augmentation by ``ImageRecordIter``, split over contexts, metrics, log lines) plus the
epoch's checkpoint. Their ratio is the loop's overhead; the target is >= 0.95.

    python benchmarks/bench_training.py                       # every network below
    python benchmarks/bench_training.py --networks inception_resnet_v2 --health
    python benchmarks/bench_training.py --quick               # a smoke run (CI): tiny sizes

Networks (input px, batch): googlenet (224, 32), googlenet_56 (the demo's 56, 32),
inception_resnet_v2 (the released 10/20/10 blocks at 299, 16), resnet20 / resnet56 /
resnet110 (CIFAR, 32, 128, through the registry's ``cifar_resnet``).

``--health`` adds, per network: the time of one health check (loss, gradient norm, the
inference pass up to global pooling) after a real step, its cost at the monitor's default
interval as a fraction of step time, and the loop with the monitor against the loop
without (alternated; with fewer batches per epoch than the default interval the monitor
runs once per epoch there, which overstates its cost).

Measurements alternate bare and loop repeats so that drift on a shared machine hits both;
every figure is the median with its min and max. Nothing here asserts a timing. Writes
benchmarks/output/training.json (training_quick.json with --quick, or --output NAME).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import cv2
import mxnet as mx
import numpy as np
from mxnet import autograd, gluon

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyimagesearch.data.iterators import DatasetInfo, RecordSplit, training_iterator
from pyimagesearch.nn import count_trainable_parameters, get_model
from pyimagesearch.training import recipes
from pyimagesearch.training.checkpoints import save_checkpoint
from pyimagesearch.training.health import HealthMonitor, HealthSettings
from pyimagesearch.training.logs import TrainingLog
from pyimagesearch.training.loop import (
    EpochProgress,
    StepContext,
    StopFlag,
    TrainingSetup,
    train_epoch,
)
from pyimagesearch.training.optimizers import create_optimizer

OUTPUT = Path(__file__).resolve().parent / "output"
BOOK_AUGMENTATION = {"rand_crop": True, "rand_mirror": True, "max_rotate_angle": 15,
                     "max_shear_ratio": 0.1}
CIFAR_AUGMENTATION = {"rand_crop": True, "rand_mirror": True, "pad": 4}


@dataclass(frozen=True)
class Case:
    """One network as benchmarked: registry name and arguments, sizes, images per epoch."""

    model: str
    size: int
    batch: int
    images: int
    stored: int
    classes: int = 1000
    params: dict[str, Any] = field(default_factory=dict)
    augmentation: dict[str, Any] = field(default_factory=lambda: dict(BOOK_AUGMENTATION))


NETWORKS = {
    "googlenet": Case("googlenet", 224, 32, 320, 256),
    "googlenet_56": Case("googlenet", 56, 32, 1280, 64),
    # The figure: the released 10/20/10 layout at 299 px (records at 328). About
    # 1-2 images/s on 2 CPU cores, so few images.
    "inception_resnet_v2": Case("inception_resnet_v2", 299, 16, 32, 328,
                                params={"blocks": (10, 20, 10)}),
    "resnet20": Case("cifar_resnet", 32, 128, 1280, 32, 10, {"depth": 20}, CIFAR_AUGMENTATION),
    "resnet56": Case("cifar_resnet", 32, 128, 1280, 32, 10, {"depth": 56}, CIFAR_AUGMENTATION),
    "resnet110": Case("cifar_resnet", 32, 128, 1280, 32, 10, {"depth": 110},
                      CIFAR_AUGMENTATION),
}
DEFAULT_NETWORKS = "googlenet,inception_resnet_v2,resnet20,resnet56,resnet110"


def quick(case: Case) -> Case:
    """A smoke-run version of a case: the smallest input the network takes, a few images."""
    size = 75 if case.model == "inception_resnet_v2" else 32
    params = {"blocks": (1, 1, 1)} if case.model == "inception_resnet_v2" else case.params
    return replace(case, size=size, stored=size + size // 7, batch=8, images=16, params=params)


def write_records(folder: Path, count: int, size: int, classes: int) -> RecordSplit:
    """Photo-like JPEGs (smooth gradients plus noise) so decode cost is realistic."""
    rng = np.random.RandomState(0)
    rec_path, idx_path = folder / "train.rec", folder / "train.idx"
    writer = mx.recordio.MXIndexedRecordIO(str(idx_path), str(rec_path), "w")
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    for index in range(count):
        base = rng.uniform(0, 255, 3)
        image = np.stack([base[c] * (0.5 + 0.5 * np.sin(6 * xx * (c + 1) + 4 * yy))
                          for c in range(3)], axis=-1)
        image = cv2.GaussianBlur(image + rng.normal(0, 20, image.shape), (5, 5), 0)
        header = mx.recordio.IRHeader(0, float(index % classes), index, 0)
        writer.write_idx(index, mx.recordio.pack_img(header, np.clip(image, 0, 255)
                                                      .astype(np.uint8), quality=95))
    writer.close()
    return RecordSplit(str(rec_path), str(idx_path), count)


def make_setup(case: Case, folder: Path, updates_per_epoch: int) -> TrainingSetup:
    mx.random.seed(0)
    net = get_model(case.model, num_classes=case.classes, **case.params)
    net.initialize(mx.init.Xavier(), ctx=[mx.cpu()])
    net.hybridize(static_alloc=True, static_shape=True)
    trainer = gluon.Trainer(net.collect_params(),
                            create_optimizer(recipes.BOOK_GOOGLENET_SGD, updates_per_epoch),
                            update_on_kvstore=False)
    log = TrainingLog(folder / f"training_{case.size}_{time.time_ns()}.log", console=False)
    return TrainingSetup(net=net, trainer=trainer, contexts=[mx.cpu()], batch_size=case.batch,
                         log=log, log_interval=10, seed=0)


def in_memory_batch(case: Case) -> tuple[mx.nd.NDArray, mx.nd.NDArray]:
    data = mx.nd.random.uniform(-1, 1, shape=(case.batch, 3, case.size, case.size))
    return data, mx.nd.array(np.arange(case.batch) % case.classes)


def one_step(setup: TrainingSetup, data: mx.nd.NDArray, label: mx.nd.NDArray) -> mx.nd.NDArray:
    with autograd.record():
        loss = setup.loss_fn(setup.net(data), label)
    loss.backward()
    setup.trainer.step(data.shape[0])
    return loss


def bare_step(setup: TrainingSetup, case: Case, steps: int) -> float:
    """Images per second of forward+backward+update on one in-memory batch."""
    data, label = in_memory_batch(case)
    one_step(setup, data, label).wait_to_read()  # warm-up: graph building, memory planning
    mx.nd.waitall()
    tic = time.perf_counter()
    for _ in range(steps):
        one_step(setup, data, label)
    mx.nd.waitall()
    return steps * case.batch / (time.perf_counter() - tic)


def whole_loop(setup: TrainingSetup, config, info: DatasetInfo, batch: int, epoch: int,
               folder: Path) -> float:
    """Images per second of one epoch of ``train_epoch`` plus its checkpoint."""
    data_iter = training_iterator(config, info, batch, epoch, seed=0)
    tic = time.perf_counter()
    progress = EpochProgress(epoch)
    train_epoch(setup, data_iter, epoch, StopFlag(), progress)
    save_checkpoint(setup.net, setup.trainer, folder, "bench", epoch + 1, {})
    return progress.samples / (time.perf_counter() - tic)


def health_check_seconds(setup: TrainingSetup, case: Case, repeats: int) -> list[float]:
    """Seconds of one health check after a real step, the step itself finished first."""
    data, label = in_memory_batch(case)
    monitor = HealthMonitor()
    loss = one_step(setup, data, label)
    step = StepContext(0, 0, setup.net, setup.trainer, [data], [loss], setup.log)
    monitor.observe(step)  # first call builds the inference graphs
    times = []
    for _ in range(repeats):
        mx.nd.waitall()
        tic = time.perf_counter()
        monitor.observe(step)
        times.append(time.perf_counter() - tic)
    return times


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "repeats": len(values)}


def measure(name: str, case: Case, repeats: int, health: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        info = DatasetInfo(splits={"train": write_records(folder, case.images, case.stored,
                                                          case.classes)},
                           mean={"R": 123.68, "G": 116.78, "B": 103.94},
                           image_size=case.stored, manifest_file="", manifest={})
        config = SimpleNamespace(INPUT_SIZE=case.size, DECODE_THREADS=2,
                                 AUGMENTATION=case.augmentation)
        steps = case.images // case.batch
        setup = make_setup(case, folder, steps)
        # The monitor at its default interval, or once per epoch where an epoch is shorter.
        monitor = HealthMonitor(HealthSettings(interval=min(HealthSettings().interval, steps)))
        # Warm the loop path too (iterator start, checkpoint code, the monitor's inference
        # graphs) before timing.
        setup.observers = [monitor] if health else []
        whole_loop(setup, config, info, case.batch, 0, folder)
        bare, loop, watched = [], [], []
        for repeat in range(repeats):
            bare.append(bare_step(setup, case, steps))
            setup.observers = []
            loop.append(whole_loop(setup, config, info, case.batch, repeat + 1, folder))
            if health:
                setup.observers = [monitor]
                watched.append(whole_loop(setup, config, info, case.batch, repeat + 1, folder))
        result = {"network": name, "model": case.model, "model_params": case.params,
                  "input": case.size, "batch": case.batch, "images_per_epoch": case.images,
                  "parameters": count_trainable_parameters(setup.net),
                  "bare_step_img_s": summary(bare), "loop_img_s": summary(loop),
                  "loop_over_bare": summary([lp / bs for lp, bs in zip(loop, bare)])}
        if health:
            checks = health_check_seconds(setup, case, max(repeats, 3))
            step_seconds = case.batch / statistics.median(bare)
            default = HealthSettings().interval
            result["health"] = {
                "default_interval": default,
                "check_seconds": summary(checks),
                "step_seconds": step_seconds,
                "cost_at_default_interval": statistics.median(checks) / (default * step_seconds),
                "ab_interval": monitor.interval,
                "loop_with_health_img_s": summary(watched),
                "with_over_without": summary([w / lp for w, lp in zip(watched, loop)]),
            }
        setup.log.close()
        return result


def report_line(r: dict[str, Any]) -> str:
    line = (f"{r['network']} {r['input']} px, batch {r['batch']}: bare step "
            f"{r['bare_step_img_s']['median']:.2f} img/s, whole loop "
            f"{r['loop_img_s']['median']:.2f} img/s, loop/bare "
            f"{r['loop_over_bare']['median']:.3f} "
            f"(min {r['loop_over_bare']['min']:.3f}, max {r['loop_over_bare']['max']:.3f})")
    if "health" in r:
        h = r["health"]
        line += (f"\n  health check {1000 * h['check_seconds']['median']:.1f} ms vs step "
                 f"{1000 * h['step_seconds']:.1f} ms: {100 * h['cost_at_default_interval']:.3f}% "
                 f"of step time at interval {h['default_interval']}; loop with/without "
                 f"(check every {h['ab_interval']} batches) "
                 f"{h['with_over_without']['median']:.3f} "
                 f"(min {h['with_over_without']['min']:.3f}, "
                 f"max {h['with_over_without']['max']:.3f})")
    return line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--networks", default=DEFAULT_NETWORKS,
                        help=f"comma-separated, from: {', '.join(NETWORKS)} "
                             f"(default {DEFAULT_NETWORKS})")
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny sizes")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--images", type=int, default=None,
                        help="images per timed epoch (default: per network)")
    parser.add_argument("--health", action="store_true",
                        help="also measure the health monitor's cost")
    parser.add_argument("--output", default=None,
                        help="JSON file name in benchmarks/output (default training.json, "
                             "training_quick.json with --quick)")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.networks.split(",") if n.strip()]
    unknown = [n for n in names if n not in NETWORKS]
    if unknown:
        parser.error(f"unknown networks {unknown}; known: {', '.join(NETWORKS)}")
    repeats = 1 if args.quick else args.repeats
    results = []
    for name in names:
        case = quick(NETWORKS[name]) if args.quick else NETWORKS[name]
        if args.images is not None:
            case = replace(case, images=args.images)
        results.append(measure(name, case, repeats, args.health))
        print(report_line(results[-1]), flush=True)
    OUTPUT.mkdir(exist_ok=True)
    report = {"benchmark": "training loop vs bare step", "quick": args.quick,
              "mxnet": mx.__version__, "results": results,
              "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    path = OUTPUT / (args.output or ("training_quick.json" if args.quick else "training.json"))
    path.write_text(json.dumps(report, indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
