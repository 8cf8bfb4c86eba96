"""Record building per image: our packer beside MXNet's bare im2rec and our im2rec packer
on the same photographs, where a worker's time goes, the full build (benchmarks/README.md,
"bench_build.py").

    python benchmarks/bench_build.py [--jpeg-folder DIR | --images 400] [--quick]
"""

import contextlib
import io
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import benchlib
import cv2
import numpy as np
from benchlib import spread, summary

from pyimagesearch.config import load_config
from pyimagesearch.data.build.builder import build_dataset
from pyimagesearch.data.build.packing import pack_records
from pyimagesearch.data.images import (
    decode_bgr,
    encode_bgr_jpeg,
    plain_jpeg,
    read_image_bytes,
    resize_shorter,
    stored_image_mean,
)
from pyimagesearch.data.records.lists import ListEntry, read_list, write_list

# MXNet is imported inside the functions that use it: the packer's workers are spawned, and
# spawning re-imports this script, which should not cost them an MXNet import.
RESIZE, QUALITY = benchlib.BUILD_RESIZE, benchlib.BUILD_QUALITY
VARIANTS = ("project", "im2rec", "im2rec packer")


# --- 1. where a worker's time goes ------------------------------------------------------------
def _im2rec_size(height: int, width: int) -> tuple[int, int]:
    """im2rec's own target size: shorter side RESIZE, the longer rounded down."""
    if height > width:
        return RESIZE, height * RESIZE // width
    return width * RESIZE // height, RESIZE


def stage_profile(paths: list[str]) -> dict[str, dict[str, float]]:
    """Median milliseconds per image of each stage, in this process with one OpenCV thread."""
    from PIL import Image

    cv2.setNumThreads(1)
    times: dict[str, dict[str, list[float]]] = {"ours": {}, "im2rec": {}, "no longer done": {}}

    def timed(group: str, stage: str, function, *args, **kwargs):
        started = time.perf_counter()
        value = function(*args, **kwargs)
        times[group].setdefault(stage, []).append(time.perf_counter() - started)
        return value

    for path in paths:
        read_image_bytes(path)  # from the page cache for both, as in a build's steady state
        data = timed("ours", "read", read_image_bytes, path)
        timed("ours", "marker walk and scan check", plain_jpeg, data)
        bgr = timed("ours", "decode (the walk again, OpenCV)", decode_bgr, data, RESIZE)
        small = timed("ours", "resize", resize_shorter, bgr, RESIZE)
        timed("ours", "mean of the pixels", cv2.mean, small)
        timed("ours", "encode", encode_bgr_jpeg, small, QUALITY)

        full = timed("im2rec", "cv2.imread", cv2.imread, path, cv2.IMREAD_COLOR)
        resized = timed("im2rec", "cv2.resize (INTER_LINEAR)", cv2.resize, full,
                        _im2rec_size(*full.shape[:2]))
        jpeg = timed("im2rec", "cv2.imencode", encode_bgr_jpeg, resized, QUALITY)

        def pillow_decode(data=data):
            image = Image.open(io.BytesIO(data))
            image.draft("RGB", (RESIZE, RESIZE))
            return np.asarray(image.convert("RGB"))

        rgb = timed("no longer done", "Pillow decode", pillow_decode)
        height, width = rgb.shape[:2]
        size = ((int(width * RESIZE / height + 0.5), RESIZE) if height <= width
                else (RESIZE, int(height * RESIZE / width + 0.5)))
        timed("no longer done", "INTER_AREA resize", cv2.resize, rgb, size,
              interpolation=cv2.INTER_AREA)
        timed("no longer done", "second decode for the mean", stored_image_mean, jpeg)
    return {group: {stage: 1e3 * statistics.median(values) for stage, values in stages.items()}
            for group, stages in times.items()}


# --- 2. the packers --------------------------------------------------------------------------
def run_im2rec(work: Path, entries: list[ListEntry], root: Path, threads: int) -> int:
    """A bare im2rec run on ``entries`` (it writes beside its list); returns records written."""
    import mxnet as mx

    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    write_list(work / "train.lst", entries)
    command = [sys.executable, mx.test_utils.get_im2rec_path(), "--resize", str(RESIZE),
               "--quality", str(QUALITY), "--num-thread", str(threads), str(work / "train"),
               str(root)]
    subprocess.run(command, check=True, capture_output=True)
    return len((work / "train.idx").read_text().splitlines())


def cpu_seconds() -> float:
    """CPU time of this process and of its children that have ended (workers, im2rec)."""
    return sum(u.ru_utime + u.ru_stime for u in (resource.getrusage(resource.RUSAGE_SELF),
                                                 resource.getrusage(resource.RUSAGE_CHILDREN)))


@contextlib.contextmanager
def first_bytes(path: Path):
    """A list that gets the time ``path`` first holds data, polled every 5 ms from a thread:
    where a packer's start-up ends and its records begin."""
    found: list[float] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.005):
            with contextlib.suppress(OSError):
                if path.stat().st_size > 0:
                    return found.append(time.time())  # the clock of file times

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield found
    finally:
        stop.set()
        thread.join()


def run_variant(variant: str, entries: list[ListEntry], root: Path, scratch: Path,
                threads: int) -> dict[str, float]:
    """One packer on one list: wall seconds, CPU seconds (every process involved), wall
    seconds from its first record on (project and bare im2rec), records written."""
    rec = {"project": scratch / "project.rec", "im2rec": scratch / "im2rec" / "train.rec",
           "im2rec packer": scratch / "packer.rec"}[variant]
    rec.unlink(missing_ok=True)
    started, cpu_started = time.perf_counter(), cpu_seconds()
    with first_bytes(rec) as first:
        if variant == "im2rec":
            written = run_im2rec(rec.parent, entries, root, threads)
        else:
            written = pack_records(entries, root, rec, rec.with_suffix(".idx"), resize=RESIZE,
                                   quality=QUALITY, workers=threads, compute_mean=True,
                                   description=variant,
                                   packer="project" if variant == "project" else "im2rec"
                                   ).written
    ended = time.perf_counter()
    records = float("nan")
    if first and variant != "im2rec packer":
        # The last write, not the exit: a process that imported MXNet takes a while to end.
        records = max(rec.stat().st_mtime, rec.with_suffix(".idx").stat().st_mtime) - first[0]
    return {"wall": ended - started, "cpu": cpu_seconds() - cpu_started, "records": records,
            "written": written}


def read_speed(rec: Path, mean: dict[str, float], threads: int, batch_size: int) -> float:
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
    for batch in iterator:
        batch.data[0].wait_to_read()
        images += batch_size - batch.pad
    return images / (time.perf_counter() - started)


def describe_images(paths: list[str]) -> dict[str, float]:
    from PIL import Image

    sizes = []
    for path in paths:
        with Image.open(path) as image:
            sizes.append(image.size)
    return {"mean_kib": statistics.fmean(os.path.getsize(p) for p in paths) / 1024,
            "median_shorter_side": statistics.median(min(s) for s in sizes),
            "median_longer_side": statistics.median(max(s) for s in sizes)}


def measure(args, scratch: Path) -> dict[str, Any]:
    """Every figure of the report but the machine's (the rounds, then their per-image costs)."""
    import mxnet as mx  # here, not at the top (see above), and before any timing

    base = scratch / "ILSVRC2015"
    if args.jpeg_folder:
        count, classes = benchlib.imagefolder_tree(base, Path(args.jpeg_folder))
        source = f"{count} photographs of {args.jpeg_folder} (make_images.py)"
    else:
        classes = args.classes
        kib = benchlib.write_tree(base, args.images, classes, (500, 375))
        source = f"{args.images} generated photo-like 500x375 JPEGs (mean {kib:.0f} KiB)"
    config = load_config(str(benchlib.write_config(scratch / "bench_config.py", base,
                                                   scratch / "out", classes, args.threads)))
    tic = time.perf_counter()
    build_dataset(config)
    build_seconds = time.perf_counter() - tic
    listed = sum(len(read_list(getattr(config, f"{s}_MX_LIST"))) for s in ("TRAIN", "VAL", "TEST"))
    root = Path(config.IMAGES_PATH)
    entries = read_list(config.TRAIN_MX_LIST)
    head = entries[:min(args.head, len(entries) // 4)]
    paths = [str(root / entry.path) for entry in entries]
    images, stages = describe_images(paths), stage_profile(paths)
    # measure -> variant -> part ("whole" list or its "head") -> one value per round
    runs: dict[str, dict[str, dict[str, list[float]]]] = {
        measure: {v: {"whole": [], "head": []} for v in VARIANTS}
        for measure in ("wall", "cpu", "records")}
    written: dict[str, int] = {}
    reads = []
    mean = json.loads(Path(config.DATASET_MEAN).read_text())
    for repeat in range(args.repeats):
        for variant in VARIANTS if repeat % 2 == 0 else VARIANTS[::-1]:
            for part, items in (("whole", entries), ("head", head)):
                run = run_variant(variant, items, root, scratch, args.threads)
                for measure, values in runs.items():
                    values[variant][part].append(run[measure])
                if part == "whole":
                    written[variant] = int(run["written"])
        reads.append(read_speed(Path(config.TRAIN_MX_REC), mean, args.threads, 32))

    count, extra = len(entries), len(entries) - len(head)
    per_image = {measure: {v: [1e3 * (whole - short) / extra for whole, short in
                               zip(parts["whole"], parts["head"])]
                           for v, parts in by_variant.items()}
                 for measure, by_variant in runs.items() if measure != "records"}
    # From the first record to the end of the whole list: no start-up in it at all.
    per_image["records"] = {v: [1e3 * seconds / count for seconds in parts["whole"]]
                            for v, parts in runs["records"].items() if v != "im2rec packer"}
    medians = {measure: {v: statistics.median(values) for v, values in by_variant.items()}
               for measure, by_variant in per_image.items()}
    # Each round's ratio (the runs of one round saw the same load), then their median.
    paired = {measure: {v: [a / b for a, b in zip(by_variant[v], by_variant["im2rec"])]
                        for v in by_variant}
              for measure, by_variant in per_image.items()}
    return {
        "settings": {"source": source, "threads": args.threads, "repeats": args.repeats,
                     "resize": RESIZE, "quality": QUALITY, "head": len(head),
                     "quick": args.quick},
        "images": images, "stage_ms_per_image": stages,
        "full_build": {"seconds": build_seconds, "listed": listed,
                       "records_per_second": listed / build_seconds},
        "train_list": count, "written": written,
        "seconds": {measure: {v: {part: summary(values) for part, values in parts.items()}
                              for v, parts in by_variant.items()}
                    for measure, by_variant in runs.items()},
        # "wall": elapsed ms per image; "cpu": CPU ms per image, all processes together
        "ms_per_image": {measure: {v: summary(values) for v, values in by_variant.items()}
                         for measure, by_variant in per_image.items()},
        "ratio_to_im2rec_per_image": {
            measure: {v: statistics.median(ratios) for v, ratios in by_variant.items()}
            for measure, by_variant in paired.items()},
        "ratio_to_im2rec_per_image_each_round": paired,
        "ratio_of_medians": {measure: {v: values[v] / values["im2rec"] for v in values}
                             for measure, values in medians.items()},
        "record_iter_images_per_second": summary(reads),
        "mxnet": mx.__version__,
    }


def main(argv: list[str] | None = None) -> int:
    args = benchlib.parser(__doc__, "40 images, 1 round", images=400, classes=10, repeats=3,
                  jpeg_folder=(str, "an ImageFolder tree (make_images.py) instead"),
                  threads=os.cpu_count() or 1, head=(16, "images of the run that measures "
                                                         "fixed costs")).parse_args(argv)
    if args.quick:
        args.images, args.repeats, args.jpeg_folder = 40, 1, None
    with tempfile.TemporaryDirectory(prefix="bench_build_") as scratch:
        report = measure(args, Path(scratch))
    print(f"{report['settings']['source']}: ms per image (whole list - its head), CPU of "
          f"every process and wall, and ratios to bare im2rec (median of the rounds):")
    ratios = report["ratio_to_im2rec_per_image"]
    for variant in VARIANTS:
        print(f"  {variant:14s} " + ", ".join(
            f"{m} {spread(per_image[variant], 2)} (x{ratios[m][variant]:.2f})"
            for m, per_image in report["ms_per_image"].items() if variant in per_image))
    benchlib.write_report(args, "build.json", report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
