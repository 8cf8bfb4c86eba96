"""Train CIFAR ResNets (He et al. 2016): depth 6n+2, shortcut A/B, block variants, R runs.

    python train_cifar.py --checkpoints output/resnet20 --prefix resnet20 --depth 20 --runs 5
    python train_cifar.py --checkpoints output/resnet20 --prefix resnet20 --depth 20 --runs 5 \\
        --resume
    python train_cifar.py --config config.cifar10_resnet_torch_config --depth 110 \\
        --checkpoints output/torch_resnet110 --prefix resnet110 --runs 5 --seed 1

Run k (seed S+k) lives in <checkpoints>/seed<S+k>.
"""

import sys

from pyimagesearch.commands import train_cifar


def main(argv: list[str] | None = None) -> int:
    return train_cifar.main(argv, description=__doc__.splitlines()[0],
                            default_config="config.cifar10_resnet_config")


if __name__ == "__main__":
    sys.exit(main())
