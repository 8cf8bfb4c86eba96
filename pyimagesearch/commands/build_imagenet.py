"""``build_imagenet.py``: an ILSVRC tree or image folders into records, mean and manifest."""

from __future__ import annotations

import argparse

from pyimagesearch.commands.common import add_config_argument, run, setup_logging
from pyimagesearch.config import load_config
from pyimagesearch.data.build.builder import build_dataset, format_summary
from pyimagesearch.data.dataset import manifest_path

INTERRUPTED = "interrupted: temporary files removed, nothing replaced"
DATA_LOGGING = {"fmt": "%(asctime)s %(levelname)s %(message)s", "datefmt": "%H:%M:%S"}


def main(argv: list[str] | None, description: str, default_config: str) -> int:
    parser = argparse.ArgumentParser(description=description)
    add_config_argument(parser, default_config)
    parser.add_argument("--strict", action="store_true",
                        help="fail, writing nothing, if any listed image cannot be read")
    args = parser.parse_args(argv)
    setup_logging(**DATA_LOGGING)

    def build() -> int:
        config = load_config(args.config)
        print_built(format_summary(build_dataset(config, strict=args.strict)), config)
        return 0

    return run(build, prefix="error: ", interrupted=INTERRUPTED)


def print_built(summary: str, config) -> None:
    print(summary)
    print(f"manifest: {manifest_path(config)}")
