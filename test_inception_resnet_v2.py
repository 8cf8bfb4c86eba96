"""Evaluate an Inception-ResNet-v2 checkpoint on the test records: rank-1 and rank-5.

    python test_inception_resnet_v2.py --checkpoints output/irv2 --prefix irv2 --epoch 90
    python test_inception_resnet_v2.py --checkpoints output/irv2 --prefix irv2 --epoch 90 \\
        --crops 10
"""

import sys

from pyimagesearch.commands import test


def main(argv: list[str] | None = None) -> int:
    return test.main(argv, description=__doc__.splitlines()[0],
                     default_config="config.imagenet_inception_resnet_v2_config")


if __name__ == "__main__":
    sys.exit(main())
