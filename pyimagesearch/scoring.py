"""Rank-1, rank-5 and cross-entropy, reduced on each device to three numbers per batch, and
evaluation of a whole split counting every image exactly once.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import mxnet as mx
import numpy as np
from mxnet import gluon, nd

from pyimagesearch.errors import ProjectError

# Names as MXNet's Module.fit logs them (mx.metric.Accuracy, TopKAccuracy(5), CrossEntropy).
RANK1, RANK5, LOSS = "accuracy", "top_k_accuracy_5", "cross-entropy"
METRIC_NAMES = (RANK1, RANK5, LOSS)


def batch_sums(outputs: nd.NDArray, labels: nd.NDArray, losses: nd.NDArray,
               valid: int | None = None) -> nd.NDArray:
    """``[rank-1 hits, rank-5 hits, loss sum]`` of one device's slice, on its device.

    ``valid`` keeps only the first ``valid`` rows (evaluation drops wrapped-around
    padding so a split of N images is scored on exactly N).
    """
    if valid is not None:
        outputs, labels, losses = outputs[:valid], labels[:valid], losses[:valid]
    labels = labels.astype("float32").reshape((-1, 1))
    top_k = min(5, outputs.shape[1])
    ranked = nd.topk(outputs, axis=1, k=top_k, ret_typ="indices", dtype="float32")
    hits = ranked == labels
    return nd.stack(hits[:, :1].sum(), hits.sum(), losses.sum()).reshape((3,))


class MetricTotals:
    """Host-side totals of :func:`batch_sums` results."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.sums = np.zeros(3, dtype=np.float64)
        self.count = 0

    def add(self, sums: np.ndarray, count: int) -> None:
        self.sums += sums
        self.count += count

    def result(self) -> dict[str, float]:
        if self.count == 0:
            return {name: math.nan for name in METRIC_NAMES}
        return dict(zip(METRIC_NAMES, (self.sums / self.count).tolist()))


class EvaluationError(ProjectError, RuntimeError):
    """The number of images scored differs from the number the records hold."""


Normalize = Callable[[mx.nd.NDArray], mx.nd.NDArray]


def split_batch(batch: mx.io.DataBatch, contexts: list[mx.Context], normalize: Normalize
                ) -> tuple[list[mx.nd.NDArray], list[mx.nd.NDArray]]:
    """The batch's slices on each context, pixels normalized there (see ``Normalizer``)."""
    data = gluon.utils.split_and_load(batch.data[0], contexts, even_split=False)
    labels = gluon.utils.split_and_load(batch.label[0], contexts, even_split=False)
    return [normalize(x) for x in data], labels


def evaluate(net: Callable[[mx.nd.NDArray], mx.nd.NDArray], data_iter: mx.io.DataIter,
             contexts: list[mx.Context], normalize: Normalize,
             num_images: int | None = None) -> dict[str, float]:
    """Score ``net`` on every image of a freshly created ``data_iter`` once.

    The iterator must be new: ``ImageRecordIter.reset()`` drops the batch it already
    prefetched, and after a wrapped last batch the next pass starts mid-set. It tops up
    its last batch by wrapping around and reports how many rows are such padding
    (``batch.pad``); those rows are run (the batch shape stays static) but not scored.
    When ``num_images`` is given the count must match it exactly.
    """
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    totals = MetricTotals()
    pending: list[mx.nd.NDArray] = []
    for batch in data_iter:
        data, labels = split_batch(batch, contexts, normalize)
        valid_total = batch.data[0].shape[0] - (batch.pad or 0)
        offset = 0
        for x, y in zip(data, labels):
            valid = int(np.clip(valid_total - offset, 0, x.shape[0]))
            offset += x.shape[0]
            if valid == 0:
                continue
            outputs = net(x)
            pending.append(batch_sums(outputs, y, loss_fn(outputs, y), valid))
            totals.count += valid
    for sums in pending:
        totals.sums += sums.asnumpy()
    if num_images is not None and totals.count != num_images:
        raise EvaluationError(f"scored {totals.count} images where the records hold "
                              f"{num_images}")
    result = totals.result()
    result["images"] = totals.count
    return result
