"""Raw ILSVRC2015 tree -> train/val/test .lst -> .rec/.idx + training-set mean + manifest.

    python build_imagenet.py [--config config.imagenet_googlenet_config] [--strict]

Unreadable images are skipped and listed (in the summary and in the manifest);
``--strict`` turns any of them into a failure that writes nothing. Exit status: 0 done,
1 ``--strict`` found unreadable images, 2 bad config, devkit files or lists (an unsafe
path, an empty split or class) or another build writing to the same folder, 3 the build
failed (an image worker died or hung, the disk is full, the records do not read back),
130 interrupted. In every failure case the
previous complete dataset, if any, is left as it was (docs/faults_data.md).
"""

import sys

from pyimagesearch.commands import build_imagenet


def main(argv: list[str] | None = None) -> int:
    return build_imagenet.main(argv, description=__doc__.splitlines()[0],
                               default_config="config.imagenet_googlenet_config")


if __name__ == "__main__":
    sys.exit(main())
