"""``classify_image.py``: the top classes of image files, by a checkpoint or its ONNX export."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from pyimagesearch.commands.common import (
    add_recorded_config_arguments,
    add_run_arguments,
    run,
)
from pyimagesearch.errors import EXIT_UNREADABLE
from pyimagesearch.inference.classify import DEFAULT_TOP, Classifier, ImageResult
from pyimagesearch.settings import argument_type


def format_result(result: ImageResult) -> str:
    if result.error is not None:
        return f"{result.path}: cannot be classified: {result.error}"
    lines = [result.path]
    for rank, p in enumerate(result.predictions or [], 1):
        wnid = f"{p.wnid}, " if p.wnid else ""
        lines.append(f"  {rank}. {100 * p.probability:6.2f}%  {p.name} ({wnid}label {p.label})")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Classify images with a checkpoint (or its ONNX export): top classes "
                    "with names and probabilities, preprocessed as evaluation does.")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    add_run_arguments(parser, epoch=True, required=False)
    add_recorded_config_arguments(parser)
    parser.add_argument("--onnx", metavar="FILE",
                        help="classify with this export_onnx.py file instead of a checkpoint")
    parser.add_argument("--runtime", choices=("auto", "onnxruntime", "reference"),
                        default="auto", help="with --onnx: which runtime runs it")
    parser.add_argument("-k", "--top", type=argument_type("--top"), default=DEFAULT_TOP,
                        help="how many classes to show per image (default 5)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.onnx and not (args.checkpoints and args.prefix and args.epoch is not None):
        parser.error("give --checkpoints, --prefix and --epoch, or --onnx FILE")
    return run(lambda: classify(args))


def classify(args: argparse.Namespace) -> int:
    if args.onnx:
        classifier = Classifier.from_onnx(args.onnx, args.runtime)
    else:
        classifier = Classifier.from_checkpoint(args.checkpoints, args.prefix, args.epoch,
                                                args.config, args.override)
    results = classifier.classify(args.images, args.top)
    failed = [r for r in results if r.error is not None]
    if args.json:
        print(json.dumps([asdict(r) for r in results], indent=2))
    else:
        print(f"[INFO] {classifier.description}")
        print(f"[INFO] preprocessing: {classifier.preprocessing.describe()}")
        for result in results:
            if result.error is None:
                print(format_result(result))
    for result in failed:
        print(f"[ERROR] {format_result(result)}", file=sys.stderr)
    if failed:
        print(f"[ERROR] {len(failed)} of {len(results)} images could not be read",
              file=sys.stderr)
        return EXIT_UNREADABLE
    return 0
