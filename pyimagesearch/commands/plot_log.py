"""``plot_log.py``: the curves of a whole run, its restarts stitched, or of several runs."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from pyimagesearch.reporting.plots import BANDS, plot_history, plot_runs
from pyimagesearch.run.logs import stitch_logs
from pyimagesearch.run.paths import run_logs


def plot_runs_command(args: argparse.Namespace) -> int:
    histories = []
    for folder in args.runs:
        logs = run_logs(folder)
        if not logs:
            print(f"[ERROR] no training_*.log in {folder}", file=sys.stderr)
            return 2
        histories.append(stitch_logs(logs))
    output = args.output or os.path.commonpath([str(Path(f).resolve()) for f in args.runs])
    for path in plot_runs(histories, output, args.prefix, args.band, args.error):
        print(f"[INFO] wrote {path}")
    epochs = [len(h.epochs) for h in histories]
    print(f"[INFO] {len(histories)} runs overlaid ({min(epochs)}-{max(epochs)} epochs each), "
          f"band {args.band}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Plot the curves of a whole training run.")
    parser.add_argument("-c", "--checkpoints", help="run folder: reads its training_*.log")
    parser.add_argument("-l", "--logs", nargs="+", help="log files to stitch instead "
                        "(also the book's mx.model logs)")
    parser.add_argument("-p", "--prefix", default="training", help="title and file-name prefix")
    parser.add_argument("-r", "--runs", nargs="+", metavar="DIR",
                        help="several run folders of one setting (e.g. out/resnet20/seed*): "
                             "overlay them with their mean and a band")
    parser.add_argument("--band", choices=BANDS, default="minmax",
                        help="with --runs: band from the lowest to the highest run, or mean "
                             "± one sample std (default minmax)")
    parser.add_argument("--error", action="store_true",
                        help="with --runs: draw rank-1/rank-5 as error in percent")
    parser.add_argument("-o", "--output", help="folder for the PNGs (default: the run folder; "
                        "with --runs their common parent)")
    args = parser.parse_args(argv)
    if args.runs:
        if args.checkpoints or args.logs:
            parser.error("--runs plots several runs: give it without --checkpoints/--logs")
        return plot_runs_command(args)
    if not args.checkpoints and not args.logs:
        parser.error("give --checkpoints DIR, --logs FILE ... or --runs DIR ...")
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
