"""``report.py``: one self-contained HTML page of a training run."""

from __future__ import annotations

import argparse

from pyimagesearch.commands.common import add_run_arguments, run
from pyimagesearch.reporting.page import percent
from pyimagesearch.reporting.run_report import write_report
from pyimagesearch.scoring import RANK1, RANK5


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Write one self-contained HTML report of a training run.")
    add_run_arguments(parser)
    parser.add_argument("--config", default=None,
                        help="config module or .py path, used only when no checkpoint "
                             "records one")
    parser.add_argument("-o", "--output", default=None,
                        help="the HTML file (default DIR/NAME-report.html); the PNGs go "
                             "beside it")
    parser.add_argument("--override", action="store_true",
                        help="write the report even though the run's dataset was rebuilt "
                             "since (the differences are shown)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return run(lambda: report(args))


def report(args: argparse.Namespace) -> int:
    path, data = write_report(args.checkpoints, args.prefix, args.output, args.config,
                              args.override)
    final = data.final
    if final is not None:
        print(f"[INFO] final checkpoint {final.epoch}: validation rank-1 "
              f"{percent(final.val.get(RANK1))}, rank-5 {percent(final.val.get(RANK5))}")
    if data.best is not None:
        print(f"[INFO] best on validation: checkpoint {data.best.epoch}, rank-1 "
              f"{percent(data.best.val.get(RANK1))}")
    print(f"[INFO] wrote {path}")
    return 0
