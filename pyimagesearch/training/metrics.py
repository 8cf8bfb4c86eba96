"""Rank-1, rank-5 and cross-entropy: summed on the devices, totalled on the host.

``mx.metric.Accuracy.update`` copies the whole prediction matrix to the host every
batch. Here each device reduces its slice to three numbers (hits at rank 1, hits at
rank 5, loss sum) and the host reads those three numbers one batch late, when they are
ready anyway, so the device is never left waiting for a metric.
"""

from __future__ import annotations

import math

import numpy as np
from mxnet import nd

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
