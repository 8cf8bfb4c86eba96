"""Record iterators for training and evaluation, over a dataset checked first.

They take the :class:`~pyimagesearch.data.dataset.DatasetInfo` that ``check_dataset``
returned and refuse what would make MXNet's C++ iterator abort the process. A training
iterator is made anew every epoch, seeded by the epoch, so a resumed run sees the batches an
uninterrupted one would (why, and how augmentation is seeded: docs/data.md).
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

import mxnet as mx

from pyimagesearch.config import Settings
from pyimagesearch.data.dataset import DatasetError, DatasetInfo, RecordSplit
from pyimagesearch.runtime import usable_cores


class Normalizer:
    """Turn the iterators' uint8 batches into float32 minus the training-set mean (or the
    per-pixel ``mean_image``), on the device each slice goes to (why: docs/data.md); the
    numbers are those of ImageRecordIter's own float path, ``float(pixel) - mean``."""

    def __init__(self, mean: dict[str, float], mean_image: str | None = None) -> None:
        self.mean, self.mean_image = mean, mean_image
        self._by_context: dict[str, mx.nd.NDArray] = {}

    def _mean_on(self, context: mx.Context) -> mx.nd.NDArray:
        key = str(context)
        if key not in self._by_context:
            if self.mean_image is not None:
                mean = mx.nd.load(self.mean_image)["mean_img"].expand_dims(0)  # (1, 3, H, W)
            else:
                mean = mx.nd.array([self.mean[c] for c in ("R", "G", "B")]).reshape((1, 3, 1, 1))
            self._by_context[key] = mean.as_in_context(context)
        return self._by_context[key]

    def __call__(self, data: mx.nd.NDArray) -> mx.nd.NDArray:
        return mx.nd.broadcast_sub(data.astype("float32", copy=False), self._mean_on(data.context))


def _common(split: RecordSplit, info: DatasetInfo, config: Settings, batch_size: int,
            size: int | None = None) -> dict[str, Any]:
    if 2 * split.count < batch_size:
        # The iterator tops up a short last batch by wrapping around once; when one wrap
        # cannot fill it, MXNet fails in C++ ("number of input images must be bigger than
        # the batch size") and takes the process with it.
        raise DatasetError(f"{split.rec} holds {split.count} records, fewer than half a batch "
                        f"of {batch_size}; lower BATCH_SIZE (or NUM_DEVICES) in config "
                        f"{config.source}")
    size = size or config.INPUT_SIZE
    return {
        "path_imgrec": split.rec, "path_imgidx": split.idx,
        "data_shape": (3, size, size), "batch_size": batch_size,
        "dtype": "uint8",  # the mean is subtracted on the device: see Normalizer
        "preprocess_threads": config.DECODE_THREADS,
        # round_batch fills the last batch with images from the start of the set and
        # reports how many in batch.pad, instead of uninitialised memory.
        "round_batch": True,
        "verbose": False,
    }


def _draw_seed(seed: int, epoch: int, purpose: str) -> int:
    """A well-spread 31-bit seed for (run seed, epoch, purpose)."""
    digest = hashlib.sha256(f"{seed}/{epoch}/{purpose}".encode()).digest()
    return int.from_bytes(digest[:4], "little") % (2**31 - 1)


def decode_threads_cap(cores: int | None = None) -> int:
    """Decode threads one ImageRecordIter really starts: MXNet 1.9.1 caps its
    ``preprocess_threads`` at max(cores/2 - 1, 1), whatever is asked (or exported)."""
    cores = cores if cores is not None else usable_cores()
    return max(cores // 2 - 1, 1)


def decode_streams(threads: int, cores: int | None = None) -> tuple[int, int]:
    """(iterators, threads each) that give ``threads`` decode threads past the cap."""
    cap = decode_threads_cap(cores)
    streams = max(1, math.ceil(max(threads, 1) / cap))
    return streams, math.ceil(max(threads, 1) / streams)


def part_sizes(num_records: int, num_parts: int) -> list[int]:
    """Records in each part, as ImageRecordIter splits an indexed record file: ceil(N/P)
    each, the last part what is left."""
    share = math.ceil(num_records / num_parts)
    sizes = [min(share, max(num_records - share * k, 0)) for k in range(num_parts)]
    if min(sizes) < 1:
        raise DatasetError(f"{num_records} training records cannot be split into {num_parts} "
                        f"non-empty parts (workers x decode streams); lower DECODE_THREADS")
    return sizes


def batches_per_epoch(num_records: int, batch_size: int, num_workers: int = 1,
                      streams: int = 1) -> int:
    """Batches every worker runs per epoch: the same number for all (or a synchronous
    kvstore would wait forever), set by the worker with the fewest. Worker w reads parts
    ``w*S .. w*S + S - 1`` of ``W*S`` (S decode streams), each ceil(size / batch) batches."""
    sizes = part_sizes(num_records, num_workers * streams)
    return min(sum(math.ceil(size / batch_size) for size in sizes[w * streams:(w + 1) * streams])
               for w in range(num_workers))


class InterleavedIter(mx.io.DataIter):
    """Batches taken in turn from several iterators until all are exhausted: S
    ImageRecordIters on S parts of the records decode with S times one's threads."""

    def __init__(self, iterators: list[mx.io.DataIter]) -> None:
        super().__init__(iterators[0].batch_size)
        self.iterators = list(iterators)
        self._active = list(self.iterators)
        self._turn = 0

    @property
    def provide_data(self):
        return self.iterators[0].provide_data

    @property
    def provide_label(self):
        return self.iterators[0].provide_label

    def reset(self) -> None:
        # ImageRecordIter.reset() drops its prefetched batch (see evaluate()); an epoch
        # gets new iterators instead.
        raise RuntimeError("InterleavedIter cannot be reset: create a new training iterator "
                           "for every epoch (training_iterator)")

    def next(self) -> mx.io.DataBatch:
        while self._active:
            position = self._turn % len(self._active)
            try:
                batch = self._active[position].next()
            except StopIteration:
                del self._active[position]
                continue
            self._turn = position + 1
            return batch
        raise StopIteration


def record_iterator(params: list[dict[str, Any]]) -> mx.io.DataIter:
    """One ``ImageRecordIter`` per parameter set (plain data, so that a decoding process
    of ``data.decoder`` builds the same iterators), taken in turn when there are several."""
    iterators = [mx.io.ImageRecordIter(**p) for p in params]
    return iterators[0] if len(iterators) == 1 else InterleavedIter(iterators)


def training_iterator_params(config: Settings, info: DatasetInfo, batch_size: int, epoch: int,
                             seed: int, num_parts: int = 1, part_index: int = 0,
                             streams: int | None = None) -> list[dict[str, Any]]:
    """``ImageRecordIter`` parameters of ``training_iterator``: one set per decode stream."""
    threads = config.DECODE_THREADS
    streams = streams or decode_streams(threads)[0]
    common = {**_common(info.splits["train"], info, config, batch_size), **config.AUGMENTATION,
              "shuffle": True, "num_parts": num_parts * streams,
              "preprocess_threads": math.ceil(threads / streams)}
    return [{**common, "seed": _draw_seed(seed, epoch, f"order/{stream}"),
             "seed_aug": _draw_seed(seed, epoch, f"augmentation/{stream}"),
             "part_index": part_index * streams + stream}
            for stream in range(streams)]


def training_iterator(config: Settings, info: DatasetInfo, batch_size: int, epoch: int,
                      seed: int, num_parts: int = 1, part_index: int = 0,
                      streams: int | None = None) -> mx.io.DataIter:
    """Shuffled, augmented training batches for ``epoch``, seeded by the epoch.

    ``DECODE_THREADS`` threads are reached with ``streams`` iterators over parts of this
    worker's records (default: as many as MXNet's per-iterator cap requires), taken in
    turn; ``batches_per_epoch`` counts the batches that gives.
    """
    return record_iterator(training_iterator_params(config, info, batch_size, epoch, seed,
                                                    num_parts, part_index, streams))


def evaluation_iterator_params(config: Settings, info: DatasetInfo, split: str,
                               batch_size: int, size: int | None = None) -> list[dict[str, Any]]:
    """``ImageRecordIter`` parameters of ``evaluation_iterator`` (one set)."""
    if split not in info.splits:
        raise DatasetError(f"split {split!r} was not checked; known: {sorted(info.splits)}")
    params = _common(info.splits[split], info, config, batch_size, size)
    params.update(shuffle=False)
    # Padding settings (CIFAR's 4-pixel pad) belong to the random crop only.
    return [params]


def evaluation_iterator(config: Settings, info: DatasetInfo, split: str, batch_size: int,
                        size: int | None = None) -> mx.io.DataIter:
    """Center-cropped, un-augmented batches in record order (``batch.pad`` marks wrap-around).

    ``size`` is the side of the center square (default ``INPUT_SIZE``; 10-crop evaluation
    takes the whole stored square and crops it itself).
    """
    return record_iterator(evaluation_iterator_params(config, info, split, batch_size, size))
