"""Check a built dataset's .rec/.idx files before MXNet reads them.

    python verify_records.py [--config config.imagenet_googlenet_config] [--decode] [--hash]
                             [--split train,val,test]

Walks every record of each split (structure, ids, labels in [0, NUM_CLASSES), count and
file sizes against the manifest); ``--hash`` also compares the SHA-256s in the manifest and
``--decode`` decodes every image, as the training iterator will. Prints one line per
split. Exit status: 0 every split sound, 1 a split has a problem (each one is reported,
naming the file, the .idx line and the record id), 2 the config or manifest cannot be read.
"""

import sys

from pyimagesearch.commands import verify_records


def main(argv: list[str] | None = None) -> int:
    return verify_records.main(argv, description=__doc__.splitlines()[0],
                               default_config="config.imagenet_googlenet_config")


if __name__ == "__main__":
    sys.exit(main())
