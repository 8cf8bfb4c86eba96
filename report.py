"""Write one self-contained HTML report of a training run (and its PNG curves).

    python report.py --checkpoints output/googlenet --prefix googlenet
"""

import sys

from pyimagesearch.reporting.run_report import report_main


def main(argv=None):
    return report_main(argv)


if __name__ == "__main__":
    sys.exit(main())
