"""Write one self-contained HTML report of a training run (and its PNG curves).

    python report.py --checkpoints output/googlenet --prefix googlenet
"""

import sys

from pyimagesearch.commands import report


def main(argv: list[str] | None = None) -> int:
    return report.main(argv)


if __name__ == "__main__":
    sys.exit(main())
