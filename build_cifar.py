"""Official CIFAR-10/100 files (python or binary) -> train/val/test .rec/.idx + means + manifest.

    python build_cifar.py [--config config.cifar10_resnet_config]

Images are stored PNG-encoded (lossless); the means are those of the training split, per
channel (DATASET_MEAN) and per pixel (MEAN_IMAGE). A pickle referencing anything but numpy
arrays is refused unrun. Exit status: 0 done, 2 bad config or CIFAR files, 130 interrupted
(the previous complete dataset, if any, is then left as it was).
"""

import sys

from pyimagesearch.commands import build_cifar


def main(argv: list[str] | None = None) -> int:
    return build_cifar.main(argv, description="Convert the official CIFAR-10/100 files "
                            "into MXNet records.", default_config="config.cifar10_resnet_config")


if __name__ == "__main__":
    sys.exit(main())
