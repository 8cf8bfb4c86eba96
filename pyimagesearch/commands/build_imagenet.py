"""``build_imagenet.py``: an ILSVRC tree or image folders into records, mean and manifest;
and what the other dataset commands share with it."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from pyimagesearch.commands.common import add_config_argument, run, setup_logging
from pyimagesearch.config import Settings, load_config
from pyimagesearch.data.build.builder import build_dataset, format_summary
from pyimagesearch.data.dataset import manifest_path

INTERRUPTED = "interrupted: temporary files removed, nothing replaced"


def data_parser(description: str, default_config: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    add_config_argument(parser, default_config)
    return parser


def run_on_config(args: argparse.Namespace, body: Callable[[Settings], int],
                  interrupted: str | None = None) -> int:
    """``body(config)`` with the dataset commands' logging and their ``error:`` lines."""
    setup_logging("%(asctime)s %(levelname)s %(message)s", datefmt="%H:%M:%S")
    return run(lambda: body(load_config(args.config)), prefix="error: ",
               interrupted=interrupted)


def print_built(summary: str, config: Settings) -> int:
    print(summary)
    print(f"manifest: {manifest_path(config)}")
    return 0


def main(argv: list[str] | None, description: str, default_config: str) -> int:
    parser = data_parser(description, default_config)
    parser.add_argument("--strict", action="store_true",
                        help="fail, writing nothing, if any listed image cannot be read")
    args = parser.parse_args(argv)
    return run_on_config(args, lambda config: print_built(
        format_summary(build_dataset(config, strict=args.strict)), config), INTERRUPTED)
