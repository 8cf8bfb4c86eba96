"""The dataset commands: ``build_imagenet.py``, ``build_cifar.py``, ``build_demo_dataset.py``
and ``verify_records.py``. Each parses its arguments, sets up logging, calls one function
of :mod:`pyimagesearch.data` and turns its errors into one line on stderr and an exit
status (:mod:`pyimagesearch.exit_codes`)."""

from __future__ import annotations

import argparse
import logging
import sys

from pyimagesearch.config import ConfigError, Settings, load_config
from pyimagesearch.data.dataset import SPLITS, DatasetError, manifest_path
from pyimagesearch.exit_codes import (
    EXIT_BUILD_FAILED,
    EXIT_ERROR,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
)
from pyimagesearch.locks import LockError

_INTERRUPTED = "interrupted: temporary files removed, nothing replaced"


def _setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s",
                        datefmt="%H:%M:%S")


def _fail(message: object, status: int) -> int:
    print(message, file=sys.stderr)
    return status


def _built(summary: str, config: Settings) -> int:
    print(summary)
    print(f"manifest: {manifest_path(config)}")
    return EXIT_OK


def _parser(description: str, default_config: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--config", default=default_config,
                        help="config module or .py file (default: %(default)s)")
    return parser


def build_imagenet_main(argv: list[str] | None = None, *, description: str,
                        default_config: str = "config.imagenet_googlenet_config") -> int:
    """``build_imagenet.py``: see its docstring for the exit statuses."""
    from pyimagesearch.data.build.builder import (
        BuildError,
        StrictBuildError,
        build_dataset,
        format_summary,
    )

    parser = _parser(description, default_config)
    parser.add_argument("--strict", action="store_true",
                        help="fail, writing nothing, if any listed image cannot be read")
    args = parser.parse_args(argv)
    _setup_logging()
    try:
        config = load_config(args.config)
        manifest = build_dataset(config, strict=args.strict)
    except StrictBuildError as exc:
        return _fail(exc, EXIT_FAILED)
    except (ConfigError, DatasetError, LockError) as exc:
        return _fail(f"error: {exc}", EXIT_ERROR)
    except BuildError as exc:
        return _fail(f"error: {exc}", EXIT_BUILD_FAILED)
    except KeyboardInterrupt:
        return _fail(_INTERRUPTED, EXIT_INTERRUPTED)
    return _built(format_summary(manifest), config)


def build_cifar_main(argv: list[str] | None = None, *,
                     description: str = "Convert the official CIFAR-10/100 files into MXNet "
                                        "records.",
                     default_config: str = "config.cifar10_resnet_config") -> int:
    """``build_cifar.py``: exit 0 done, 2 bad config or CIFAR files or a busy output
    folder, 130 interrupted."""
    from pyimagesearch.data.build.cifar import build_cifar_dataset, format_summary
    from pyimagesearch.data.sources.cifar_format import CifarFormatError
    from pyimagesearch.data.sources.cifar_pickle import UnsafePickleError

    args = _parser(description, default_config).parse_args(argv)
    _setup_logging()
    try:
        config = load_config(args.config)
        manifest = build_cifar_dataset(config)
    except UnsafePickleError as exc:
        print(f"error: {exc}. Nothing in the file was run and nothing was written; "
              f"re-download the dataset from https://www.cs.toronto.edu/~kriz/cifar.html",
              file=sys.stderr)
        return EXIT_ERROR
    except (ConfigError, DatasetError, CifarFormatError, FileNotFoundError, LockError) as exc:
        return _fail(f"error: {exc}", EXIT_ERROR)
    except KeyboardInterrupt:
        return _fail(_INTERRUPTED, EXIT_INTERRUPTED)
    return _built(format_summary(manifest), config)


def build_demo_main(argv: list[str] | None = None, *, description: str,
                    default_config: str = "config.demo_googlenet_config") -> int:
    """``build_demo_dataset.py``: exit 0 written, 2 bad config."""
    from pyimagesearch.data.sources.demo import write_demo

    args = _parser(description, default_config).parse_args(argv)
    _setup_logging()
    try:
        summary = write_demo(load_config(args.config))
    except (ConfigError, DatasetError) as exc:
        return _fail(f"error: {exc}", EXIT_ERROR)
    print(summary)
    return EXIT_OK


def verify_records_main(argv: list[str] | None = None, *, description: str,
                        default_config: str = "config.imagenet_googlenet_config") -> int:
    """``verify_records.py``: exit 0 every split sound, 1 a split has a problem, 2 the
    config or manifest cannot be read."""
    from pyimagesearch.data.dataset import load_manifest, rebuild_command
    from pyimagesearch.data.records.verify import check_splits

    parser = _parser(description, default_config)
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
    _setup_logging()
    try:
        config = load_config(args.config)
        manifest = load_manifest(config)
    except (ConfigError, DatasetError) as exc:
        return _fail(f"error: {exc}", EXIT_ERROR)
    report = check_splits(config, manifest, splits, decode=args.decode,
                          check_hash=args.hash)
    print("\n".join(report.lines()))
    if not report.sound:
        print(f"rebuild with: {rebuild_command(config)}", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK
