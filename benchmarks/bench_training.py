"""Whole training loop vs the bare step, per network: img/s, GFLOP/s, the loop's wait for
data, the per-epoch costs spread over a real epoch, and (``--health``) what the health
monitor costs. What each figure means: benchmarks/README.md ("bench_training.py").

    python benchmarks/bench_training.py [--networks googlenet,resnet20_b] [--health] [--quick]
"""

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
from benchlib import names, parser, spread, summary, write_report
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
    """One network as benchmarked; ``config``'s data settings (augmentation, decode threads)
    are the loop's, ``real_epoch`` the images of a real epoch (ILSVRC-2012's, CIFAR's)."""

    model: str
    size: int
    batch: int
    images: int
    stored: int
    classes: int = 1000
    params: dict[str, Any] = field(default_factory=dict)
    config: str = GOOGLENET
    real_epoch: int = 1_281_167


NETWORKS = {
    "googlenet": Case("googlenet", 224, 32, 320, 256),
    "googlenet_56": Case("googlenet", 56, 32, 1280, 64, config=DEMO),
    # The released 10/20/10 layout at 299 px (records at 328); 1-2 img/s on 2 cores.
    "inception_resnet_v2": Case("inception_resnet_v2", 299, 16, 48, 328,
                                params={"blocks": (10, 20, 10)}, config=IRV2),
    # CIFAR: shortcut A as the paper; B (projections) is like for like with the peers'.
    **{f"resnet{depth}{b}": Case("cifar_resnet", 32, 128, 6400, 32, 10,
                                 {"depth": depth, **({"shortcut": "B"} if b else {})},
                                 CIFAR, 50_000)
       for depth in (20, 56, 110) for b in ("", "_b")},
}
DEFAULT_NETWORKS = ",".join(n for n in NETWORKS if n != "googlenet_56")


def quick(case: Case) -> Case:
    """A smoke-run version of a case: the smallest input the network takes, a few images."""
    size = 75 if case.model == "inception_resnet_v2" else 32
    params = {"blocks": (1, 1, 1)} if case.model == "inception_resnet_v2" else case.params
    return replace(case, size=size, stored=size + size // 7, batch=8, images=16, params=params)


def forward_flops(net: gluon.HybridBlock, size: int, channels: int = 3) -> int:
    """FLOPs of one image's forward pass, from the network's own symbol as built: each
    Convolution or FullyConnected output element costs one multiply-add (2 FLOPs) per weight
    of its filter; BN, pooling, activations and additions are not counted (as the papers')."""
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


def timed_batches(inner, waits: list[float]):
    """``inner``'s batches; the time its consumer waits in each ``next()`` goes to ``waits``."""
    while True:
        tic = time.perf_counter()
        batch = next(inner, None)
        waits.append(time.perf_counter() - tic)
        if batch is None:
            return
        yield batch


def write_records(folder: Path, count: int, size: int, classes: int) -> RecordSplit:
    """Photo-like images (gradients plus noise: a realistic decode cost) stored as our builds
    store them: JPEG for ImageNet sizes, lossless PNG for CIFAR's 32 px."""
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
        writer.write_idx(index, mx.recordio.pack_img(header, pixels, quality=0, img_fmt=".png")
                         if size <= 32 else mx.recordio.pack_img(header, pixels, quality=95))
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
    """One timed epoch of the whole loop; ``per_epoch_s``: what it pays once (the iterator's
    start, the checkpoint), ``within_epoch_img_s``: the rate between the two."""

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
    """One epoch as ``fit`` runs it: the iterator in a decoding process of its own
    (``in_process``: in this one), ``train_epoch``, the checkpoint. Creating the iterator,
    which decodes the first batch, counts as waiting (``fit`` would start it an epoch ahead)."""
    tic = time.perf_counter()
    if in_process:
        source = training_iterator(config, info, batch, epoch, seed=0)
    else:
        source = ProcessIter(training_iterator_params(config, info, batch, epoch, seed=0),
                             f"benchmark epoch {epoch}")
    waits: list[float] = []
    data_iter = timed_batches(source, waits)
    created = time.perf_counter() - tic
    progress = EpochProgress(epoch)
    train_epoch(setup, data_iter, epoch, StopFlag(), progress)
    trained = time.perf_counter()
    if not in_process:
        source.close()
    save_checkpoint(setup.net, setup.trainer, folder, "bench", epoch + 1, {})
    seconds = time.perf_counter() - tic
    return LoopTiming(img_s=progress.samples / seconds,
                      wait_fraction=(created + sum(waits)) / seconds,
                      first_batch_s=created + (waits[0] if waits else 0.0),
                      per_epoch_s=created + (seconds - (trained - tic)),
                      within_epoch_img_s=progress.samples / (trained - tic - created))


def memory_loop(setup: TrainingSetup, case: Case, epoch: int, folder: Path) -> float:
    """Images per second of the same loop and checkpoint over uint8 batches in memory."""
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
        setup.normalize = Normalizer(info.mean, info.mean_image)  # uint8 in, as in training
        # The monitor at its default interval, or once per epoch where an epoch is shorter.
        monitor = HealthMonitor(HealthSettings(interval=min(HealthSettings().interval, steps)))
        setup.observers = [monitor] if health else []  # warm the loop path up before timing
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
        loop, in_proc = [t.img_s for t in timings], [t.img_s for t in in_process]
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
                  "loop_over_bare": over(loop, bare),
                  # A timed epoch is a few batches; the per-epoch costs spread over a real one.
                  "per_epoch_seconds": summary([t.per_epoch_s for t in timings]),
                  "loop_within_epoch_img_s": summary([t.within_epoch_img_s for t in timings]),
                  "real_epoch_images": case.real_epoch,
                  "loop_at_real_epoch_img_s": summary(real),
                  "loop_at_real_epoch_over_bare": over(real, bare),
                  # Time blocked in next() overlaps the step: what the data path costs is
                  # the loop's shortfall against the same loop over in-memory batches.
                  "host_in_next_fraction": summary([t.wait_fraction for t in timings]),
                  "loop_in_memory_img_s": summary(memory),
                  # The iterators in this process instead: what the hand-over costs.
                  "loop_in_process_img_s": summary(in_proc),
                  "loop_in_process_over_bare": over(in_proc, bare),
                  "loop_over_loop_in_process": over(loop, in_proc),
                  "per_epoch_seconds_in_process": summary([t.per_epoch_s for t in in_process]),
                  "data_wait_fraction": summary([max(0.0, 1 - lp / mem)
                                                 for lp, mem in zip(loop, memory)]),
                  "data_wait_first_batch_s": summary([t.first_batch_s for t in timings]),
                  "config": case.config, "decode_threads": config.DECODE_THREADS,
                  "augmentation": config.AUGMENTATION}
        if health:
            checks = health_check_seconds(setup, case, max(repeats, 3))
            step_seconds, default = case.batch / statistics.median(bare), HealthSettings().interval
            result["health"] = {
                "default_interval": default, "check_seconds": summary(checks),
                "step_seconds": step_seconds,
                "cost_at_default_interval": statistics.median(checks) / (default * step_seconds),
                "ab_interval": monitor.interval, "loop_with_health_img_s": summary(watched),
                "with_over_without": over(watched, loop)}
        setup.log.close()
        return result


def over(values: list[float], references: list[float]) -> dict[str, float]:
    """The summary of the ratios, pair by pair (measured alternately, so under one load)."""
    return summary([v / r for v, r in zip(values, references)])


def report_line(r: dict[str, Any], peak: float | None = None) -> str:
    gflops = r["bare_step_gflops"]["median"]
    return (f"{r['network']} {r['input']} px, batch {r['batch']}: bare step "
            f"{spread(r['bare_step_img_s'], 2)} img/s, {gflops:.1f} GFLOP/s"
            + (f" ({100 * gflops / peak:.0f}% of peak)" if peak else "")
            + f"; loop/bare {spread(r['loop_over_bare'], 3)}, at a real epoch "
            f"{spread(r['loop_at_real_epoch_over_bare'], 3)}; data path "
            f"{spread(r['data_wait_fraction'], 1, 100)}% of the loop")


def main(argv: list[str] | None = None) -> int:
    cli = parser(__doc__, "tiny sizes", networks=(DEFAULT_NETWORKS, f"from: {', '.join(NETWORKS)}"),
                 repeats=3, images=(int, "images per timed epoch (default: per network)"),
                 health=(False, "also the health monitor's cost"),
                 peak_gflops=(float, "the measured peak (peak.py): %% of peak"))
    args = cli.parse_args(argv)
    repeats = 1 if args.quick else args.repeats
    results = []
    for name in names(cli, args.networks, NETWORKS, "networks"):
        case = quick(NETWORKS[name]) if args.quick else NETWORKS[name]
        if args.images is not None:
            case = replace(case, images=args.images)
        results.append(measure(name, case, repeats, args.health))
        print(report_line(results[-1], args.peak_gflops), flush=True)
    write_report(args, "training.json", {
        "benchmark": "training loop vs bare step", "quick": args.quick,
        "mxnet": mx.__version__, "repeats": repeats, "health": args.health,
        "results": results, "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    return 0


if __name__ == "__main__":
    sys.exit(main())
