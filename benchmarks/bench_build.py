"""Record building per image: our packer beside MXNet's bare im2rec and our im2rec packer.

    python benchmarks/bench_build.py --jpeg-folder /tmp/photos   # bench-peers' make_images.py
    python benchmarks/bench_build.py                             # 400 generated 500x375 JPEGs
    python benchmarks/bench_build.py --quick                     # a smoke run (CI)

On the same photographs (an ImageFolder tree of ``make_images.py``, or generated photo-like
JPEGs), with the same resize (shorter side 256) and JPEG quality (95):

1. **where a worker's time goes** per image, in one process with one OpenCV thread: our
   stages (read, marker walk, DCT-scaled decode, resize, mean, encode) beside im2rec's
   (``cv2.imread``, ``cv2.resize``, ``cv2.imencode``) and the stages our build no longer
   has (Pillow decode, ``INTER_AREA``, a second decode for the mean);
2. **the packers, interleaved** (``--repeats`` rounds, the order reversed every other
   round so that load drifts hit all alike), each on the whole training list and on its
   first few images:

   * ``project``: ``pack_records`` with ``--threads`` worker processes and the mean;
   * ``im2rec``: bare ``python $(mx.test_utils.get_im2rec_path()) --resize 256 --quality 95
     --num-thread N prefix root`` as a subprocess, no check and no mean;
   * ``im2rec packer``: ``pack_records(packer="im2rec")``: the check of every file,
     im2rec, and the mean from the stored images.

   Per image, within each round: (time on the whole list - time on its first few
   images) / the difference in images, what each costs per image once started
   (interpreters, imports, process start-up cancel out), as CPU time of every process
   involved (``getrusage``: the least disturbed by a shared machine) and as wall time;
   and wall time from the first record written to the last, divided by the images
   (project and bare im2rec). A ratio to im2rec is taken within each round (both saw
   the same load), and the median of the rounds' ratios is reported;
3. the full ``build_dataset`` once (three splits, mean, hashes, manifest), and
   ``mx.io.ImageRecordIter`` over its ``train.rec`` with the book's augmentation.

Writes benchmarks/output/build.json (build_quick.json with --quick). No timing is asserted.
"""

from __future__ import annotations

import argparse
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

import cv2
import numpy as np
from benchlib import machine, output_path, summary, write_json

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

# MXNet is imported inside the functions that use it: the packer's worker processes are
# spawned, and spawning re-imports this script, which should not cost them an MXNet import.
WNID_BASE = 1440764  # n01440764, n01440765, ...: a made-up but well-formed id range
RESIZE, QUALITY = 256, 95
VARIANTS = ("project", "im2rec", "im2rec packer")


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
              "TEST_SPLIT_SEED = 42", 'LABEL_ORDER = "map_clsloc"', f"RESIZE = {RESIZE}",
              f"ENCODING_QUALITY = {QUALITY}", f"BUILD_THREADS = {threads}", "INPUT_SIZE = 224"]
    path.write_text("\n".join(lines) + "\n")
    return path


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
    own, children = resource.getrusage(resource.RUSAGE_SELF), \
        resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


class FirstBytes:
    """The moment a file first holds data, polled every few milliseconds from a thread:
    where a packer's start-up ends and its records begin."""

    def __init__(self, path: Path) -> None:
        self.path, self.at = path, None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self._stop.wait(0.005):
            with contextlib.suppress(OSError):
                if self.path.stat().st_size > 0:
                    self.at = time.time()  # the clock of file times
                    return

    def __enter__(self) -> FirstBytes:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()


def run_variant(variant: str, entries: list[ListEntry], root: Path, scratch: Path,
                threads: int) -> dict[str, float]:
    """One packer on one list: wall seconds, CPU seconds (every process involved), wall
    seconds from its first record on (project and bare im2rec), records written."""
    rec = {"project": scratch / "project.rec", "im2rec": scratch / "im2rec" / "train.rec",
           "im2rec packer": scratch / "packer.rec"}[variant]
    rec.unlink(missing_ok=True)
    started, cpu_started = time.perf_counter(), cpu_seconds()
    with FirstBytes(rec) as first:
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
    if first.at is not None and variant != "im2rec packer":
        # The last write, not the exit: a process that imported MXNet takes a while to end.
        last = max(rec.stat().st_mtime, rec.with_suffix(".idx").stat().st_mtime)
        records = last - first.at
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


def make_tree(args: argparse.Namespace, base: Path) -> tuple[int, str]:
    """The ILSVRC tree to build: linked photographs or generated JPEGs; (classes, source)."""
    if args.jpeg_folder:
        # Imported here: bench_pipeline builds its datasets through this module.
        from bench_pipeline import imagefolder_tree

        count, classes = imagefolder_tree(base, Path(args.jpeg_folder))
        return classes, f"{count} photographs of {args.jpeg_folder} (make_images.py)"
    jpeg_kib = write_tree(base, args.images, args.classes, (500, 375))
    return args.classes, (f"{args.images} generated photo-like 500x375 JPEGs "
                          f"(mean {jpeg_kib:.0f} KiB)")


def describe_images(paths: list[str]) -> dict[str, float]:
    from PIL import Image

    sizes = []
    for path in paths:
        with Image.open(path) as image:
            sizes.append(image.size)
    return {"mean_kib": statistics.fmean(os.path.getsize(p) for p in paths) / 1024,
            "median_shorter_side": statistics.median(min(s) for s in sizes),
            "median_longer_side": statistics.median(max(s) for s in sizes)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 40 images, 1 round")
    parser.add_argument("--jpeg-folder", help="an ImageFolder tree (make_images.py) to use")
    parser.add_argument("--images", type=int, default=400, help="generated images")
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--head", type=int, default=16,
                        help="images of the short run that measures fixed costs")
    parser.add_argument("--output", help="JSON file name (default build.json)")
    args = parser.parse_args(argv)
    if args.quick:
        args.images, args.repeats, args.jpeg_folder = 40, 1, None
    import mxnet as mx  # here, not at the top (see above), and before any timing

    with tempfile.TemporaryDirectory(prefix="bench_build_") as scratch_name:
        scratch = Path(scratch_name)
        base = scratch / "ILSVRC2015"
        classes, source = make_tree(args, base)
        config = load_config(str(write_config(scratch / "bench_config.py", base,
                                              scratch / "out", classes, args.threads)))
        build_seconds = timed_call(build_dataset, config)
        listed = sum(len(read_list(getattr(config, f"{s}_MX_LIST")))
                     for s in ("TRAIN", "VAL", "TEST"))
        root = Path(config.IMAGES_PATH)
        entries = read_list(config.TRAIN_MX_LIST)
        head = entries[:min(args.head, len(entries) // 4)]
        paths = [str(root / entry.path) for entry in entries]
        images = describe_images(paths)
        stages = stage_profile(paths)

        # measure -> variant -> part ("whole" list or its "head") -> one value per round
        runs: dict[str, dict[str, dict[str, list[float]]]] = {
            measure: {v: {"whole": [], "head": []} for v in VARIANTS}
            for measure in ("wall", "cpu", "records")}
        written: dict[str, int] = {}
        reads = []
        mean = json.loads(Path(config.DATASET_MEAN).read_text())
        for repeat in range(args.repeats):
            order = VARIANTS if repeat % 2 == 0 else VARIANTS[::-1]
            for variant in order:
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
    paired = {measure: {v: [a / b for a, b in zip(by_variant[v], by_variant["im2rec"])]
                        for v in by_variant}
              for measure, by_variant in per_image.items()}
    report: dict[str, Any] = {
        "machine": machine(),
        "settings": {"source": source, "threads": args.threads, "repeats": args.repeats,
                     "resize": RESIZE, "quality": QUALITY, "head": len(head),
                     "quick": args.quick},
        "images": images,
        "stage_ms_per_image": stages,
        "full_build": {"seconds": build_seconds, "listed": listed,
                       "records_per_second": listed / build_seconds},
        "train_list": count,
        "written": written,
        "seconds": {measure: {v: {part: summary(values) for part, values in parts.items()}
                              for v, parts in by_variant.items()}
                    for measure, by_variant in runs.items()},
        # "wall": elapsed ms per image; "cpu": CPU ms per image, all processes together
        "ms_per_image": {measure: {v: summary(values) for v, values in by_variant.items()}
                         for measure, by_variant in per_image.items()},
        # Each round's ratio (the runs of one round saw the same load), then their median.
        "ratio_to_im2rec_per_image": {
            measure: {v: statistics.median(ratios) for v, ratios in by_variant.items()}
            for measure, by_variant in paired.items()},
        "ratio_to_im2rec_per_image_each_round": paired,
        "ratio_of_medians": {measure: {v: values[v] / values["im2rec"] for v in values}
                             for measure, values in medians.items()},
        "record_iter_images_per_second": summary(reads),
        "mxnet": mx.__version__,
    }
    path = write_json(output_path(args.output, "build.json", args.quick), report)

    print(f"{source}; shorter side {images['median_shorter_side']:.0f} px median, "
          f"{images['mean_kib']:.0f} KiB mean; {args.threads} worker(s), "
          f"median of {args.repeats} round(s):")
    for group, values in stages.items():
        print(f"  {group} (ms per image, one process): " + ", ".join(
            f"{stage} {ms:.2f}" for stage, ms in values.items()))
    print(f"  full build (3 splits, mean, hashes, manifest): {listed} images in "
          f"{build_seconds:.2f} s")
    print("  ms per image: CPU of all its processes and wall, (whole list - its head) / "
          "images; wall from the first record to the last / images; (x median of the "
          "rounds' ratios to im2rec)")
    for variant in VARIANTS:
        cells = []
        for measure in ("cpu", "wall", "records"):
            if variant in medians[measure]:
                ratio = statistics.median(paired[measure][variant])
                cells.append(f"{measure} {medians[measure][variant]:6.2f} (x{ratio:.2f})")
        print(f"  {variant:14s} " + ", ".join(cells) + f"; whole list "
              f"{statistics.median(runs['wall'][variant]['whole']):.2f} s for "
              f"{written[variant]} records")
    print(f"  ImageRecordIter (224 crops, augmentation, mean): "
          f"{statistics.median(reads):.0f} images/s")
    print(f"written {path}")
    return 0


def timed_call(function, *args, **kwargs) -> float:
    started = time.perf_counter()
    function(*args, **kwargs)
    return time.perf_counter() - started


if __name__ == "__main__":
    sys.exit(main())
