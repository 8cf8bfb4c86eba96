"""Classify image files with a checkpoint (or its ONNX export): top-5 names, probabilities.

    python classify_image.py --checkpoints output/googlenet --prefix googlenet --epoch 50 \
        photo.jpg
    python classify_image.py --onnx output/googlenet/googlenet-0050.onnx photo.jpg
"""

import sys

from pyimagesearch.commands import classify_image


def main(argv: list[str] | None = None) -> int:
    return classify_image.main(argv)


if __name__ == "__main__":
    sys.exit(main())
