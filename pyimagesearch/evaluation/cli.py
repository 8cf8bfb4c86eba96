"""The command line of every ``test_*.py`` script: score a saved checkpoint on the test records.

``python test_googlenet.py --checkpoints out --prefix googlenet --epoch 50`` loads the
standard MXNet checkpoint (symbol + params, through ``gluon.SymbolBlock.imports``, so
any checkpoint of that format works, not only ours) and prints rank-1 and rank-5 on
the test split with a center crop, as the book does.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from types import ModuleType
from typing import Any

import mxnet as mx
from mxnet import gluon

from pyimagesearch.config import ConfigError, load_config
from pyimagesearch.data.iterators import DataError, dataset_info, evaluation_iterator
from pyimagesearch.evaluation.evaluate import EvaluationError, evaluate
from pyimagesearch.training.checkpoints import CheckpointError, read_manifest, resolve_epoch
from pyimagesearch.training.devices import select_contexts
from pyimagesearch.utils.files import atomic_write_text

EXIT_ERROR = 2
EXIT_BELOW_TARGET = 4


def load_standard_checkpoint(checkpoints: str, prefix: str, epoch: int,
                             contexts: list[mx.Context]) -> gluon.SymbolBlock:
    """The network of checkpoint ``epoch`` as a hybridized SymbolBlock on ``contexts``."""
    read_manifest(checkpoints, prefix, epoch)  # files present and matching their checksums
    folder = Path(checkpoints)
    with warnings.catch_warnings():
        # The exported graph leaves the input's dtype open; float32 is what it gets.
        warnings.filterwarnings("ignore", message="Cannot decide type")
        net = gluon.SymbolBlock.imports(str(folder / f"{prefix}-symbol.json"), ["data"],
                                        str(folder / f"{prefix}-{epoch:04d}.params"),
                                        ctx=contexts)
    net.hybridize(static_alloc=True, static_shape=True)
    return net


def evaluate_checkpoint(config: ModuleType, checkpoints: str, prefix: str, epoch: int | str,
                        split: str = "test", cpu_contexts: int = 1) -> dict[str, Any]:
    """Rank-1, rank-5 and loss of checkpoint ``epoch`` on ``split``; also saved as JSON."""
    epoch = resolve_epoch(checkpoints, prefix, epoch)
    info = dataset_info(config, (split,))
    contexts = select_contexts(config.NUM_DEVICES, cpu_contexts)
    net = load_standard_checkpoint(checkpoints, prefix, epoch, contexts)
    batch_size = config.BATCH_SIZE * len(contexts)
    result = evaluate(net, evaluation_iterator(config, info, split, batch_size), contexts,
                      info.splits[split].count)
    result.update(epoch=epoch, split=split, records=info.splits[split].rec)
    atomic_write_text(Path(checkpoints) / f"{prefix}-{epoch:04d}-{split}.json",
                      json.dumps(result, indent=2, sort_keys=True))
    return result


def build_parser(description: str, default_config: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("-c", "--checkpoints", required=True, help="folder of the checkpoints")
    parser.add_argument("-p", "--prefix", required=True, help="name prefix of the checkpoints")
    parser.add_argument("-e", "--epoch", required=True,
                        help="checkpoint epoch to evaluate, or 'last' for the newest")
    parser.add_argument("--config", default=default_config,
                        help=f"config module or .py path (default {default_config})")
    parser.add_argument("--split", choices=("test", "val"), default="test",
                        help="records to score (default: the test split carved from train)")
    parser.add_argument("--cpu-contexts", type=int, default=1,
                        help="without GPUs, split each batch over this many CPU contexts")
    parser.add_argument("--require-rank1", type=float, default=None, metavar="FRACTION",
                        help="exit non-zero when rank-1 is below this (e.g. 0.90 for the demo)")
    return parser


def test_main(argv: list[str] | None, description: str, default_config: str) -> int:
    args = build_parser(description, default_config).parse_args(argv)
    try:
        config = load_config(args.config)
        result = evaluate_checkpoint(config, args.checkpoints, args.prefix, args.epoch,
                                     args.split, args.cpu_contexts)
    except (ConfigError, DataError, CheckpointError, EvaluationError) as exc:
        print(f"[ERROR] {exc}", file=sys.stderr)
        return EXIT_ERROR
    print(f"[INFO] {args.prefix} epoch {result['epoch']} on {result['images']} {args.split} "
          f"images ({result['records']})")
    print(f"[INFO] rank-1: {100 * result['accuracy']:.2f}%")
    print(f"[INFO] rank-5: {100 * result['top_k_accuracy_5']:.2f}%")
    print(f"[INFO] loss: {result['cross-entropy']:.4f}")
    if args.require_rank1 is not None and result["accuracy"] < args.require_rank1:
        print(f"[ERROR] rank-1 {result['accuracy']:.4f} is below the required "
              f"{args.require_rank1:.4f}", file=sys.stderr)
        return EXIT_BELOW_TARGET
    return 0
