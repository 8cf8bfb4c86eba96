"""Final test error over R runs of each CIFAR setting, side by side with He et al.'s Table 6.

    python cifar_stats.py output/resnet20 output/resnet32 output/resnet56 --prefix resnet
    python cifar_stats.py output/variants/* --prefix resnet20 --last 5 --json stats.json

Each DIR is the --checkpoints folder of a train_cifar.py study (its seed<k> runs) or one
run folder. Runs whose last checkpoint has no saved test result are evaluated first.
"""

import sys

from pyimagesearch.commands import cifar_stats


def main(argv: list[str] | None = None) -> int:
    return cifar_stats.main(argv)


if __name__ == "__main__":
    sys.exit(main())
