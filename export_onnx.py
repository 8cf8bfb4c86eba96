"""Export a checkpoint to ONNX, checked against MXNet on test records before it is kept.

    python export_onnx.py --checkpoints output/googlenet --prefix googlenet --epoch 50
"""

import sys

from pyimagesearch.commands import export_onnx


def main(argv: list[str] | None = None) -> int:
    return export_onnx.main(argv)


if __name__ == "__main__":
    sys.exit(main())
