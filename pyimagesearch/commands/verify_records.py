"""``verify_records.py``: check a built dataset's records against its manifest."""

from __future__ import annotations

import sys

from pyimagesearch.commands.build_imagenet import data_parser, run_on_config
from pyimagesearch.config import Settings
from pyimagesearch.data.dataset import SPLITS, load_manifest, rebuild_command
from pyimagesearch.data.records.verify import check_splits
from pyimagesearch.errors import EXIT_FAILED


def main(argv: list[str] | None, description: str, default_config: str) -> int:
    parser = data_parser(description, default_config)
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

    def verify(config: Settings) -> int:
        report = check_splits(config, load_manifest(config), splits, decode=args.decode,
                              check_hash=args.hash)
        print("\n".join(report.lines()))
        if not report.sound:
            print(f"rebuild with: {rebuild_command(config)}", file=sys.stderr)
            return EXIT_FAILED
        return 0

    return run_on_config(args, verify)
