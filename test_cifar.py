"""Evaluate a CIFAR ResNet checkpoint on the test records: error = 1 - rank-1.

    python test_cifar.py --checkpoints output/resnet20/seed1 --prefix resnet20 --epoch last
"""

import sys

from pyimagesearch.commands import test


def main(argv: list[str] | None = None) -> int:
    return test.main(argv, description=__doc__.splitlines()[0],
                     default_config="config.cifar10_resnet_config")


if __name__ == "__main__":
    sys.exit(main())
