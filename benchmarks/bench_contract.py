"""What the dataset identity checks cost: ``check_dataset`` at a command's start on a
synthetic ImageNet-sized dataset, and the digits demo's checks at a training's start and
per epoch against a demo epoch (benchmarks/README.md, "bench_contract.py").

    python benchmarks/bench_contract.py [--repeats 5] [--work DIR] [--quick]
"""

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchlib import REPO_ROOT, child_env, parser, spread, summary, write_report

from pyimagesearch.config import load_config
from pyimagesearch.data.build.builder import build_dataset
from pyimagesearch.data.dataset import (
    MANIFEST_FORMAT,
    SPLITS,
    check_dataset,
    check_unchanged,
    identity_digest,
    write_mean,
)
from pyimagesearch.data.sources.demo import write_demo_dataset
from pyimagesearch.files import sha256_file
from pyimagesearch.run.logs import parse_log

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
    """An ImageNet-sized dataset without its images (sparse .rec files); its config file."""
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
    train = manifest["splits"]["train"]
    train["skipped"] = [{"path": f"train/n{i:08d}/n{i:08d}_{i}.JPEG", "reason": "CMYK JPEG"}
                        for i in range(300)]
    train["listed"] += len(train["skipped"])
    manifest["identity"] = identity_digest(manifest)
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    config = folder / "config.py"
    config.write_text("\n".join([
        *(f"{split.upper()}_MX_REC = {str(folder / f'{split}.rec')!r}" for split in SPLITS),
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
    """The median ``Time cost`` of the demo's training logs in ``folder``, if any."""
    costs = [record.time for log in sorted(folder.glob("training_*.log"))
             for record in parse_log(log).epochs.values() if record.time]
    return sorted(costs)[len(costs) // 2] if costs else None


def train_one_demo_epoch(folder: Path) -> float | None:
    """Train the digits demo for one epoch into ``folder``; its ``Time cost``."""
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
    args = parser(__doc__, "100k records, 2 repeats", repeats=5, work=(
        "/tmp/bench_contract", "the ImageNet-sized files (sparse: little disk)")).parse_args(argv)
    repeats = 2 if args.quick else args.repeats
    counts = ({k: v // 13 for k, v in IMAGENET_COUNTS.items()} if args.quick
              else IMAGENET_COUNTS)
    config = load_config(str(write_imagenet_sized(Path(args.work), counts)))
    start = {"train_start": timed(lambda: check_dataset(config, ("train", "val")), repeats),
             "test_start": timed(lambda: check_dataset(config, ("test",)), repeats)}
    print(f"[contract] {sum(counts.values()):,} records: " + ", ".join(
        f"{name} {spread(figures, 3)} s" for name, figures in start.items()))

    demo = load_config("config.demo_googlenet_config")
    if not Path(demo.TRAIN_MX_REC).with_name("manifest.json").is_file():
        print("[contract] building the digits demo dataset first")
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
    write_report(args, "contract.json", {
        "records": counts, "imagenet_sized": start,
        "demo": {"start_check": demo_start, "per_epoch_checks": per_epoch,
                 "epoch_seconds": epoch, "per_epoch_share": share}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
