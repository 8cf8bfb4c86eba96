"""The command line of every ``test_*.py`` script: score a saved checkpoint on the test records.

``python test_googlenet.py --checkpoints out --prefix googlenet --epoch 50`` loads the
standard MXNet checkpoint (symbol + params, through ``gluon.SymbolBlock.imports``; an
epoch MXNet's symbolic API wrote, without the project's manifest, is mapped onto the
config's network by structure: ``pyimagesearch.run.mxnet_checkpoints``) and prints rank-1
and rank-5 on the test split with a center crop, as the book does, or with ``--crops 10``
averaged over the four corners, the center and their mirrors (``crops.py``).

Exit status: 0 done, 2 bad config, records or checkpoint, 4 rank-1 below
``--require-rank1``, 5 the figures were printed but a result file could not be written
(a read-only or full checkpoint folder; the message names the file).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pyimagesearch.config import ConfigError, Settings, load_config
from pyimagesearch.data.dataset import DatasetError, check_checkpoint_dataset, check_dataset
from pyimagesearch.data.iterators import Normalizer, evaluation_iterator
from pyimagesearch.evaluation.crops import (
    CROPS,
    TenCropAverage,
    describe_crops,
    ten_crop_caveats,
    ten_crop_iterator,
)
from pyimagesearch.exit_codes import EXIT_BELOW_TARGET, EXIT_ERROR, EXIT_NOT_SAVED
from pyimagesearch.files import atomic_write_text, write_failure
from pyimagesearch.run.checkpoints import (
    CheckpointError,
    checkpoint_name,
    epochs_csv_path,
    list_checkpoints,
    load_network,
    read_manifest,
    resolve_epoch,
    result_path,
)
from pyimagesearch.run.mxnet_checkpoints import mxnet_checkpoint_epochs
from pyimagesearch.scoring import EvaluationError, evaluate
from pyimagesearch.training.devices import add_device_arguments, select_contexts


class ResultNotSaved(Exception):
    """The evaluation ran, but its result files could not be written (a read-only or full
    checkpoint folder). ``result`` (and ``rows`` for ``--all-epochs``) hold what it found,
    so it can still be shown."""

    def __init__(self, failures: list[str], result: dict[str, Any],
                 rows: list[dict[str, Any]] | None = None) -> None:
        self.failures, self.result, self.rows = failures, result, rows
        more = f" (and {len(failures) - 1} more file(s))" if len(failures) > 1 else ""
        super().__init__(f"{failures[0]}{more}; the figures above were not saved")


def _save_text(path: Path, text: str, failures: list[str]) -> None:
    """Write a result file; a failure is collected, so the evaluation still reports."""
    try:
        atomic_write_text(path, text)
    except OSError as exc:
        failures.append(write_failure(path, exc))


def evaluate_checkpoint(config: Settings, checkpoints: str, prefix: str, epoch: int | str,
                        split: str = "test", cpu_contexts: int = 1, crops: int = 1,
                        override: bool = False,
                        gpus: tuple[int, ...] | None = None) -> dict[str, Any]:
    """Rank-1, rank-5 and loss of checkpoint ``epoch`` on ``split``; also saved as JSON.

    ``crops`` is 1 (the center crop) or 10 (corners and center, mirrored, averaged). The
    dataset must be the one the checkpoint was trained on (another build could put
    training images in the test split); ``override`` scores anyway, with the differences
    among the result's warnings. A result file that cannot be written raises
    :class:`ResultNotSaved` carrying the result.
    """
    if crops not in CROPS:
        raise ConfigError(f"crops must be one of {CROPS}, got {crops}")
    contexts = select_contexts(config.NUM_DEVICES, cpu_contexts, gpus, config.source)
    epoch = resolve_epoch(checkpoints, prefix, epoch)
    info = check_dataset(config, (split,))
    notes = check_checkpoint_dataset(read_manifest(checkpoints, prefix, epoch, verify=False),
                                     info, f"checkpoint {checkpoint_name(prefix, epoch)}",
                                     override=override)
    batch_size = config.BATCH_SIZE * len(contexts)
    # The iterator first: where 10-crop does not apply, fail before loading any weights.
    batches = (evaluation_iterator(config, info, split, batch_size) if crops == 1
               else ten_crop_iterator(config, info, split, batch_size))
    net = load_network(checkpoints, prefix, epoch, contexts, config)
    scorer = net if crops == 1 else TenCropAverage(net, config.INPUT_SIZE)
    result = evaluate(scorer, batches, contexts, Normalizer(info.mean, info.mean_image),
                      info.splits[split].count)
    result.update(epoch=epoch, split=split, records=info.splits[split].rec, crops=crops,
                  protocol=describe_crops(crops, config),
                  warnings=notes + (ten_crop_caveats(config) if crops == 10 else []))
    failures: list[str] = []
    _save_text(result_path(checkpoints, prefix, epoch, split, crops),
               json.dumps(result, indent=2, sort_keys=True), failures)
    if failures:
        raise ResultNotSaved(failures, result)
    return result


def _evaluate_keeping(failures: list[str], *args: Any) -> dict[str, Any]:
    """:func:`evaluate_checkpoint`, with a result file that cannot be written collected."""
    try:
        return evaluate_checkpoint(*args)
    except ResultNotSaved as exc:
        failures.extend(exc.failures)
        return exc.result


def evaluate_all_epochs(config: Settings, checkpoints: str, prefix: str,
                        cpu_contexts: int = 1, crops: int = 1, override: bool = False,
                        gpus: tuple[int, ...] | None = None
                        ) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Score every checkpoint on validation, pick the best there, and test only that one.

    Writes ``<prefix>-epochs.csv`` (validation figures per epoch). The best epoch is the
    highest validation rank-1 (lower loss breaks ties): choosing on the test split would
    make its figure an optimistic one.
    """
    epochs = sorted({*list_checkpoints(checkpoints, prefix),
                     *mxnet_checkpoint_epochs(checkpoints, prefix)})
    if not epochs:
        raise CheckpointError(f"no complete checkpoint of {prefix!r} in {checkpoints}")
    rows = []
    failures: list[str] = []  # result files that could not be written: reported at the end
    for epoch in epochs:
        result = _evaluate_keeping(failures, config, checkpoints, prefix, epoch, "val",
                                   cpu_contexts, crops, override, gpus)
        rows.append({"epoch": epoch, "val_rank1": result["accuracy"],
                     "val_rank5": result["top_k_accuracy_5"],
                     "val_loss": result["cross-entropy"], "images": result["images"]})
    lines = ["epoch,val_rank1,val_rank5,val_loss,images"]
    lines += [f"{r['epoch']},{r['val_rank1']:.6f},{r['val_rank5']:.6f},{r['val_loss']:.6f},"
              f"{r['images']}" for r in rows]
    _save_text(epochs_csv_path(checkpoints, prefix), "\n".join(lines) + "\n", failures)
    best = max(rows, key=lambda r: (r["val_rank1"], -r["val_loss"]))
    test = _evaluate_keeping(failures, config, checkpoints, prefix, best["epoch"], "test",
                             cpu_contexts, crops, override, gpus)
    if failures:
        raise ResultNotSaved(failures, test, rows)
    return rows, test


def build_parser(description: str, default_config: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("-c", "--checkpoints", required=True, help="folder of the checkpoints")
    parser.add_argument("-p", "--prefix", required=True, help="name prefix of the checkpoints")
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("-e", "--epoch",
                       help="checkpoint epoch to evaluate, or 'last' for the newest")
    which.add_argument("--all-epochs", action="store_true",
                       help="score every checkpoint on validation (<prefix>-epochs.csv), then "
                            "the best of them on the test split")
    parser.add_argument("--config", default=default_config,
                        help=f"config module or .py path (default {default_config})")
    parser.add_argument("--split", choices=("test", "val"), default="test",
                        help="records to score (default: the test split carved from train)")
    add_device_arguments(parser)
    parser.add_argument("--override", action="store_true",
                        help="score even though the dataset is not the one the checkpoint "
                             "was trained on (the differences are printed as warnings)")
    parser.add_argument("--crops", type=int, choices=CROPS, default=1,
                        help="1: the center crop (default); 10: four corners and center of "
                             "the stored RESIZE square, and their mirrors, softmax averaged")
    parser.add_argument("--require-rank1", type=float, default=None, metavar="FRACTION",
                        help="exit non-zero when rank-1 is below this (e.g. 0.90 for the demo)")
    return parser


def test_main(argv: list[str] | None, description: str, default_config: str) -> int:
    args = build_parser(description, default_config).parse_args(argv)
    not_saved: ResultNotSaved | None = None
    try:
        config = load_config(args.config)
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
    except (ConfigError, DatasetError, CheckpointError, EvaluationError) as exc:
        print(f"[ERROR] {exc}", file=sys.stderr)
        return EXIT_ERROR
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
