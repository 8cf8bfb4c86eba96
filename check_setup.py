"""Check that this machine can train a config: the first command to run on a new machine.

    python check_setup.py --config config.imagenet_googlenet_config
    python check_setup.py --config config.imagenet_googlenet_config --gpus 0,2
"""

import sys

from pyimagesearch.training.setup_check import check_setup_main


def main(argv: list[str] | None = None) -> int:
    return check_setup_main(argv)


if __name__ == "__main__":
    sys.exit(main())
