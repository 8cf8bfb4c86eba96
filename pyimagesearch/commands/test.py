"""``test_googlenet.py``, ``test_inception_resnet_v2.py``, ``test_cifar.py``: rank-1 and
rank-5 of a checkpoint (or of every checkpoint, the best on validation tested)."""

from __future__ import annotations

import argparse
import sys

from pyimagesearch.commands.common import (
    add_config_argument,
    add_device_arguments,
    add_run_arguments,
    run,
)
from pyimagesearch.config import load_config
from pyimagesearch.errors import EXIT_BELOW_TARGET, EXIT_NOT_SAVED
from pyimagesearch.evaluation.crops import CROPS
from pyimagesearch.evaluation.evaluate import (
    ResultNotSaved,
    evaluate_all_epochs,
    evaluate_checkpoint,
)
from pyimagesearch.run.paths import epochs_csv_path
from pyimagesearch.settings import argument_type


def build_parser(description: str, default_config: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    add_run_arguments(parser)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("-e", "--epoch", type=argument_type("--epoch"),
                       help="checkpoint epoch to evaluate, or 'last' for the newest")
    which.add_argument("--all-epochs", action="store_true",
                       help="score every checkpoint on validation (<prefix>-epochs.csv), then "
                            "the best of them on the test split")
    add_config_argument(parser, default_config)
    parser.add_argument("--split", choices=("test", "val"), default="test",
                        help="records to score (default: the test split carved from train)")
    add_device_arguments(parser)
    parser.add_argument("--override", action="store_true",
                        help="score even though the dataset is not the one the checkpoint "
                             "was trained on (the differences are printed as warnings)")
    parser.add_argument("--crops", type=int, choices=CROPS, default=1,
                        help="1: the center crop (default); 10: four corners and center of "
                             "the stored RESIZE square, and their mirrors, softmax averaged")
    parser.add_argument("--require-rank1", type=argument_type("--require-rank1"), default=None,
                        metavar="FRACTION",
                        help="exit non-zero when rank-1 is below this (e.g. 0.90 for the demo)")
    return parser


def main(argv: list[str] | None, description: str, default_config: str) -> int:
    args = build_parser(description, default_config).parse_args(argv)
    return run(lambda: score(args))


def score(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    not_saved: ResultNotSaved | None = None
    if args.all_epochs:
        try:
            rows, result = evaluate_all_epochs(config, args.checkpoints, args.prefix,
                                               args.cpu_contexts, args.crops, args.override,
                                               args.gpus)
        except ResultNotSaved as exc:  # shown first, then the files it could not write
            not_saved, rows, result = exc, exc.rows or [], exc.result
        for row in rows:
            print(f"[INFO] epoch {row['epoch']}: validation rank-1 "
                  f"{100 * row['val_rank1']:.2f}%, rank-5 {100 * row['val_rank5']:.2f}%, "
                  f"loss {row['val_loss']:.4f}")
        print(f"[INFO] best on validation: epoch {result['epoch']} (all epochs in "
              f"{epochs_csv_path(args.checkpoints, args.prefix)})")
        args.split = "test"
    else:
        try:
            result = evaluate_checkpoint(config, args.checkpoints, args.prefix, args.epoch,
                                         args.split, args.cpu_contexts, args.crops,
                                         args.override, args.gpus)
        except ResultNotSaved as exc:
            not_saved, result = exc, exc.result
    for warning in result["warnings"]:
        print(f"[WARNING] {warning}", file=sys.stderr)
    print(f"[INFO] {args.prefix} epoch {result['epoch']} on {result['images']} {args.split} "
          f"images ({result['records']}), {result['protocol']}")
    print(f"[INFO] rank-1: {100 * result['accuracy']:.2f}%")
    print(f"[INFO] rank-5: {100 * result['top_k_accuracy_5']:.2f}%")
    print(f"[INFO] loss: {result['cross-entropy']:.4f}")
    if not_saved is not None:
        print(f"[ERROR] {not_saved}", file=sys.stderr)
    if args.require_rank1 is not None and result["accuracy"] < args.require_rank1:
        print(f"[ERROR] rank-1 {result['accuracy']:.4f} is below the required "
              f"{args.require_rank1:.4f}", file=sys.stderr)
        return EXIT_BELOW_TARGET
    return EXIT_NOT_SAVED if not_saved is not None else 0
