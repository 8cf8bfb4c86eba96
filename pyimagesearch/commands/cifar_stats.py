"""``cifar_stats.py``: the final test error over the runs of each CIFAR setting, beside
He et al. 2016 Table 6 and the Torch reproduction."""

from __future__ import annotations

import argparse
import json

from pyimagesearch.commands.common import add_device_arguments, run, setup_logging
from pyimagesearch.config import load_config
from pyimagesearch.evaluation.statistics import (
    collect_setting,
    format_setting,
    format_table,
    report_json,
)
from pyimagesearch.files import atomic_write_text
from pyimagesearch.settings import argument_type


def main(argv: list[str] | None = None) -> int:
    """Exit 0, or 2 when a setting has no run or cannot be evaluated."""
    parser = argparse.ArgumentParser(
        description="Final test error over the runs of each setting, side by side with "
                    "He et al. 2016 Table 6.")
    parser.add_argument("settings", nargs="+", metavar="DIR",
                        help="a setting: the --checkpoints folder of train_cifar.py (its "
                             "seed<k> runs), or a single run folder")
    parser.add_argument("-p", "--prefix", required=True, help="checkpoint prefix of the runs")
    parser.add_argument("-k", "--last", type=argument_type("--last"), default=5, metavar="K",
                        help="average the validation error over each run's last K epochs "
                             "(default 5: epochs 195-200 of a 200-epoch run)")
    parser.add_argument("--config", default=None,
                        help="config for evaluating runs without a test result (default: "
                             "each run's own config, as recorded in its checkpoint)")
    parser.add_argument("--no-evaluate", action="store_true",
                        help="use only test results already saved (test_cifar.py)")
    add_device_arguments(parser)
    parser.add_argument("--json", default=None, metavar="PATH",
                        help="also write the numbers as JSON")
    args = parser.parse_args(argv)
    setup_logging()
    return run(lambda: summarize(args))


def summarize(args: argparse.Namespace) -> int:
    config = load_config(args.config) if args.config else None
    settings = [collect_setting(path, args.prefix, args.last, config,
                                not args.no_evaluate, args.cpu_contexts, args.gpus)
                for path in args.settings]
    for setting in settings:
        print(format_setting(setting, args.last))
        print()
    print(format_table(settings, args.last))
    if args.json:
        atomic_write_text(args.json, json.dumps(report_json(settings, args.last), indent=2))
        print(f"[INFO] wrote {args.json}")
    return 0
