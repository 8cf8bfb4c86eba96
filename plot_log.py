"""Plot rank-1, rank-5 and loss of a whole run, restarts stitched and marked.

    python plot_log.py --checkpoints output/checkpoints --prefix googlenet
    python plot_log.py --logs training_0.log training_25.log --prefix book_googlenet
    python plot_log.py --runs output/resnet20/seed* --prefix resnet20 --error

``--runs`` overlays several runs of one setting with their mean and a min-max band.
"""

import sys

from pyimagesearch.commands import plot_log


def main(argv: list[str] | None = None) -> int:
    return plot_log.main(argv)


if __name__ == "__main__":
    sys.exit(main())
