"""``build_demo_dataset.py``: write the embedded demo tree a config names."""

from __future__ import annotations

from pyimagesearch.commands.build_imagenet import data_parser, run_on_config
from pyimagesearch.config import Settings
from pyimagesearch.data.sources.demo import write_demo


def main(argv: list[str] | None, description: str, default_config: str) -> int:
    args = data_parser(description, default_config).parse_args(argv)

    def write(config: Settings) -> int:
        print(write_demo(config))
        return 0

    return run_on_config(args, write)
