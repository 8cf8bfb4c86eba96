"""The decode pipeline: images per second our training iterator delivers, per augmentation,
``preprocess_threads``, iterator and process thread settings, on records of generated JPEGs
or of an ImageFolder tree (benchmarks/README.md, "bench_pipeline.py").

    python benchmarks/bench_pipeline.py [--images 400 | --jpeg-folder DIR] [--quick]
"""

import argparse
import contextlib
import functools
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import benchlib
from benchlib import make_training_dataset, spread, summary

CROP_MIRROR = {"rand_crop": True, "rand_mirror": True}
# The child processes: (label, export OMP_NUM_THREADS = cores?, load MXNet before
# pyimagesearch?): pyimagesearch.runtime sets the project's thread defaults only when it is
# imported before MXNet.
PROCESSES = (
    ("MXNet defaults (nothing exported, MXNet loaded first)", False, True),
    ("project defaults (pyimagesearch.runtime)", False, False),
    ("OMP_NUM_THREADS = cores exported, MXNet loaded first", True, True),
)


def build(folder: Path, args: argparse.Namespace) -> Path:
    """Records of the benchmark's images; returns their config (built on ``--config``)."""
    base, classes = None, 10
    if args.jpeg_folder:
        base = folder / "linked" / "ILSVRC2015"
        _, classes = benchlib.imagefolder_tree(base, Path(args.jpeg_folder))
    return make_training_dataset(
        folder / "data", images=args.images, classes=classes, image_size=500, resize=256,
        base_config=args.config, tree=base,
        overrides={"INPUT_SIZE": 224, "BATCH_SIZE": args.batch, "NUM_DEVICES": 1})


@contextlib.contextmanager
def captured_stderr():
    """Collect what native code writes to file descriptor 2 (MXNet's LOG(INFO))."""
    with tempfile.TemporaryFile() as sink:
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        text: list[str] = []
        try:
            yield text
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            text.append(sink.read().decode(errors="replace"))


def decode_threads_used(factory, config, info, batch: int) -> int | None:
    """Decode threads the iterators made by ``factory`` really start, summed: each
    ``ImageRecordIter``, made verbose for one probe, logs "use N threads for decoding"."""
    import mxnet as mx

    original = mx.io.ImageRecordIter

    def verbose(*args, **kwargs):
        return original(*args, **{**kwargs, "verbose": True})

    mx.io.ImageRecordIter = verbose
    try:
        with captured_stderr() as text:
            probe = factory(config, info, batch, 0, 0)
            del probe
    finally:
        mx.io.ImageRecordIter = original
    counts = re.findall(r"use (\d+) threads for decoding", "".join(text))
    return sum(int(n) for n in counts) if counts else None


def measure_child(args: argparse.Namespace) -> dict[str, Any]:
    """Every row for this process's environment (run as ``--child``)."""
    if args.mxnet_first:  # MXNet reads its thread settings before pyimagesearch sets any
        import mxnet  # noqa: F401
    import pyimagesearch.data.iterators as iterators
    from pyimagesearch.config import load_config
    from pyimagesearch.data.dataset import check_dataset

    data_config = load_config(args.data_config)
    info = check_dataset(data_config, ("train",))
    cores = len(os.sched_getaffinity(0))
    # One ImageRecordIter, as MXNet's own examples use it, against the training iterator
    # as training uses it: as many interleaved iterators as the decode-thread cap requires.
    factories = {"one ImageRecordIter": functools.partial(iterators.training_iterator,
                                                          streams=1),
                 "training_iterator (interleaved)": iterators.training_iterator}
    augmentations = {"book": data_config.AUGMENTATION, "crop_mirror": CROP_MIRROR}
    rows = []
    for threads in sorted({data_config.DECODE_THREADS, cores}):
        for factory_name, factory in factories.items():
            used = None
            for aug_name, aug in augmentations.items():
                config = data_config.replace(DECODE_THREADS=threads, AUGMENTATION=aug)
                if used is None:
                    used = decode_threads_used(factory, config, info, args.batch)
                rows.append({"iterator": factory_name, "augmentation": aug_name,
                             "augmentation_settings": aug, "preprocess_threads": threads,
                             "config_decode_threads": threads == data_config.DECODE_THREADS,
                             "decode_threads": used,
                             "factory": factory, "config": config, "rates": []})
    for epoch_seed in range(args.repeats):
        for row in rows:
            try:
                row["rates"].append(epochs_rate(row["factory"], row["config"], info,
                                                args.batch, args.epochs, epoch_seed))
            except Exception as exc:  # a candidate wrapper that fails must not hide the rest
                row["error"] = f"{type(exc).__name__}: {exc}"
    for row in rows:
        del row["factory"], row["config"]
        rates = row.pop("rates")
        row["img_s"] = summary(rates) if rates else None
    return {"environment": benchlib.thread_environment(), "cores": cores, "rows": rows,
            "notes": [], "images": info.splits["train"].count}


def epochs_rate(factory, config, info, batch: int, epochs: int, repeat: int) -> float:
    """Images per second over ``epochs`` fresh iterators, creation included."""
    images, tic = 0, time.perf_counter()
    for epoch in range(epochs):
        for data_batch in factory(config, info, batch, repeat * epochs + epoch, 0):
            data_batch.data[0].wait_to_read()
            images += data_batch.data[0].shape[0] - (getattr(data_batch, "pad", 0) or 0)
    return images / (time.perf_counter() - tic)


def main(argv: list[str] | None = None) -> int:
    args = benchlib.parser(
        __doc__, "40 images, 1 repeat", images=400, batch=64, repeats=3, epochs=2,
        jpeg_folder=(str, "an ImageFolder tree (make_images.py) instead"),
        config=("config.imagenet_googlenet_config", "whose AUGMENTATION and DECODE_THREADS"),
        child=(False, argparse.SUPPRESS), data_config=(str, argparse.SUPPRESS),
        mxnet_first=(False, argparse.SUPPRESS)).parse_args(argv)
    if args.quick:
        args.images, args.repeats, args.epochs, args.batch = 40, 1, 1, 16
    if args.child:
        print(json.dumps(measure_child(args), default=str))
        return 0
    cores = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory(prefix="bench_pipeline_") as scratch:
        tic = time.perf_counter()
        data_config = build(Path(scratch), args)
        print(f"[pipeline] records built in {time.perf_counter() - tic:.1f} s", flush=True)
        child = [sys.executable, str(Path(__file__).resolve()), "--child", "--data-config",
                 str(data_config), "--config", args.config, "--batch", str(args.batch),
                 "--repeats", str(args.repeats), "--epochs", str(args.epochs)]
        runs = []
        for label, omp, first in PROCESSES[:2] if args.quick else PROCESSES:
            env = benchlib.child_env(OMP_NUM_THREADS=str(cores) if omp else None,
                                     MXNET_CPU_WORKER_NTHREADS=None)
            result = benchlib.run_json_child(child + (["--mxnet-first"] if first else []), env,
                                             timeout=1800)
            for row in result["rows"]:
                row["process"] = label
                print(f"[pipeline] {label}: {row['iterator']} {row['augmentation']} threads "
                      f"{row['preprocess_threads']} -> {row['decode_threads']}: "
                      f"{spread(row['img_s'], 0)} img/s {row.get('error', '')}", flush=True)
            runs.append({"process": label, **result})
    benchlib.write_report(args, "pipeline.json", {
        "benchmark": "decode pipeline", "quick": args.quick, "config": args.config,
        "source": (f"ImageFolder {args.jpeg_folder}" if args.jpeg_folder else
                   f"{args.images} generated 500x375 JPEGs (benchlib.write_tree)"),
        "batch": args.batch, "crop": 224, "repeats": args.repeats, "epochs": args.epochs,
        "runs": runs, "repo": str(benchlib.REPO_ROOT)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
