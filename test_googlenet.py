"""Evaluate a GoogLeNet checkpoint on the test records: rank-1 and rank-5, as in the book.

    python test_googlenet.py --checkpoints output/checkpoints --prefix googlenet --epoch 50
"""

import sys

from pyimagesearch.commands import test


def main(argv: list[str] | None = None) -> int:
    return test.main(argv, description=__doc__.splitlines()[0],
                     default_config="config.imagenet_googlenet_config")


if __name__ == "__main__":
    sys.exit(main())
