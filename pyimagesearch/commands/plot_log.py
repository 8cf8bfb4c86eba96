"""``plot_log.py``: the curves of a whole run, its restarts stitched, or of several runs."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from pathlib import Path

from pyimagesearch.commands.common import run
from pyimagesearch.errors import ProjectError
from pyimagesearch.files import write_failure
from pyimagesearch.reporting.plots import BANDS, plot_history, plot_runs
from pyimagesearch.run.logs import RunHistory, metrics_history, stitch_logs
from pyimagesearch.run.paths import metrics_files, metrics_jsonl_path, run_logs


class PlotError(ProjectError):
    """Nothing to plot, or the plots cannot be written."""


def _recognised(history: RunHistory, sources: list[Path]) -> RunHistory:
    if not history.epochs:
        names = ", ".join(str(p) for p in sources)
        raise PlotError(f"nothing to plot in {names}: no epoch's figures recognised "
                        f"(lines such as Epoch[0] Train-accuracy=0.5)")
    return history


def _run_history(folder: str, prefix: str, no_logs: str) -> tuple[RunHistory, str]:
    """A run folder's history and what it came from: its logs, or its metrics file when the
    logs are gone (deleted while the run went on, say); ``no_logs`` is the error without
    either."""
    logs = run_logs(folder)
    if logs:
        return _recognised(stitch_logs(logs), logs), f"{len(logs)} log(s)"
    found = metrics_files(folder)
    named = metrics_jsonl_path(folder, prefix)
    if named in found:
        found = [named]
    if not found:
        raise PlotError(no_logs)
    if len(found) > 1:
        raise PlotError(f"{no_logs}, and several metrics files ("
                        f"{', '.join(p.name for p in found)}): give the run's --prefix")
    print(f"[INFO] no training_*.log in {folder}: plotting {found[0].name}")
    return _recognised(metrics_history(found[0]), found), found[0].name


def _write(plot: Callable[[], list[Path]], output: str) -> None:
    try:
        paths = plot()
    except OSError as exc:
        raise PlotError(f"{write_failure(exc.filename or output, exc)}; give --output DIR to "
                        f"write the plots elsewhere") from None
    for path in paths:
        print(f"[INFO] wrote {path}")


def plot_runs_command(args: argparse.Namespace) -> int:
    histories = [_run_history(folder, args.prefix, f"no training_*.log in {folder}")[0]
                 for folder in args.runs]
    output = args.output or os.path.commonpath([str(Path(f).resolve()) for f in args.runs])
    _write(lambda: plot_runs(histories, output, args.prefix, args.band, args.error), output)
    epochs = [len(h.epochs) for h in histories]
    print(f"[INFO] {len(histories)} runs overlaid ({min(epochs)}-{max(epochs)} epochs each), "
          f"band {args.band}")
    return 0


def plot_run_command(args: argparse.Namespace) -> int:
    if args.logs:
        logs = [Path(p) for p in args.logs]
        missing = [str(p) for p in logs if not p.is_file()]
        if missing:
            raise PlotError(f"no log to plot: {', '.join(missing)}")
        history, source = _recognised(stitch_logs(logs), logs), f"{len(logs)} log(s)"
    else:
        history, source = _run_history(args.checkpoints, args.prefix,
                                       f"no log to plot: training_*.log in {args.checkpoints}")
    output = args.output or args.checkpoints or str(Path(args.logs[0]).parent)
    _write(lambda: plot_history(history, output, args.prefix), output)
    starts = ", ".join(f"{r.epoch}" + (f" (lr {r.lr:g})" if r.lr is not None else "")
                       for r in history.restarts)
    print(f"[INFO] {len(history.epochs)} epochs from {source}; starts at {starts}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Plot the curves of a whole training run.")
    parser.add_argument("-c", "--checkpoints", help="run folder: reads its training_*.log "
                        "(without any, its metrics file)")
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
        return run(lambda: plot_runs_command(args))
    if not args.checkpoints and not args.logs:
        parser.error("give --checkpoints DIR, --logs FILE ... or --runs DIR ...")
    return run(lambda: plot_run_command(args))
