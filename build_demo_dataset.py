"""Write the embedded demo dataset: a miniature ILSVRC2015 tree of handwritten digits.

    python build_demo_dataset.py [--config config.demo_googlenet_config]

Then ``python build_imagenet.py --config config.demo_googlenet_config`` packs it exactly
as it would pack the real ImageNet. For a config with ``DATASET_LAYOUT = "folders"``
(``config.demo_folder_config``) it writes an image-folder tree of real photographs.
"""

from __future__ import annotations

import argparse
import logging
import sys

from pyimagesearch.config import ConfigError, load_config
from pyimagesearch.data.dataset import DatasetError
from pyimagesearch.data.demo_dataset import write_demo


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="config.demo_googlenet_config",
                        help="config module or .py file (default: %(default)s)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s",
                        datefmt="%H:%M:%S")
    try:
        summary = write_demo(load_config(args.config))
    except (ConfigError, DatasetError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
