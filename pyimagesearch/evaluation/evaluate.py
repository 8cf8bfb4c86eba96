"""Score a saved checkpoint on a split: rank-1, rank-5 and loss on every image exactly once,
with a center crop as the book does or ten crops (``crops.py``); each result is saved beside
the checkpoint (``NAME-%04d-<split>.json``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pyimagesearch.config import ConfigError, Settings
from pyimagesearch.data.dataset import check_checkpoint_dataset, check_dataset
from pyimagesearch.data.iterators import Normalizer, evaluation_iterator
from pyimagesearch.errors import EXIT_NOT_SAVED, ProjectError
from pyimagesearch.evaluation.crops import (
    CROPS,
    TenCropAverage,
    describe_crops,
    ten_crop_caveats,
    ten_crop_iterator,
)
from pyimagesearch.files import atomic_write_text, write_failure
from pyimagesearch.run.checkpoints import (
    CheckpointError,
    checkpoint_epochs,
    load_network,
    read_manifest,
    resolve_epoch,
)
from pyimagesearch.run.paths import checkpoint_name, epochs_csv_path, result_path
from pyimagesearch.scoring import evaluate
from pyimagesearch.training.devices import batch_sizes, select_contexts


class ResultNotSaved(ProjectError):
    """The evaluation ran, but its result files could not be written; ``result`` (and ``rows``
    for ``--all-epochs``) hold what it found, so it can still be shown."""

    exit_status = EXIT_NOT_SAVED

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
    """Rank-1, rank-5 and loss of checkpoint ``epoch`` on ``split`` with 1 or 10 ``crops``;
    also saved as JSON (:class:`ResultNotSaved`, carrying the result, where it cannot be).

    The dataset must be the one the checkpoint trained on; ``override`` scores anyway, with
    the differences among the result's warnings.
    """
    if crops not in CROPS:
        raise ConfigError(f"crops must be one of {CROPS}, got {crops}")
    contexts = select_contexts(config.NUM_DEVICES, cpu_contexts, gpus, config.source)
    epoch = resolve_epoch(checkpoints, prefix, epoch)
    info = check_dataset(config, (split,))
    notes = check_checkpoint_dataset(read_manifest(checkpoints, prefix, epoch, verify=False),
                                     info, f"checkpoint {checkpoint_name(prefix, epoch)}",
                                     override=override)
    batch_size = batch_sizes(config.BATCH_SIZE, len(contexts)).per_process
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
    """Score every checkpoint on validation (``<prefix>-epochs.csv``), pick the best there
    (highest rank-1, lower loss breaking ties), and test only that one."""
    epochs = checkpoint_epochs(checkpoints, prefix)
    if not epochs:
        raise CheckpointError(f"no complete checkpoint of {prefix!r} in {checkpoints}")
    rows, damaged = [], []
    failures: list[str] = []  # result files that could not be written: reported at the end
    for epoch in epochs:
        try:
            result = _evaluate_keeping(failures, config, checkpoints, prefix, epoch, "val",
                                       cpu_contexts, crops, override, gpus)
        except CheckpointError as exc:  # a damaged checkpoint: the others are still scored
            damaged.append(f"checkpoint {checkpoint_name(prefix, epoch)} was not scored: {exc}")
            continue
        rows.append({"epoch": epoch, "val_rank1": result["accuracy"],
                     "val_rank5": result["top_k_accuracy_5"],
                     "val_loss": result["cross-entropy"], "images": result["images"]})
    lines = ["epoch,val_rank1,val_rank5,val_loss,images"]
    lines += [f"{r['epoch']},{r['val_rank1']:.6f},{r['val_rank5']:.6f},{r['val_loss']:.6f},"
              f"{r['images']}" for r in rows]
    if not rows:
        raise CheckpointError("; ".join(damaged))
    _save_text(epochs_csv_path(checkpoints, prefix), "\n".join(lines) + "\n", failures)
    best = max(rows, key=lambda r: (r["val_rank1"], -r["val_loss"]))
    test = _evaluate_keeping(failures, config, checkpoints, prefix, best["epoch"], "test",
                             cpu_contexts, crops, override, gpus)
    test["warnings"] = [*damaged, *test["warnings"]]
    if failures:
        raise ResultNotSaved(failures, test, rows)
    return rows, test
