"""The decode pipeline: images per second our training iterator delivers, no training.

    python benchmarks/bench_pipeline.py                    # 400 generated 500x375 JPEGs
    python benchmarks/bench_pipeline.py --jpeg-folder /tmp/photos   # an ImageFolder tree
    python benchmarks/bench_pipeline.py --quick            # a smoke run (CI)

Builds records with our build path (``build_dataset``: shorter side 256, JPEG 95) from
photo-like JPEGs: generated ones (``bench_build.write_tree``, about 97 KiB each) or, with
``--jpeg-folder``, the ``root/<class>/<image>.jpg`` tree of bench-peers' ``make_images.py``
(so our pipeline and torchvision's decode the same photos; run_all.py does that). Then
measures ``pyimagesearch.data.iterators.training_iterator`` at 224 px crops, batch 64
(bench-peers' ``pipeline.py`` default), with:

* augmentation ``book``: the config's own (GoogLeNet: random crop, mirror, rotation 15,
  shear 0.1, mean subtraction), and ``crop_mirror``: random crop, mirror and mean only,
  what torchvision's pipeline in bench-peers does (RandomCrop 224, flip, ToTensor,
  Normalize);
* ``preprocess_threads`` = the config's ``DECODE_THREADS`` and = the number of cores;
* three processes (OpenMP reads its settings once, at start-up): MXNet's defaults
  (nothing exported, MXNet imported before ``pyimagesearch`` so ``pyimagesearch.runtime``
  sets nothing), the project's defaults (``pyimagesearch`` imported first, as every script
  does), and ``OMP_NUM_THREADS`` = cores exported with MXNet's other defaults (``--quick``:
  the first two); the thread variables each process ends with are recorded;
* one ``ImageRecordIter`` (``streams=1``) against ``training_iterator`` as training uses
  it: several iterators over parts of the records, taken in turn, to get past MXNet's
  per-iterator cap on decode threads.

Each row is ``--repeats`` x (``--epochs`` epochs, a new iterator per epoch as ``fit``
makes them), timed from the iterator's creation to the last batch, the rows alternated
within each repeat. MXNet's ``ImageRecordIter`` caps its decode threads at
max(cores / 2 - 1, 1) whatever ``preprocess_threads`` says; the thread count the iterators
really start is read from MXNet's own log line (one probe per row, made verbose) and
reported. Writes benchmarks/output/pipeline.json
(pipeline_quick.json with --quick). No timing is asserted.
"""

from __future__ import annotations

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

from benchlib import (
    REPO_ROOT,
    child_env,
    machine,
    make_training_dataset,
    output_path,
    run_json_child,
    summary,
    thread_environment,
    write_json,
)

WNID_BASE = 1440764
CROP_MIRROR = {"rand_crop": True, "rand_mirror": True}
# The child processes: (label, export OMP_NUM_THREADS = cores?, load MXNet before
# pyimagesearch?). pyimagesearch.runtime sets the project's thread defaults when it is
# imported before MXNet; loading MXNet first keeps MXNet's own.
PROCESSES = (
    ("MXNet defaults (nothing exported, MXNet loaded first)", False, True),
    ("project defaults (pyimagesearch.runtime)", False, False),
    ("OMP_NUM_THREADS = cores exported, MXNet loaded first", True, True),
)


def imagefolder_tree(base: Path, folder: Path) -> tuple[int, int]:
    """An ILSVRC2015 tree of symbolic links to the JPEGs of an ImageFolder ``folder``.

    Every image is a training image; the first of each class is linked again as that
    class's validation image. Returns (images, classes).
    """
    classes = sorted(p for p in folder.iterdir() if p.is_dir())
    data, sets = base / "Data" / "CLS-LOC", base / "ImageSets" / "CLS-LOC"
    devkit = base / "devkit" / "data"
    for path in (data / "val", sets, devkit):
        path.mkdir(parents=True, exist_ok=True)
    wnids = [f"n{WNID_BASE + c:08d}" for c in range(len(classes))]
    lines, count = [], 0
    for number, (wnid, source) in enumerate(zip(wnids, classes), 1):
        images = sorted(source.glob("*.jp*g"))
        (data / "train" / wnid).mkdir(parents=True)
        for image in images:
            (data / "train" / wnid / f"{wnid}_{count}.JPEG").symlink_to(image.resolve())
            lines.append(f"{wnid}/{wnid}_{count}")
            count += 1
        (data / "val" / f"ILSVRC2012_val_{number:08d}.JPEG").symlink_to(images[0].resolve())
    (sets / "train_cls.txt").write_text("".join(f"{line} {i + 1}\n"
                                                for i, line in enumerate(sorted(lines))))
    (sets / "val.txt").write_text("".join(f"ILSVRC2012_val_{i + 1:08d} {i + 1}\n"
                                          for i in range(len(wnids))))
    (devkit / "map_clsloc.txt").write_text("".join(f"{w} {i + 1} class_{i}\n"
                                                   for i, w in enumerate(wnids)))
    (devkit / "ILSVRC2015_clsloc_validation_ground_truth.txt").write_text(
        "".join(f"{i + 1}\n" for i in range(len(wnids))))
    (devkit / "ILSVRC2015_clsloc_validation_blacklist.txt").write_text("")
    return count, len(wnids)


def build(folder: Path, args: argparse.Namespace) -> Path:
    """Records of the benchmark's images; returns their config (built on ``--config``)."""
    overrides = {"INPUT_SIZE": 224, "BATCH_SIZE": args.batch, "NUM_DEVICES": 1}
    if args.jpeg_folder:
        base = folder / "linked" / "ILSVRC2015"
        _, classes = imagefolder_tree(base, Path(args.jpeg_folder))
        return make_training_dataset(folder / "data", images=0, classes=classes,
                                     image_size=0, resize=256, base_config=args.config,
                                     overrides=overrides, tree=base)
    return make_training_dataset(folder / "data", images=args.images, classes=10,
                                 image_size=500, resize=256, base_config=args.config,
                                 overrides=overrides)


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
    """Decode threads the iterators made by ``factory`` really start, summed over them.

    ``ImageRecordIter`` is made verbose for one probe, so each one it creates logs
    "use N threads for decoding" (on stderr, from C++), whatever the factory passes.
    """
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
    notes = []
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
    return {"environment": thread_environment(), "cores": cores, "rows": rows,
            "notes": notes, "images": info.splits["train"].count}


def epochs_rate(factory, config, info, batch: int, epochs: int, repeat: int) -> float:
    """Images per second over ``epochs`` fresh iterators, creation included."""
    images, tic = 0, time.perf_counter()
    for epoch in range(epochs):
        for data_batch in factory(config, info, batch, repeat * epochs + epoch, 0):
            data_batch.data[0].wait_to_read()
            images += data_batch.data[0].shape[0] - (getattr(data_batch, "pad", 0) or 0)
    return images / (time.perf_counter() - tic)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 40 images, 1 repeat")
    parser.add_argument("--images", type=int, default=400, help="generated JPEGs")
    parser.add_argument("--jpeg-folder", default=None,
                        help="use this ImageFolder tree (make_images.py) instead")
    parser.add_argument("--config", default="config.imagenet_googlenet_config",
                        help="config whose AUGMENTATION and DECODE_THREADS are measured")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--output", default=None)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data-config", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--mxnet-first", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
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
        child = [str(Path(__file__).resolve()), "--child", "--data-config", str(data_config),
                 "--config", args.config, "--batch", str(args.batch), "--repeats",
                 str(args.repeats), "--epochs", str(args.epochs)]
        runs = []
        for label, omp, first in PROCESSES[:2] if args.quick else PROCESSES:
            env = child_env(OMP_NUM_THREADS=str(cores) if omp else None,
                            MXNET_CPU_WORKER_NTHREADS=None)
            result = run_json_child(child + (["--mxnet-first"] if first else []), env,
                                    timeout=1800)
            for row in result["rows"]:
                row["process"] = label
                print(f"[pipeline] {label}: {row['iterator']} {row['augmentation']} "
                      f"preprocess_threads={row['preprocess_threads']} (decodes with "
                      f"{row['decode_threads']}): "
                      + (f"{row['img_s']['median']:.0f} img/s" if row["img_s"] else
                         row.get("error", "no figure")), flush=True)
            runs.append({"process": label, **result})
    report = {"benchmark": "decode pipeline", "quick": args.quick, "config": args.config,
              "source": (f"ImageFolder {args.jpeg_folder}" if args.jpeg_folder else
                         f"{args.images} generated 500x375 JPEGs (bench_build.write_tree)"),
              "batch": args.batch, "crop": 224, "repeats": args.repeats,
              "epochs": args.epochs, "runs": runs, "machine": machine(),
              "repo": str(REPO_ROOT)}
    path = write_json(output_path(args.output, "pipeline.json", args.quick), report)
    print(f"[pipeline] wrote {path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
