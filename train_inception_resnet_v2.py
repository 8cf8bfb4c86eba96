"""Train Inception-ResNet-v2 on ImageNet (or the digits demo) over the shared training core.

    python train_inception_resnet_v2.py --checkpoints output/irv2 --prefix irv2
    python train_inception_resnet_v2.py --checkpoints output/irv2 --prefix irv2 --start-epoch 30
    python train_inception_resnet_v2.py --config config.demo_inception_resnet_v2_config \\
        --checkpoints output/demo_irv2 --prefix irv2
"""

import sys

from pyimagesearch.commands import train


def main(argv: list[str] | None = None) -> int:
    return train.main(argv, description=__doc__.splitlines()[0],
                      default_config="config.imagenet_inception_resnet_v2_config")


if __name__ == "__main__":
    sys.exit(main())
