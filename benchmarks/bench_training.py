"""Whole training loop vs the bare step, per network, and what the health monitor costs.

The bare step is forward + backward + update on one batch already in memory, which is
all the device must do. The loop is ``train_epoch`` over real records (decode and
augmentation by ``ImageRecordIter`` in a process of the epoch's own, as training runs it,
batches handed over through shared memory; split over contexts, metrics, log lines) plus
the epoch's checkpoint; the same loop with the iterators in this process is timed too, for
what the hand-over costs. Their ratio is the loop's overhead; the target is >= 0.95. The loop's
data settings (AUGMENTATION, DECODE_THREADS, ...) are those of the network's real config.
A timed epoch is a few batches, so what an epoch pays once (creating the iterator, saving a
checkpoint: 0.5 GB for Inception-ResNet-v2) weighs far more than in a real epoch; both
ratios are reported: as measured, and at a real epoch's length (ILSVRC's 1,281,167 images,
CIFAR's 50,000) from the measured per-epoch seconds and the rate within the epoch.

Per network it also reports the forward FLOPs of one image (2 x the multiply-adds of
every Convolution and FullyConnected node of the network's symbol, shapes from MXNet's
shape inference), achieved GFLOP/s = img/s x 3 x forward FLOPs (backward ~ 2 forwards),
and how long the loop waited for data: the time spent creating the epoch's iterator and
inside its ``next()``, as a fraction of the loop's time.

    python benchmarks/bench_training.py                       # every network below
    python benchmarks/bench_training.py --networks inception_resnet_v2 --health
    python benchmarks/bench_training.py --quick               # a smoke run (CI): tiny sizes

Networks (input px, batch): googlenet (224, 32), googlenet_56 (the demo's 56, 32),
inception_resnet_v2 (the released 10/20/10 blocks at 299, 16), resnet20 / resnet56 /
resnet110 (CIFAR, 32, 128, through the registry's ``cifar_resnet``, shortcut A as the
paper on CIFAR) and resnet20_b / resnet56_b / resnet110_b (shortcut B, 1x1 projections,
what the PyTorch peer builds).

``--health`` adds, per network: the time of one health check (loss, gradient norm, the
inference pass up to global pooling) after a real step, its cost at the monitor's default
interval as a fraction of step time, and the loop with the monitor against the loop
without (alternated; with fewer batches per epoch than the default interval the monitor
runs once per epoch there, which overstates its cost).

Measurements alternate bare and loop repeats so that drift on a shared machine hits both;
every figure is the median with its min and max. Nothing here asserts a timing. Writes
benchmarks/output/training.json (training_quick.json with --quick, or --output NAME).
``--peak-gflops`` (from ``peak.py``) adds % of peak to the printed lines.
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
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
# First: importing pyimagesearch sets the project's thread defaults (pyimagesearch.runtime),
# which MXNet reads once, when it loads. Measured without them otherwise.
import pyimagesearch  # noqa: F401

# isort: split
import cv2
import mxnet as mx
import numpy as np
from benchlib import machine, output_path, summary
from mxnet import autograd, gluon

from pyimagesearch.config import load_config
from pyimagesearch.data.dataset import DatasetInfo, RecordSplit
from pyimagesearch.data.decoder import ProcessIter, start_server
from pyimagesearch.data.iterators import Normalizer, training_iterator, training_iterator_params
from pyimagesearch.nn import count_trainable_parameters, get_model
from pyimagesearch.run.checkpoints import save_checkpoint
from pyimagesearch.run.logs import TrainingLog
from pyimagesearch.runtime import return_large_blocks
from pyimagesearch.settings import recipes
from pyimagesearch.training.health import HealthMonitor, HealthSettings
from pyimagesearch.training.loop import (
    EpochProgress,
    StepContext,
    StopFlag,
    TrainingSetup,
    train_epoch,
)
from pyimagesearch.training.optimizers import create_optimizer

GOOGLENET, DEMO = "config.imagenet_googlenet_config", "config.demo_googlenet_config"
IRV2, CIFAR = "config.imagenet_inception_resnet_v2_config", "config.cifar10_resnet_config"


@dataclass(frozen=True)
class Case:
    """One network as benchmarked: registry name and arguments, sizes, images per epoch,
    and the config whose data settings the loop uses (AUGMENTATION, DECODE_THREADS and
    any other upper-case field the iterators read; INPUT_SIZE is the case's)."""

    model: str
    size: int
    batch: int
    images: int
    stored: int
    classes: int = 1000
    params: dict[str, Any] = field(default_factory=dict)
    config: str = GOOGLENET
    # Training images of one real epoch (ILSVRC-2012 train; CIFAR's 50k), over which an
    # epoch's fixed costs (iterator start, checkpoint) spread.
    real_epoch: int = 1_281_167


NETWORKS = {
    "googlenet": Case("googlenet", 224, 32, 320, 256),
    "googlenet_56": Case("googlenet", 56, 32, 1280, 64, config=DEMO),
    # The figure: the released 10/20/10 layout at 299 px (records at 328). About
    # 1-2 images/s on 2 CPU cores, so few images.
    "inception_resnet_v2": Case("inception_resnet_v2", 299, 16, 48, 328,
                                params={"blocks": (10, 20, 10)}, config=IRV2),
    "resnet20": Case("cifar_resnet", 32, 128, 6400, 32, 10, {"depth": 20}, CIFAR, 50_000),
    "resnet56": Case("cifar_resnet", 32, 128, 6400, 32, 10, {"depth": 56}, CIFAR, 50_000),
    "resnet110": Case("cifar_resnet", 32, 128, 6400, 32, 10, {"depth": 110}, CIFAR, 50_000),
    # Option B (projection shortcuts), like for like with the PyTorch peer's CIFAR ResNets.
    "resnet20_b": Case("cifar_resnet", 32, 128, 6400, 32, 10, {"depth": 20, "shortcut": "B"},
                       CIFAR, 50_000),
    "resnet56_b": Case("cifar_resnet", 32, 128, 6400, 32, 10, {"depth": 56, "shortcut": "B"},
                       CIFAR, 50_000),
    "resnet110_b": Case("cifar_resnet", 32, 128, 6400, 32, 10,
                        {"depth": 110, "shortcut": "B"}, CIFAR, 50_000),
}
DEFAULT_NETWORKS = ("googlenet,inception_resnet_v2,resnet20,resnet20_b,resnet56,resnet56_b,"
                    "resnet110,resnet110_b")


def quick(case: Case) -> Case:
    """A smoke-run version of a case: the smallest input the network takes, a few images."""
    size = 75 if case.model == "inception_resnet_v2" else 32
    params = {"blocks": (1, 1, 1)} if case.model == "inception_resnet_v2" else case.params
    return replace(case, size=size, stored=size + size // 7, batch=8, images=16, params=params)


def forward_flops(net: gluon.HybridBlock, size: int, channels: int = 3) -> int:
    """FLOPs of one forward pass of one image: 2 x multiply-adds of every conv and dense layer.

    Traced from the network's own symbol, so the count follows the layers as built (true
    5x5 kernels, projection shortcuts, ...). A Convolution or FullyConnected output element
    costs one multiply-add per weight of its filter: the product of the weight's shape
    without its first axis, (in_channels / groups) x kh x kw or in_features. BN, pooling,
    activations and additions are not counted (as in the papers' and PyTorch peers' counts).
    """
    symbol = net(mx.sym.var("data"))
    internals = symbol.get_internals()
    arg_shapes, out_shapes, _ = internals.infer_shape(data=(1, channels, size, size))
    shapes = dict(zip(internals.list_arguments(), arg_shapes))
    shapes.update(zip(internals.list_outputs(), out_shapes))
    nodes = json.loads(symbol.tojson())["nodes"]
    total = 0
    for node in nodes:
        if node["op"] not in ("Convolution", "FullyConnected"):
            continue
        source = nodes[node["inputs"][1][0]]
        # a variable, or an operator's output (Inception-ResNet-v2 scales its 1x1 weights)
        weight = shapes[source["name"] if source["op"] == "null" else source["name"] + "_output"]
        total += 2 * int(np.prod(shapes[node["name"] + "_output"])) * int(np.prod(weight[1:]))
    return total


class WaitTimer:
    """A data iterator that adds up the time its consumer spends blocked in ``next()``."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.seconds = 0.0
        self.first: float | None = None

    def __iter__(self) -> WaitTimer:
        return self

    def __next__(self):
        tic = time.perf_counter()
        try:
            return next(self.inner)
        finally:
            waited = time.perf_counter() - tic
            self.seconds += waited
            if self.first is None:
                self.first = waited


def write_records(folder: Path, count: int, size: int, classes: int) -> RecordSplit:
    """Photo-like images (smooth gradients plus noise) so decode cost is realistic, stored
    as our builds store them: JPEG for ImageNet sizes, uncompressed PNG for CIFAR's 32 px
    (``pyimagesearch.data.build.cifar``)."""
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
        pixels = np.clip(image, 0, 255).astype(np.uint8)
        if size <= 32:
            writer.write_idx(index, mx.recordio.pack_img(header, pixels, quality=0,
                                                         img_fmt=".png"))
        else:
            writer.write_idx(index, mx.recordio.pack_img(header, pixels, quality=95))
    writer.close()
    return RecordSplit(str(rec_path), str(idx_path), count)


def make_setup(case: Case, folder: Path, updates_per_epoch: int) -> TrainingSetup:
    return_large_blocks()  # as the training process does (experiment.train)
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


@dataclass(frozen=True)
class LoopTiming:
    """One timed epoch of the whole loop. ``per_epoch_s`` is what an epoch pays once
    whatever its length (creating the iterator, which decodes the first batch, and saving
    the checkpoint); ``within_epoch_img_s`` is the rate between the two."""

    img_s: float
    wait_fraction: float
    first_batch_s: float
    per_epoch_s: float
    within_epoch_img_s: float


def at_real_epoch(within_img_s: float, per_epoch_s: float, images: int) -> float:
    """Images per second of an epoch of ``images`` at the measured rates."""
    return images / (images / within_img_s + per_epoch_s)


def whole_loop(setup: TrainingSetup, config, info: DatasetInfo, batch: int, epoch: int,
               folder: Path, in_process: bool = False) -> LoopTiming:
    """One epoch as ``fit`` runs it: the epoch's iterator in a decoding process of its own
    (``data.decoder``), ``train_epoch``, the checkpoint. ``in_process``: the same
    iterators in this process instead, as before the decoding processes.

    Creating the iterator is timed and counted as waiting: MXNet's ``MXDataIter`` decodes
    the first batch in its constructor, and a real epoch pays it (``fit`` starts an
    epoch's decoding process an epoch ahead, which hides that; here it is paid).
    """
    tic = time.perf_counter()
    if in_process:
        source = training_iterator(config, info, batch, epoch, seed=0)
    else:
        source = ProcessIter(training_iterator_params(config, info, batch, epoch, seed=0),
                             f"benchmark epoch {epoch}")
    data_iter = WaitTimer(source)
    created = time.perf_counter() - tic
    progress = EpochProgress(epoch)
    train_epoch(setup, data_iter, epoch, StopFlag(), progress)
    trained = time.perf_counter()
    if not in_process:
        source.close()
    save_checkpoint(setup.net, setup.trainer, folder, "bench", epoch + 1, {})
    seconds = time.perf_counter() - tic
    return LoopTiming(img_s=progress.samples / seconds,
                      wait_fraction=(created + data_iter.seconds) / seconds,
                      first_batch_s=created + (data_iter.first or 0.0),
                      per_epoch_s=created + (seconds - (trained - tic)),
                      within_epoch_img_s=progress.samples / (trained - tic - created))


def memory_loop(setup: TrainingSetup, case: Case, epoch: int, folder: Path) -> float:
    """Images per second of the same loop and checkpoint over batches already in memory
    (uint8, like the records' batches): what the loop costs without the data path."""
    rng = np.random.RandomState(epoch)
    data = rng.randint(0, 256, (case.images, 3, case.size, case.size)).astype(np.uint8)
    labels = (np.arange(case.images) % case.classes).astype(np.float32)
    data_iter = mx.io.NDArrayIter(mx.nd.array(data, dtype="uint8"), mx.nd.array(labels),
                                  batch_size=case.batch, last_batch_handle="discard")
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


def measure(name: str, case: Case, repeats: int, health: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        info = DatasetInfo(splits={"train": write_records(folder, case.images, case.stored,
                                                          case.classes)},
                           mean={"R": 123.68, "G": 116.78, "B": 103.94},
                           image_size=case.stored, manifest={})
        config = load_config(case.config).replace(INPUT_SIZE=case.size)
        steps = case.images // case.batch
        setup = make_setup(case, folder, steps)
        # As training does: uint8 in, the mean subtracted on the device.
        setup.normalize = Normalizer(info.mean, info.mean_image)
        # The monitor at its default interval, or once per epoch where an epoch is shorter.
        monitor = HealthMonitor(HealthSettings(interval=min(HealthSettings().interval, steps)))
        # Warm the loop path too (iterator start, checkpoint code, the monitor's inference
        # graphs) before timing.
        setup.observers = [monitor] if health else []
        start_server()
        whole_loop(setup, config, info, case.batch, 0, folder)
        bare, timings, watched, memory, in_process = [], [], [], [], []
        for repeat in range(repeats):
            bare.append(bare_step(setup, case, steps))
            setup.observers = []
            timings.append(whole_loop(setup, config, info, case.batch, repeat + 1, folder))
            in_process.append(whole_loop(setup, config, info, case.batch, repeat + 1, folder,
                                         in_process=True))
            memory.append(memory_loop(setup, case, repeat + 1, folder))
            if health:
                setup.observers = [monitor]
                watched.append(whole_loop(setup, config, info, case.batch, repeat + 1,
                                          folder).img_s)
        loop = [t.img_s for t in timings]
        real = [at_real_epoch(t.within_epoch_img_s, t.per_epoch_s, case.real_epoch)
                for t in timings]
        flops = forward_flops(setup.net, case.size)
        per_image = 3 * flops / 1e9  # training ~ forward + backward (2 forwards)
        result = {"network": name, "model": case.model, "model_params": case.params,
                  "input": case.size, "batch": case.batch, "images_per_epoch": case.images,
                  "bare_steps": steps, "parameters": count_trainable_parameters(setup.net),
                  "forward_gflops_per_image": flops / 1e9,
                  "bare_step_img_s": summary(bare), "loop_img_s": summary(loop),
                  "bare_step_gflops": summary([r * per_image for r in bare]),
                  "loop_gflops": summary([r * per_image for r in loop]),
                  "loop_over_bare": summary([lp / bs for lp, bs in zip(loop, bare)]),
                  # The timed epochs are a few batches; a real one is case.real_epoch
                  # images, over which the per-epoch costs spread.
                  "per_epoch_seconds": summary([t.per_epoch_s for t in timings]),
                  "loop_within_epoch_img_s": summary([t.within_epoch_img_s for t in timings]),
                  "real_epoch_images": case.real_epoch,
                  "loop_at_real_epoch_img_s": summary(real),
                  "loop_at_real_epoch_over_bare": summary([r / bs for r, bs in zip(real, bare)]),
                  # The loop fetches the next batch while the current step computes, so
                  # time blocked in next() overlaps work; what the data path costs is the
                  # loop's shortfall against the same loop over in-memory batches.
                  "host_in_next_fraction": summary([t.wait_fraction for t in timings]),
                  "loop_in_memory_img_s": summary(memory),
                  # The same loop with the iterators in this process, as before epochs were
                  # decoded in processes of their own: what the hand-over costs.
                  "loop_in_process_img_s": summary([t.img_s for t in in_process]),
                  "loop_in_process_over_bare": summary([t.img_s / bs for t, bs
                                                        in zip(in_process, bare)]),
                  "loop_over_loop_in_process": summary([lp / t.img_s for lp, t
                                                        in zip(loop, in_process)]),
                  "per_epoch_seconds_in_process": summary([t.per_epoch_s for t in in_process]),
                  "data_wait_fraction": summary([max(0.0, 1 - lp / mem)
                                                 for lp, mem in zip(loop, memory)]),
                  "data_wait_first_batch_s": summary([t.first_batch_s for t in timings]),
                  "config": case.config, "decode_threads": config.DECODE_THREADS,
                  "augmentation": config.AUGMENTATION}
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


def report_line(r: dict[str, Any], peak: float | None = None) -> str:
    gflops = r["bare_step_gflops"]["median"]
    line = (f"{r['network']} {r['input']} px, batch {r['batch']}: bare step "
            f"{r['bare_step_img_s']['median']:.2f} img/s = {gflops:.1f} GFLOP/s"
            + (f" ({100 * gflops / peak:.0f}% of {peak:.0f})" if peak else "")
            + f", whole loop {r['loop_img_s']['median']:.2f} img/s, loop/bare "
            f"{r['loop_over_bare']['median']:.3f} "
            f"(min {r['loop_over_bare']['min']:.3f}, max {r['loop_over_bare']['max']:.3f}), "
            f"data path costs {100 * r['data_wait_fraction']['median']:.1f}% of the loop; "
            f"decoding in this process instead: loop/bare "
            f"{r['loop_in_process_over_bare']['median']:.3f}, process/in-process "
            f"{r['loop_over_loop_in_process']['median']:.3f}; "
            f"{r['per_epoch_seconds']['median']:.2f} s per epoch (iterator start, checkpoint) "
            f"over {r['real_epoch_images']:,} images: loop/bare "
            f"{r['loop_at_real_epoch_over_bare']['median']:.3f} at a real epoch")
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
                        help="JSON file name in benchmarks/output, or a path (default "
                             "training.json, training_quick.json with --quick)")
    parser.add_argument("--peak-gflops", type=float, default=None,
                        help="this machine's measured peak (peak.py), for %% of peak")
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
        print(report_line(results[-1], args.peak_gflops), flush=True)
    report = {"benchmark": "training loop vs bare step", "quick": args.quick,
              "mxnet": mx.__version__, "repeats": repeats, "health": args.health,
              "results": results, "machine": machine(),
              "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    path = output_path(args.output, "training.json", args.quick)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
