"""Whole training loop vs the bare step, same network and batch, in one run.

The bare step is forward + backward + update on one batch already in memory, which is
all the device must do. The loop is ``train_epoch`` over real records (decode and
augmentation by ``ImageRecordIter``, split over contexts, metrics, log lines) plus the
epoch's checkpoint. Their ratio is the loop's overhead; the target is >= 0.95.

    python benchmarks/bench_training.py            # GoogLeNet at 224 and at the demo's 56 px
    python benchmarks/bench_training.py --quick    # a smoke run (CI): tiny sizes, no timing use

Measurements alternate bare and loop repeats so that drift on a shared machine hits both;
every figure is the median with its min and max. Writes benchmarks/output/training.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import cv2
import mxnet as mx
import numpy as np
from mxnet import autograd, gluon

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyimagesearch.data.iterators import DatasetInfo, RecordSplit, training_iterator
from pyimagesearch.nn import count_trainable_parameters, get_model
from pyimagesearch.training import recipes
from pyimagesearch.training.checkpoints import save_checkpoint
from pyimagesearch.training.logs import TrainingLog
from pyimagesearch.training.loop import (
    EpochProgress,
    StopFlag,
    TrainingSetup,
    train_epoch,
)
from pyimagesearch.training.optimizers import create_optimizer

OUTPUT = Path(__file__).resolve().parent / "output"


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


def make_setup(size: int, batch: int, classes: int, folder: Path, updates_per_epoch: int):
    mx.random.seed(0)
    net = get_model("googlenet", num_classes=classes)
    net.initialize(mx.init.Xavier(), ctx=[mx.cpu()])
    net.hybridize(static_alloc=True, static_shape=True)
    trainer = gluon.Trainer(net.collect_params(),
                            create_optimizer(recipes.BOOK_GOOGLENET_SGD, updates_per_epoch),
                            update_on_kvstore=False)
    log = TrainingLog(folder / f"training_{size}_{time.time_ns()}.log", console=False)
    return TrainingSetup(net=net, trainer=trainer, contexts=[mx.cpu()], batch_size=batch,
                         log=log, log_interval=10, seed=0)


def bare_step(setup: TrainingSetup, size: int, batch: int, classes: int, steps: int) -> float:
    """Images per second of forward+backward+update on one in-memory batch."""
    data = mx.nd.random.uniform(-1, 1, shape=(batch, 3, size, size))
    label = mx.nd.array(np.arange(batch) % classes)
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()

    def step():
        with autograd.record():
            loss = loss_fn(setup.net(data), label)
        loss.backward()
        setup.trainer.step(batch)
        return loss

    step().wait_to_read()  # warm-up: graph building and memory planning
    mx.nd.waitall()
    tic = time.perf_counter()
    for _ in range(steps):
        step()
    mx.nd.waitall()
    return steps * batch / (time.perf_counter() - tic)


def whole_loop(setup: TrainingSetup, config, info: DatasetInfo, batch: int, epoch: int,
               folder: Path) -> float:
    """Images per second of one epoch of ``train_epoch`` plus its checkpoint."""
    data_iter = training_iterator(config, info, batch, epoch, seed=0)
    tic = time.perf_counter()
    progress = EpochProgress(epoch)
    train_epoch(setup, data_iter, epoch, StopFlag(), progress)
    save_checkpoint(setup.net, setup.trainer, folder, "bench", epoch + 1, {})
    return progress.samples / (time.perf_counter() - tic)


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "repeats": len(values)}


def measure(size: int, batch: int, images: int, repeats: int, classes: int = 1000) -> dict:
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        info = DatasetInfo(splits={"train": write_records(folder, images, size + size // 7,
                                                          classes)},
                           mean={"R": 123.68, "G": 116.78, "B": 103.94},
                           image_size=size + size // 7, manifest_file="", manifest={})
        config = SimpleNamespace(INPUT_SIZE=size, DECODE_THREADS=2, AUGMENTATION={
            "rand_crop": True, "rand_mirror": True, "max_rotate_angle": 15,
            "max_shear_ratio": 0.1})
        setup = make_setup(size, batch, classes, folder, images // batch)
        # Warm the loop path too (iterator start, checkpoint code) before timing.
        whole_loop(setup, config, info, batch, 0, folder)
        steps = images // batch
        bare, loop = [], []
        for repeat in range(repeats):
            bare.append(bare_step(setup, size, batch, classes, steps))
            loop.append(whole_loop(setup, config, info, batch, repeat + 1, folder))
        setup.log.close()
        ratios = [lp / bs for lp, bs in zip(loop, bare)]
        return {"network": "googlenet", "input": size, "batch": batch, "images_per_epoch": images,
                "parameters": count_trainable_parameters(setup.net),
                "bare_step_img_s": summary(bare), "loop_img_s": summary(loop),
                "loop_over_bare": summary(ratios)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny sizes")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if args.quick:
        cases = [(32, 8, 32, 1)]
    else:
        cases = [(224, 32, 320, args.repeats), (56, 32, 1280, args.repeats)]
    results = [measure(size, batch, images, repeats) for size, batch, images, repeats in cases]
    OUTPUT.mkdir(exist_ok=True)
    report = {"benchmark": "training loop vs bare step", "quick": args.quick,
              "mxnet": mx.__version__, "results": results,
              "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    path = OUTPUT / ("training_quick.json" if args.quick else "training.json")
    path.write_text(json.dumps(report, indent=2))
    for r in results:
        print(f"GoogLeNet {r['input']} px, batch {r['batch']}: bare step "
              f"{r['bare_step_img_s']['median']:.1f} img/s, whole loop "
              f"{r['loop_img_s']['median']:.1f} img/s, loop/bare "
              f"{r['loop_over_bare']['median']:.3f} "
              f"(min {r['loop_over_bare']['min']:.3f}, max {r['loop_over_bare']['max']:.3f})")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
