"""Train GoogLeNet on ImageNet (or the digits demo), as in the ImageNet Bundle.

    python train_googlenet.py --checkpoints output/checkpoints --prefix googlenet
    python train_googlenet.py --checkpoints output/checkpoints --prefix googlenet \\
        --start-epoch 30 --lr 1e-4
"""

import sys

from pyimagesearch.commands import train


def main(argv: list[str] | None = None) -> int:
    return train.main(argv, description=__doc__.splitlines()[0],
                      default_config="config.imagenet_googlenet_config")


if __name__ == "__main__":
    sys.exit(main())
