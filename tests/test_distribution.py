"""Distribution settings: equal batches per worker, LR scaling, kvstore and precision checks."""

from __future__ import annotations

import math

import mxnet as mx
import numpy as np
import pytest

import train_googlenet
from pyimagesearch.config import ConfigError
from pyimagesearch.training.distribution import Cluster, create_cluster, worker_updates_per_epoch
from pyimagesearch.training.schedules import (
    EpochTable,
    ScheduleSpec,
    StepDecay,
    lr_at_epoch_start,
    scale_schedule,
)


@pytest.mark.parametrize("records,workers,batch", [(23, 2, 4), (23, 3, 4), (100, 4, 8),
                                                    (17, 2, 3), (64, 2, 8)])
def test_every_worker_can_run_the_common_number_of_batches(tmp_path, records, workers, batch):
    rec, idx = str(tmp_path / "r.rec"), str(tmp_path / "r.idx")
    writer = mx.recordio.MXIndexedRecordIO(idx, rec, "w")
    for i in range(records):
        image = np.full((36, 36, 3), i, np.uint8)
        writer.write_idx(i, mx.recordio.pack_img(mx.recordio.IRHeader(0, 0.0, i, 0), image))
    writer.close()
    common = worker_updates_per_epoch(records, workers, batch)
    counts = []
    for part in range(workers):
        data_iter = mx.io.ImageRecordIter(
            path_imgrec=rec, path_imgidx=idx, data_shape=(3, 32, 32), batch_size=batch,
            num_parts=workers, part_index=part, preprocess_threads=1, verbose=False)
        counts.append(sum(1 for _ in data_iter))
    assert min(counts) == common  # the smallest part sets the pace, none runs dry
    assert worker_updates_per_epoch(records, 1, batch) == math.ceil(records / batch)


def test_too_few_records_for_the_workers_is_refused():
    with pytest.raises(ConfigError, match="cannot be shared by 4 workers"):
        worker_updates_per_epoch(3, 4, 8)


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
    config = tmp_path / "fp16.py"
    config.write_text(tiny_dataset_config.read_text() + "DTYPE = 'float16'\n")
    assert train_googlenet.main(["--config", str(config), "--checkpoints", str(tmp_path / "o"),
                                 "--prefix", "net", "--end-epoch", "1"]) == 2
    err = capsys.readouterr().err
    assert "DTYPE = 'float16' trains with mixed precision" in err and "needs GPUs" in err
    config.write_text(tiny_dataset_config.read_text() + "DTYPE = 'bfloat8'\n")
    assert train_googlenet.main(["--config", str(config), "--checkpoints", str(tmp_path / "o"),
                                 "--prefix", "net", "--end-epoch", "1"]) == 2
    assert "DTYPE must be 'float32' or 'float16'" in capsys.readouterr().err
