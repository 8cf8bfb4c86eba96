"""Check that this machine can train a config: the first command to run on a new machine.

    python check_setup.py --config config.imagenet_googlenet_config
    python check_setup.py --config config.imagenet_googlenet_config --gpus 0,2
"""

import sys

from pyimagesearch.commands import check_setup


def main(argv: list[str] | None = None) -> int:
    return check_setup.main(argv)


if __name__ == "__main__":
    sys.exit(main())
