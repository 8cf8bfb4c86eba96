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

from __future__ import annotations

import argparse
import logging
import sys

from pyimagesearch.config import ConfigError, load_config
from pyimagesearch.data.build import BuildError, StrictBuildError, build_dataset, format_summary
from pyimagesearch.data.dataset import DatasetError, manifest_path
from pyimagesearch.utils.locks import LockError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--config", default="config.imagenet_googlenet_config",
                        help="config module or .py file (default: %(default)s)")
    parser.add_argument("--strict", action="store_true",
                        help="fail, writing nothing, if any listed image cannot be read")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s",
                        datefmt="%H:%M:%S")
    try:
        config = load_config(args.config)
        manifest = build_dataset(config, strict=args.strict)
    except StrictBuildError as exc:
        print(exc, file=sys.stderr)
        return 1
    except (ConfigError, DatasetError, LockError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        print("interrupted: temporary files removed, nothing replaced", file=sys.stderr)
        return 130
    print(format_summary(manifest))
    print(f"manifest: {manifest_path(config)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
