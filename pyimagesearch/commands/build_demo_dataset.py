"""``build_demo_dataset.py``: write the embedded demo tree a config names."""

from __future__ import annotations

import argparse

from pyimagesearch.commands.build_imagenet import DATA_LOGGING
from pyimagesearch.commands.common import add_config_argument, run, setup_logging
from pyimagesearch.config import load_config
from pyimagesearch.data.sources.demo import write_demo


def main(argv: list[str] | None, description: str, default_config: str) -> int:
    parser = argparse.ArgumentParser(description=description)
    add_config_argument(parser, default_config)
    args = parser.parse_args(argv)
    setup_logging(**DATA_LOGGING)

    def write() -> int:
        print(write_demo(load_config(args.config)))
        return 0

    return run(write, prefix="error: ")
