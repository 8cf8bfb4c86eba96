"""``check_setup.py``: can this machine train a config? One line per check and a verdict."""

from __future__ import annotations

import argparse

from pyimagesearch.commands.common import add_device_arguments
from pyimagesearch.config import ConfigError, load_config
from pyimagesearch.settings import argument_type
from pyimagesearch.training.setup_check import DEFAULT_TOLERANCE, run_checks, verdict


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Check that this machine can train a config: MXNet's build, the GPUs, one "
                    "step of the network on each device against the CPU, the dataset, the disk.")
    parser.add_argument("--config", default="config.imagenet_googlenet_config",
                        help="config module or .py path (default "
                             "config.imagenet_googlenet_config)")
    parser.add_argument("-c", "--checkpoints", default="output",
                        help="where the run's checkpoints will go (for the disk check)")
    add_device_arguments(parser)
    parser.add_argument("--tolerance", type=argument_type("--tolerance"), default=DEFAULT_TOLERANCE,
                        help="largest relative difference from the CPU allowed in the logits "
                             f"and gradients (default {DEFAULT_TOLERANCE:g})")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Exit 0 ready, 1 not ready (each check printed)."""
    args = build_parser().parse_args(argv)
    try:
        config = load_config(args.config)
        checks = run_checks(config, args.checkpoints, args.gpus, args.cpu_contexts,
                            args.tolerance)
    except ConfigError as exc:
        print(f"[FAIL] config: {exc}")
        print("Verdict: NOT READY: the config does not load")
        return 1
    for check in checks:
        print(check.line())
    line, status = verdict(checks)
    print(line)
    return status
