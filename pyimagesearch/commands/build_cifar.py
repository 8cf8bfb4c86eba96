"""``build_cifar.py``: the official CIFAR-10/100 files into records, means and manifest."""

from __future__ import annotations

from pyimagesearch.commands.build_imagenet import (
    INTERRUPTED,
    data_parser,
    print_built,
    run_on_config,
)
from pyimagesearch.data.build.cifar import build_cifar_dataset, format_summary


def main(argv: list[str] | None, description: str, default_config: str) -> int:
    args = data_parser(description, default_config).parse_args(argv)
    return run_on_config(args, lambda config: print_built(
        format_summary(build_cifar_dataset(config)), config), INTERRUPTED)
