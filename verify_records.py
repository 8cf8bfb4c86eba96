"""Check a built dataset's .rec/.idx files before MXNet reads them.

    python verify_records.py [--config config.imagenet_googlenet_config] [--decode] [--hash]
                             [--split train,val,test]

Walks every record of each split (structure, ids, labels in [0, NUM_CLASSES), count and
file sizes against the manifest); ``--hash`` also compares the SHA-256s in the manifest and
``--decode`` decodes every image, as the training iterator will. Prints one line per
split. Exit status: 0 every split sound, 1 a split has a problem (each one is reported,
naming the file, the .idx line and the record id), 2 the config or manifest cannot be read.
"""

from __future__ import annotations

import argparse
import logging
import sys

from pyimagesearch.config import ConfigError, load_config
from pyimagesearch.data.dataset import SPLITS, DatasetError, load_manifest, rebuild_command
from pyimagesearch.data.verify import check_splits


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="config.imagenet_googlenet_config",
                        help="config module or .py file (default: %(default)s)")
    parser.add_argument("--decode", action="store_true",
                        help="also decode every image (reads every byte)")
    parser.add_argument("--hash", action="store_true",
                        help="also compare each file's SHA-256 with the manifest")
    parser.add_argument("--split", default=",".join(SPLITS),
                        help="comma-separated splits to check (default: %(default)s)")
    args = parser.parse_args(argv)
    args.splits = [name.strip() for name in args.split.split(",") if name.strip()]
    unknown = sorted(set(args.splits) - set(SPLITS))
    if unknown or not args.splits:
        parser.error(f"--split takes some of {', '.join(SPLITS)}, not {args.split!r}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s",
                        datefmt="%H:%M:%S")
    try:
        config = load_config(args.config)
        manifest = load_manifest(config)
    except (ConfigError, DatasetError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    sound, lines = check_splits(config, manifest, args.splits, decode=args.decode,
                                check_hash=args.hash)
    print("\n".join(lines))
    if not sound:
        print(f"rebuild with: {rebuild_command(config)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
