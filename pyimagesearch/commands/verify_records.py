"""``verify_records.py``: check a built dataset's records against its manifest."""

from __future__ import annotations

import argparse
import sys

from pyimagesearch.commands.build_imagenet import DATA_LOGGING
from pyimagesearch.commands.common import add_config_argument, run, setup_logging
from pyimagesearch.config import load_config
from pyimagesearch.data.dataset import SPLITS, load_manifest, rebuild_command
from pyimagesearch.data.records.verify import check_splits
from pyimagesearch.errors import EXIT_FAILED


def main(argv: list[str] | None, description: str, default_config: str) -> int:
    parser = argparse.ArgumentParser(description=description)
    add_config_argument(parser, default_config)
    parser.add_argument("--decode", action="store_true",
                        help="also decode every image (reads every byte)")
    parser.add_argument("--hash", action="store_true",
                        help="also compare each file's SHA-256 with the manifest")
    parser.add_argument("--split", default=",".join(SPLITS),
                        help="comma-separated splits to check (default: %(default)s)")
    args = parser.parse_args(argv)
    splits = [name.strip() for name in args.split.split(",") if name.strip()]
    if set(splits) - set(SPLITS) or not splits:
        parser.error(f"--split takes some of {', '.join(SPLITS)}, not {args.split!r}")
    setup_logging(**DATA_LOGGING)

    def verify() -> int:
        config = load_config(args.config)
        report = check_splits(config, load_manifest(config), splits, decode=args.decode,
                              check_hash=args.hash)
        print("\n".join(report.lines()))
        if not report.sound:
            print(f"rebuild with: {rebuild_command(config)}", file=sys.stderr)
            return EXIT_FAILED
        return 0

    return run(verify, prefix="error: ")
