"""``build_cifar.py``: the official CIFAR-10/100 files into records, means and manifest."""

from __future__ import annotations

import argparse

from pyimagesearch.commands.build_imagenet import DATA_LOGGING, INTERRUPTED, print_built
from pyimagesearch.commands.common import add_config_argument, run, setup_logging
from pyimagesearch.config import load_config
from pyimagesearch.data.build.cifar import build_cifar_dataset, format_summary


def main(argv: list[str] | None, description: str, default_config: str) -> int:
    parser = argparse.ArgumentParser(description=description)
    add_config_argument(parser, default_config)
    args = parser.parse_args(argv)
    setup_logging(**DATA_LOGGING)

    def build() -> int:
        config = load_config(args.config)
        print_built(format_summary(build_cifar_dataset(config)), config)
        return 0

    return run(build, prefix="error: ", interrupted=INTERRUPTED)
