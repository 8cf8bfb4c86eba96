"""Write the embedded demo dataset: a miniature ILSVRC2015 tree of handwritten digits.

    python build_demo_dataset.py [--config config.demo_googlenet_config]

Then ``python build_imagenet.py --config config.demo_googlenet_config`` packs it exactly
as it would pack the real ImageNet. For a config with ``DATASET_LAYOUT = "folders"``
(``config.demo_folder_config``) it writes an image-folder tree of real photographs.
"""

import sys

from pyimagesearch.commands import build_demo_dataset


def main(argv: list[str] | None = None) -> int:
    return build_demo_dataset.main(argv, description=__doc__.splitlines()[0],
                           default_config="config.demo_googlenet_config")


if __name__ == "__main__":
    sys.exit(main())
