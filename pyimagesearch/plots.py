"""Curves of a whole run, restarts stitched: what ``plot_log.py`` draws.

Each start of a run leaves its own ``training_<epoch>.log``; ``stitch_logs`` keeps, for
every epoch, the values of the last start that trained it. Restarts are marked with a
vertical line labelled with the learning rate they began with, which is how the book's
readers see where they dropped the rate by hand.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on training servers or in CI
import matplotlib.pyplot as plt

from pyimagesearch.training.logs import RunHistory
from pyimagesearch.training.metrics import LOSS, RANK1, RANK5

CURVES = ((RANK1, "rank-1 accuracy", "rank1"), (RANK5, "rank-5 accuracy", "rank5"),
          (LOSS, "cross-entropy loss", "loss"))


def _series(history: RunHistory, kind: str, name: str) -> tuple[list[int], list[float]]:
    """Values for every epoch from the first to the last; missing ones are NaN (gaps)."""
    if not history.epochs:
        return [], []
    epochs = list(range(min(history.epochs), max(history.epochs) + 1))
    values = []
    for epoch in epochs:
        record = history.epochs.get(epoch)
        source = (record.train if kind == "train" else record.val) if record else {}
        values.append(source.get(name, math.nan))
    return epochs, values


def plot_history(history: RunHistory, output: str | Path, title: str) -> list[Path]:
    """Write one PNG per quantity (rank-1, rank-5, loss) into ``output``; return the paths."""
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    written = []
    for metric, label, suffix in CURVES:
        figure, axes = plt.subplots(figsize=(8, 5))
        for kind, style in (("train", "-"), ("val", "--")):
            epochs, values = _series(history, kind, metric)
            axes.plot(epochs, values, style, marker="o", markersize=3,
                      label=f"{'train' if kind == 'train' else 'validation'} {label}")
        for restart in history.restarts[1:]:
            axes.axvline(restart.epoch, color="grey", linestyle=":", linewidth=1)
            text = f"restart @ {restart.epoch}"
            if restart.lr is not None:
                text += f"\nlr={restart.lr:g}"
            axes.annotate(text, (restart.epoch, 1.0), xycoords=("data", "axes fraction"),
                          xytext=(3, -4), textcoords="offset points", va="top", fontsize=8,
                          color="dimgrey")
        axes.set_xlabel("epoch")
        axes.set_ylabel(label)
        axes.set_title(f"{title}: {label}")
        axes.grid(alpha=0.3)
        axes.legend(loc="best")
        figure.tight_layout()
        path = output / f"{title}_{suffix}.png"
        figure.savefig(path, dpi=100)
        plt.close(figure)
        written.append(path)
    return written


def plot_main(argv: list[str] | None = None) -> int:
    import argparse
    import sys

    from pyimagesearch.training.logs import run_logs, stitch_logs

    parser = argparse.ArgumentParser(description="Plot the curves of a whole training run.")
    parser.add_argument("-c", "--checkpoints", help="run folder: reads its training_*.log")
    parser.add_argument("-l", "--logs", nargs="+", help="log files to stitch instead "
                        "(also the book's mx.model logs)")
    parser.add_argument("-p", "--prefix", default="training", help="title and file-name prefix")
    parser.add_argument("-o", "--output", help="folder for the PNGs (default: the run folder)")
    args = parser.parse_args(argv)
    if not args.checkpoints and not args.logs:
        parser.error("give --checkpoints DIR or --logs FILE ...")
    logs = [Path(p) for p in args.logs] if args.logs else run_logs(args.checkpoints)
    missing = [str(p) for p in logs if not p.is_file()]
    if not logs or missing:
        where = ", ".join(missing) if missing else f"training_*.log in {args.checkpoints}"
        print(f"[ERROR] no log to plot: {where}", file=sys.stderr)
        return 2
    history = stitch_logs(logs)
    output = args.output or args.checkpoints or str(logs[0].parent)
    for path in plot_history(history, output, args.prefix):
        print(f"[INFO] wrote {path}")
    starts = ", ".join(f"{r.epoch}" + (f" (lr {r.lr:g})" if r.lr is not None else "")
                       for r in history.restarts)
    print(f"[INFO] {len(history.epochs)} epochs from {len(logs)} log(s); starts at {starts}")
    return 0
