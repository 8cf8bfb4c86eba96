"""``report.py``: one self-contained HTML page of a training run."""

from __future__ import annotations

import argparse

from pyimagesearch.commands.common import add_recorded_config_arguments, add_run_arguments, run
from pyimagesearch.reporting.page import percent
from pyimagesearch.reporting.run_report import write_report
from pyimagesearch.scoring import RANK1, RANK5


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Write one self-contained HTML report of a training run.")
    add_run_arguments(parser)
    add_recorded_config_arguments(parser)
    parser.add_argument("-o", "--output", default=None,
                        help="the HTML file (default DIR/NAME-report.html); the PNGs go "
                             "beside it")
    args = parser.parse_args(argv)
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
