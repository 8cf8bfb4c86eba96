"""Distribution settings: equal batches per worker, LR scaling, kvstore and precision checks."""

from __future__ import annotations

import math

import mxnet as mx
import numpy as np
import pytest
from conftest import config_with

import train_googlenet
from pyimagesearch.config import ConfigError
from pyimagesearch.data.dataset import DatasetError, check_dataset
from pyimagesearch.data.iterators import batches_per_epoch, decode_streams, decode_threads_cap
from pyimagesearch.settings.schedules import EpochTable, ScheduleSpec, StepDecay, scale_schedule
from pyimagesearch.training.distribution import Cluster, create_cluster
from pyimagesearch.training.lr_schedulers import lr_at_epoch_start


@pytest.mark.parametrize("records,workers,streams,batch", [
    (23, 2, 1, 4), (23, 3, 1, 4), (100, 4, 1, 8), (17, 2, 1, 3), (64, 2, 1, 8),
    (23, 1, 2, 4), (50, 2, 2, 8), (37, 1, 3, 5)])
def test_every_worker_can_run_the_common_number_of_batches(tmp_path, records, workers, streams,
                                                           batch):
    rec, idx = str(tmp_path / "r.rec"), str(tmp_path / "r.idx")
    writer = mx.recordio.MXIndexedRecordIO(idx, rec, "w")
    for i in range(records):
        image = np.full((36, 36, 3), i, np.uint8)
        writer.write_idx(i, mx.recordio.pack_img(mx.recordio.IRHeader(0, 0.0, i, 0), image))
    writer.close()
    common = batches_per_epoch(records, batch, workers, streams)
    counts = []
    for worker in range(workers):
        batches = 0
        for stream in range(streams):
            data_iter = mx.io.ImageRecordIter(
                path_imgrec=rec, path_imgidx=idx, data_shape=(3, 32, 32), batch_size=batch,
                num_parts=workers * streams, part_index=worker * streams + stream,
                preprocess_threads=1, verbose=False)
            batches += sum(1 for _ in data_iter)
        counts.append(batches)
    assert min(counts) == common  # the smallest share sets the pace, none runs dry
    assert batches_per_epoch(records, batch) == math.ceil(records / batch)


def test_too_few_records_for_the_parts_is_refused():
    with pytest.raises(DatasetError, match="cannot be split into 4 non-empty parts"):
        batches_per_epoch(3, 8, 4)


def test_decode_streams_get_past_mxnets_per_iterator_cap():
    assert decode_threads_cap(2) == 1 and decode_threads_cap(16) == 7
    assert decode_streams(2, cores=2) == (2, 1)
    assert decode_streams(16, cores=16) == (3, 6)
    assert decode_streams(1, cores=2) == (1, 1)


def test_linear_scaling_with_a_gradual_warmup():
    spec = ScheduleSpec(0.1, EpochTable({0: 0.1, 30: 0.01}))
    scaled = scale_schedule(spec, 4, warmup_updates=50)
    assert lr_at_epoch_start(scaled, 10, 0) == pytest.approx(0.1 + (0.4 - 0.1) / 50)
    assert lr_at_epoch_start(scaled, 10, 5) == pytest.approx(0.4)   # update 51: warmed up
    assert lr_at_epoch_start(scaled, 10, 30) == pytest.approx(0.04)
    decayed = scale_schedule(ScheduleSpec(0.045, StepDecay(0.94, every_epochs=2)), 2)
    assert lr_at_epoch_start(decayed, 10, 2) == pytest.approx(0.09 * 0.94)


def test_local_kvstores_and_refusals():
    assert create_cluster("device", [mx.cpu()]) == Cluster("device", "device")
    with pytest.raises(ConfigError, match="needs GPUs and an MXNet build with NCCL"):
        create_cluster("nccl", [mx.cpu()])
    with pytest.raises(ConfigError, match="launch_distributed.py"):
        create_cluster("dist_sync", [mx.cpu()])
    with pytest.raises(ConfigError, match="unknown kvstore"):
        create_cluster("mpi", [mx.cpu()])


def test_float16_is_accepted_by_the_config_and_refused_on_the_cpu(tiny_dataset_config,
                                                                   tmp_path, capsys):
    config = config_with(tiny_dataset_config, tmp_path / "fp16.py", DTYPE="float16")
    assert train_googlenet.main(["--config", str(config), "--checkpoints", str(tmp_path / "o"),
                                 "--prefix", "net", "--end-epoch", "1"]) == 2
    err = capsys.readouterr().err
    assert "DTYPE = 'float16' trains with mixed precision" in err and "needs GPUs" in err
    config = config_with(tiny_dataset_config, tmp_path / "bf8.py", DTYPE="bfloat8")
    assert train_googlenet.main(["--config", str(config), "--checkpoints", str(tmp_path / "o"),
                                 "--prefix", "net", "--end-epoch", "1"]) == 2
    assert "DTYPE = 'bfloat8': must be one of 'float32', 'float16'" in capsys.readouterr().err


def test_interleaved_streams_cover_the_epoch_and_repeat_exactly(tiny_dataset_config):
    from pyimagesearch.config import load_config
    from pyimagesearch.data.iterators import InterleavedIter, training_iterator

    config = load_config(str(tiny_dataset_config))
    info = check_dataset(config, ("train",))

    def epoch_labels(streams):
        data_iter = training_iterator(config, info, 8, epoch=3, seed=5, streams=streams)
        batches = [(b.label[0].asnumpy().tolist(), b.pad) for b in data_iter]
        return data_iter, batches

    data_iter, batches = epoch_labels(2)
    assert isinstance(data_iter, InterleavedIter)
    assert len(batches) == batches_per_epoch(32, 8, streams=2) == 4
    assert epoch_labels(2)[1] == batches  # the same seeds give the same epoch
    counts = np.bincount(np.concatenate([labels for labels, _ in batches]).astype(int))
    assert counts.sum() == 32 and (counts > 0).all()
