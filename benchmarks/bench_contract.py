"""What the dataset contract's checks cost: at a command's start on an ImageNet-sized dataset,
and per epoch of the digits demo.

    python benchmarks/bench_contract.py [--quick] [--output contract.json]

1. An ImageNet-sized dataset without its images: ``.idx`` files of ILSVRC-2012's 1,281,167
   training records (minus the 50,000 carved out for test), 48,238 validation and 50,000
   test records, at the offsets 110 KB records would have, ``.rec`` files of the matching
   size as sparse files (no disk used), a mean and a format-2 manifest. Timed:
   ``check_dataset`` for training's splits (train + val) and for a test command (test),
   which read the manifest, hash the ``.idx`` files and compare sizes and the mean.
   Target: at most a second each.
2. The digits demo's dataset (built by ``make demo``, or built here if absent): the checks
   a training makes at its start (``check_dataset``) and at every epoch (``check_unchanged``
   twice: before the first batch and before validation), against the demo's epoch time
   read from its training log (``output/demo``; without one, one demo epoch is trained
   here, except with ``--quick``). Target: at most 1% of an epoch.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchlib import REPO_ROOT, machine, output_path, summary, write_json

from pyimagesearch.config import load_config
from pyimagesearch.data.dataset import (
    MANIFEST_FORMAT,
    SPLITS,
    check_dataset,
    check_unchanged,
    identity_digest,
    write_mean,
)
from pyimagesearch.files import sha256_file

# ILSVRC-2012 CLS-LOC: 1,281,167 training images, 50,000 validation images of which the
# blacklist drops 1,762; the book's test split is 50 per class carved from train.
IMAGENET_COUNTS = {"train": 1_281_167 - 50_000, "val": 50_000 - 1_762, "test": 50_000}
RECORD_BYTES = 110_000  # a 256 px JPEG at quality 95 and its RecordIO framing, on average


def write_split(folder: Path, name: str, count: int) -> dict[str, Any]:
    rec, idx = folder / f"{name}.rec", folder / f"{name}.idx"
    with open(idx, "w") as handle:
        handle.writelines(f"{key}\t{key * RECORD_BYTES}\n" for key in range(count))
    with open(rec, "wb") as handle:
        handle.truncate(count * RECORD_BYTES)  # sparse: the size without the bytes
    return {"listed": count, "written": count, "count": count, "skipped": [],
            "rec": rec.name, "idx": idx.name, "rec_bytes": rec.stat().st_size,
            "rec_sha256": "0" * 64,  # hashing 135 GB is verify_records.py --hash's job
            "idx_bytes": idx.stat().st_size, "idx_sha256": sha256_file(idx)}


def write_imagenet_sized(folder: Path, counts: dict[str, int]) -> Path:
    """The dataset described in the module docstring; returns its config file."""
    folder.mkdir(parents=True, exist_ok=True)
    mean = {"R": 123.68, "G": 116.78, "B": 103.94}
    write_mean(folder / "mean.json", mean)
    manifest = {
        "format": MANIFEST_FORMAT, "builder": "ilsvrc", "config": "bench", "created": "",
        "build_seconds": 0.0, "label_order": "map_clsloc", "num_classes": 1000,
        "classes": [{"label": i, "name": f"class {i}", "wnid": f"n{i:08d}",
                     "class_id": i + 1} for i in range(1000)],
        "resize": 256, "encoding": "jpeg", "quality": 95, "input_size": 224, "mean": mean,
        "mean_file": "mean.json", "mean_sha256": sha256_file(folder / "mean.json"),
        "mean_image_file": None, "mean_image_sha256": None,
        "splits": {name: write_split(folder, name, counts[name]) for name in SPLITS},
        "build": {}, "sources": {}, "tools": {},
        # ImageNet's manifest lists every skipped file; a few hundred is typical.
    }
    manifest["splits"]["train"]["skipped"] = [
        {"path": f"train/n{i:08d}/n{i:08d}_{i}.JPEG", "reason": "CMYK JPEG"} for i in range(300)]
    manifest["identity"] = identity_digest(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    config = folder / "config.py"
    config.write_text("\n".join([
        f"TRAIN_MX_REC = {str(folder / 'train.rec')!r}",
        f"VAL_MX_REC = {str(folder / 'val.rec')!r}",
        f"TEST_MX_REC = {str(folder / 'test.rec')!r}",
        f"DATASET_MEAN = {str(folder / 'mean.json')!r}",
        "NUM_CLASSES = 1000", "INPUT_SIZE = 224", "RESIZE = 256", ""]))
    return config


def timed(function, repeats: int) -> dict[str, float]:
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        seconds.append(time.perf_counter() - started)
    return summary(seconds)


def demo_epoch_seconds(folder: Path) -> float | None:
    """The median ``Time cost`` of the demo's training log, if ``make demo`` has run."""
    from pyimagesearch.run.logs import parse_log

    logs = sorted(folder.glob("training_*.log"))
    costs = [record.time for log in logs for record in parse_log(log).epochs.values()
             if record.time]
    return sorted(costs)[len(costs) // 2] if costs else None


def train_one_demo_epoch(folder: Path) -> float | None:
    """Train the digits demo for one epoch into ``folder``; its ``Time cost``."""
    import subprocess

    from benchlib import child_env

    command = [sys.executable, str(REPO_ROOT / "train_googlenet.py"), "--config",
               "config.demo_googlenet_config", "--checkpoints", str(folder), "--prefix",
               "googlenet", "--end-epoch", "1"]
    done = subprocess.run(command, cwd=REPO_ROOT, env=child_env(), capture_output=True,
                          text=True)
    if done.returncode != 0:
        print(f"[contract] the demo epoch failed ({done.returncode}): "
              f"{(done.stdout + done.stderr).strip().splitlines()[-1:]}")
        return None
    return demo_epoch_seconds(folder)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="100k records, 2 repeats")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--work", default="/tmp/bench_contract",
                        help="where the ImageNet-sized files go (sparse: little disk)")
    parser.add_argument("--output", default=None)
    args = parser.parse_args(argv)
    repeats = 2 if args.quick else args.repeats
    counts = ({k: v // 13 for k, v in IMAGENET_COUNTS.items()} if args.quick
              else IMAGENET_COUNTS)
    config = load_config(str(write_imagenet_sized(Path(args.work), counts)))
    start = {"train_start": timed(lambda: check_dataset(config, ("train", "val")), repeats),
             "test_start": timed(lambda: check_dataset(config, ("test",)), repeats)}
    for name, figures in start.items():
        print(f"[contract] {sum(counts.values()):,} records, {name}: "
              f"{figures['median']:.3f} s (min {figures['min']:.3f}, max {figures['max']:.3f})")

    demo = load_config("config.demo_googlenet_config")
    if not Path(demo.TRAIN_MX_REC).with_name("manifest.json").is_file():
        print("[contract] building the digits demo dataset first")
        from pyimagesearch.data.build.builder import build_dataset
        from pyimagesearch.data.sources.demo import write_demo_dataset

        write_demo_dataset(demo)
        build_dataset(demo)
    info = check_dataset(demo, ("train", "val"))
    demo_start = timed(lambda: check_dataset(demo, ("train", "val")), repeats)
    per_epoch = timed(lambda: (check_unchanged(info, demo), check_unchanged(info, demo)),
                      max(repeats, 20))
    epoch = demo_epoch_seconds(REPO_ROOT / "output" / "demo")
    if epoch is None and not args.quick:
        print("[contract] no demo training log (make demo): training one demo epoch")
        with tempfile.TemporaryDirectory(prefix="bench_contract_demo_") as scratch:
            epoch = train_one_demo_epoch(Path(scratch))
    share = None if epoch is None else per_epoch["median"] / epoch
    print(f"[contract] demo: start check {demo_start['median'] * 1e3:.1f} ms, per-epoch checks "
          f"{per_epoch['median'] * 1e6:.0f} us"
          + (f" = {100 * share:.4f}% of a {epoch:.1f} s epoch" if share is not None else
             " (run `make demo` for its epoch time)"))
    report = {"machine": machine(), "records": counts, "imagenet_sized": start,
              "demo": {"start_check": demo_start, "per_epoch_checks": per_epoch,
                       "epoch_seconds": epoch, "per_epoch_share": share}}
    path = write_json(output_path(args.output, "contract.json", args.quick), report)
    print(f"[contract] wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
