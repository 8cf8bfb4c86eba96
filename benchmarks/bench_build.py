"""Record building: our packer vs MXNet's bare im2rec on the same list, plus read speed.

    python benchmarks/bench_build.py                 # 400 photo-like 500x375 JPEGs
    python benchmarks/bench_build.py --quick         # a smoke run (CI): 40 images, 1 repeat

Builds a generated ILSVRC tree (photo-like JPEGs of ImageNet's typical size and file size)
with ``build_dataset`` (lists, three splits, mean, hashes, manifest), then, alternating
``--repeats`` times on the same ``train.lst``:

* ours:   ``pack_records`` with ``--threads`` worker processes (Pillow decode with
  truncation check, RGB conversion, shorter side to 256, JPEG 95, per-image mean);
* im2rec: ``python $(mx.test_utils.get_im2rec_path()) --resize 256 --quality 95
  --num-thread N prefix root``, timed as a subprocess; its fixed cost (interpreter,
  imports, processes: the same command on an empty list) is measured too, and the ratio
  is given both with and without it;
* ``mx.io.ImageRecordIter`` over our ``train.rec`` with 224 crops and the book's
  augmentation (rand_crop, rand_mirror, max_rotate_angle 15, max_shear_ratio 0.1, mean
  subtraction).

Every figure is the median of the repeats with min and max. Writes
benchmarks/output/build.json (build_quick.json with --quick). No timing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyimagesearch.config import load_config
from pyimagesearch.data.build import build_dataset
from pyimagesearch.data.lists import read_list
from pyimagesearch.data.packing import pack_records

OUTPUT = Path(__file__).resolve().parent / "output"
# MXNet is imported inside the functions that use it: the packer's worker processes are
# spawned, and spawning re-imports this script, which should not cost them an MXNet import.
WNID_BASE = 1440764  # n01440764, n01440765, ...: a made-up but well-formed id range


def photo(rng: np.random.RandomState, width: int, height: int) -> np.ndarray:
    """A photo-like BGR image: smooth colour regions, mid-frequency texture, sensor noise."""
    small = rng.uniform(0, 255, (rng.randint(3, 8), rng.randint(3, 8), 3)).astype(np.float32)
    image = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    texture = rng.normal(0, 40, (height // 3, width // 3, 3)).astype(np.float32)
    image += cv2.resize(texture, (width, height), interpolation=cv2.INTER_LINEAR)
    image += rng.normal(0, 6, (height, width, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def write_tree(base: Path, images: int, classes: int, size: tuple[int, int]) -> float:
    """An ILSVRC2015 tree: ``images`` training JPEGs plus one validation image per class.

    Returns the mean JPEG size in KiB. Every third image is portrait, as in ImageNet.
    """
    rng = np.random.RandomState(0)
    data, sets = base / "Data" / "CLS-LOC", base / "ImageSets" / "CLS-LOC"
    devkit = base / "devkit" / "data"
    for folder in (data / "val", sets, devkit):
        folder.mkdir(parents=True, exist_ok=True)
    wnids = [f"n{WNID_BASE + c:08d}" for c in range(classes)]
    sizes, train_lines = [], []

    def save(path: Path, number: int) -> None:
        width, height = size if number % 3 else size[::-1]
        ok, buffer = cv2.imencode(".jpg", photo(rng, width, height),
                                  [cv2.IMWRITE_JPEG_QUALITY, 92])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(buffer.tobytes())
        sizes.append(len(buffer))

    for number in range(images):
        wnid = wnids[number % classes]
        save(data / "train" / wnid / f"{wnid}_{number}.JPEG", number)
        train_lines.append(f"{wnid}/{wnid}_{number}")
    for number in range(classes):
        save(data / "val" / f"ILSVRC2012_val_{number + 1:08d}.JPEG", number)
    (sets / "train_cls.txt").write_text(
        "".join(f"{line} {i + 1}\n" for i, line in enumerate(sorted(train_lines))))
    (sets / "val.txt").write_text(
        "".join(f"ILSVRC2012_val_{i + 1:08d} {i + 1}\n" for i in range(classes)))
    (devkit / "map_clsloc.txt").write_text(
        "".join(f"{w} {i + 1} class_{i}\n" for i, w in enumerate(wnids)))
    (devkit / "ILSVRC2015_clsloc_validation_ground_truth.txt").write_text(
        "".join(f"{i + 1}\n" for i in range(classes)))
    (devkit / "ILSVRC2015_clsloc_validation_blacklist.txt").write_text("1\n")
    return float(np.mean(sizes)) / 1024


def write_config(path: Path, base: Path, output: Path, classes: int, threads: int) -> Path:
    images = base / "Data" / "CLS-LOC"
    fields = {
        "BASE_PATH": base, "IMAGES_PATH": images,
        "IMAGE_SETS_PATH": base / "ImageSets" / "CLS-LOC", "DEVKIT_PATH": base / "devkit" / "data",
        "WORD_IDS": base / "devkit" / "data" / "map_clsloc.txt",
        "TRAIN_LIST": base / "ImageSets" / "CLS-LOC" / "train_cls.txt",
        "VAL_LIST": base / "ImageSets" / "CLS-LOC" / "val.txt",
        "VAL_LABELS": base / "devkit" / "data" / "ILSVRC2015_clsloc_validation_ground_truth.txt",
        "VAL_BLACKLIST": base / "devkit" / "data" / "ILSVRC2015_clsloc_validation_blacklist.txt",
        "MX_OUTPUT": output,
        "TRAIN_MX_LIST": output / "lists" / "train.lst",
        "VAL_MX_LIST": output / "lists" / "val.lst",
        "TEST_MX_LIST": output / "lists" / "test.lst",
        "TRAIN_MX_REC": output / "rec" / "train.rec",
        "VAL_MX_REC": output / "rec" / "val.rec",
        "TEST_MX_REC": output / "rec" / "test.rec",
        "DATASET_MEAN": output / "rec" / "mean.json",
    }
    lines = [f"{name} = {str(value)!r}" for name, value in fields.items()]
    lines += [f"NUM_CLASSES = {classes}", f"NUM_TEST_IMAGES = {classes}",
              "TEST_SPLIT_SEED = 42", 'LABEL_ORDER = "map_clsloc"', "RESIZE = 256",
              "ENCODING_QUALITY = 95", f"BUILD_THREADS = {threads}", "INPUT_SIZE = 224"]
    path.write_text("\n".join(lines) + "\n")
    return path


def timed(function, *args, **kwargs) -> float:
    started = time.perf_counter()
    function(*args, **kwargs)
    return time.perf_counter() - started


def run_im2rec(work: Path, lst: Path | None, root: Path, threads: int) -> float:
    """Wall time of a bare im2rec run on a copy of ``lst`` (it writes beside its list).

    With ``lst=None`` it runs on an empty list: its fixed cost (interpreter, MXNet and
    OpenCV imports, starting and joining its processes).
    """
    import mxnet as mx

    for stale in work.glob("train.*"):
        stale.unlink()
    if lst is None:
        (work / "train.lst").write_text("")
    else:
        shutil.copy(lst, work / "train.lst")
    command = [sys.executable, mx.test_utils.get_im2rec_path(), "--resize", "256",
               "--quality", "95", "--num-thread", str(threads), str(work / "train"),
               str(root)]
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - started


def read_speed(rec: Path, mean: dict[str, float], threads: int, epochs: int,
               batch_size: int) -> float:
    """Images per second that ImageRecordIter delivers with the book's augmentation."""
    import mxnet as mx

    iterator = mx.io.ImageRecordIter(
        path_imgrec=str(rec), path_imgidx=str(rec.with_suffix(".idx")),
        data_shape=(3, 224, 224), batch_size=batch_size, shuffle=True, rand_crop=True,
        rand_mirror=True, max_rotate_angle=15, max_shear_ratio=0.1, mean_r=mean["R"],
        mean_g=mean["G"], mean_b=mean["B"], preprocess_threads=threads)
    next(iter(iterator))  # warm-up: thread start and first decode
    iterator.reset()
    images, started = 0, time.perf_counter()
    for _ in range(epochs):
        for batch in iterator:
            batch.data[0].wait_to_read()
            images += batch_size - batch.pad
        iterator.reset()
    return images / (time.perf_counter() - started)


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 40 images, 1 repeat")
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    if args.quick:
        args.images, args.repeats = 40, 1
    import mxnet as mx  # here, not at the top (see above), and before any timing


    with tempfile.TemporaryDirectory(prefix="bench_build_") as scratch:
        scratch = Path(scratch)
        base = scratch / "ILSVRC2015"
        started = time.perf_counter()
        jpeg_kib = write_tree(base, args.images, args.classes, (500, 375))
        generate_seconds = time.perf_counter() - started
        config = load_config(str(write_config(scratch / "bench_config.py", base,
                                              scratch / "out", args.classes, args.threads)))

        build_seconds = timed(build_dataset, config)
        listed = sum(len(read_list(getattr(config, f"{s}_MX_LIST"))) for s in
                     ("TRAIN", "VAL", "TEST"))
        entries = read_list(config.TRAIN_MX_LIST)
        work = scratch / "im2rec"
        work.mkdir()
        ours, im2rec, startup, reads = [], [], [], []
        mean = json.loads(Path(config.DATASET_MEAN).read_text())
        for _ in range(args.repeats):
            ours.append(timed(pack_records, entries, config.IMAGES_PATH, scratch / "p.rec",
                              scratch / "p.idx", resize=256, quality=95,
                              workers=args.threads, compute_mean=True, description="bench"))
            im2rec.append(run_im2rec(work, Path(config.TRAIN_MX_LIST), Path(config.IMAGES_PATH),
                                     args.threads))
            im2rec_bytes = (work / "train.rec").stat().st_size
            startup.append(run_im2rec(work, None, Path(config.IMAGES_PATH), args.threads))
            reads.append(read_speed(Path(config.TRAIN_MX_REC), mean, args.threads,
                                    epochs=1 if args.quick else 3, batch_size=32))
        ours_bytes = (scratch / "p.rec").stat().st_size

    count = len(entries)
    ours_s, im2rec_s, startup_s = (statistics.median(v) for v in (ours, im2rec, startup))
    # With few images im2rec's work is lost in the noise of its start-up: no figure then.
    im2rec_work = im2rec_s - startup_s if im2rec_s - startup_s > 0.1 * im2rec_s else None
    report = {
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "python": platform.python_version(), "mxnet": mx.__version__,
                    "opencv": cv2.__version__},
        "settings": {"images": args.images, "classes": args.classes, "size": [500, 375],
                     "threads": args.threads, "repeats": args.repeats, "resize": 256,
                     "quality": 95, "quick": args.quick},
        "tree": {"mean_jpeg_kib": round(jpeg_kib, 1),
                 "generate_seconds": round(generate_seconds, 2)},
        "full_build": {"seconds": build_seconds, "listed": listed,
                       "records_per_second": listed / build_seconds},
        "train_list": count,
        "ours_seconds": spread(ours),
        "ours_records_per_second": spread([count / s for s in ours]),
        "ours_rec_bytes": ours_bytes,
        "im2rec_seconds": spread(im2rec),
        "im2rec_fixed_seconds": spread(startup),
        "im2rec_records_per_second_excluding_fixed": im2rec_work and count / im2rec_work,
        "im2rec_rec_bytes": im2rec_bytes,
        "ratio_ours_to_im2rec": ours_s / im2rec_s,
        "ratio_ours_to_im2rec_excluding_its_fixed_cost": im2rec_work and ours_s / im2rec_work,
        "record_iter_images_per_second": spread(reads),
    }
    OUTPUT.mkdir(parents=True, exist_ok=True)
    path = OUTPUT / ("build_quick.json" if args.quick else "build.json")
    path.write_text(json.dumps(report, indent=2) + "\n")

    print(f"{count} training images of 500x375 (mean JPEG {jpeg_kib:.0f} KiB), "
          f"{args.threads} worker(s), median of {args.repeats}:")
    print(f"  full build (3 splits, mean, hashes, manifest): {listed} images in "
          f"{build_seconds:.2f} s = {listed / build_seconds:.0f} records/s")
    print(f"  ours  : {ours_s:.2f} s = {count / ours_s:.0f} records/s")
    after = f"{count / im2rec_work:.0f} records/s after that" if im2rec_work else "n/a"
    print(f"  im2rec: {im2rec_s:.2f} s wall, of which {startup_s:.2f} s fixed (its run on an "
          f"empty list); {after}")
    without = f"{ours_s / im2rec_work:.2f}" if im2rec_work else "n/a"
    print(f"  ours / im2rec time: {ours_s / im2rec_s:.2f} ({without} against im2rec without "
          f"its fixed cost)")
    print(f"  ImageRecordIter (224 crops, augmentation, mean): "
          f"{statistics.median(reads):.0f} images/s")
    print(f"written {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
