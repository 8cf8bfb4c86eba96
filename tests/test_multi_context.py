"""Several contexts: a batch split over two CPU contexts updates like one context does."""

import mxnet as mx
import numpy as np
import pytest
from mxnet import gluon
from mxnet.gluon import nn

from pyimagesearch.run.logs import TrainingLog
from pyimagesearch.settings import recipes
from pyimagesearch.training.loop import EpochProgress, StopFlag, TrainingSetup, train_epoch
from pyimagesearch.training.optimizers import create_optimizer


def conv_net():
    # No BatchNorm: per-device batch statistics are the one thing that legitimately differs.
    net = nn.HybridSequential(prefix="conv_")
    with net.name_scope():
        net.add(nn.Conv2D(6, 3, in_channels=3, activation="relu"), nn.GlobalAvgPool2D(),
                nn.Dense(4, in_units=6))
    return net


def one_update(contexts, recipe, tmp_path, batch):
    mx.random.seed(3)
    net = conv_net()
    net.initialize(mx.init.Xavier(), ctx=contexts)
    net.hybridize(static_alloc=True, static_shape=True)
    initial = {k.split("_", 1)[1]: v.data().asnumpy() for k, v in net.collect_params().items()}
    trainer = gluon.Trainer(net.collect_params(), create_optimizer(recipe, 1),
                            kvstore="device", update_on_kvstore=False)
    log = TrainingLog(tmp_path / f"training_{len(contexts)}.log", console=False)
    setup = TrainingSetup(net=net, trainer=trainer, contexts=contexts, batch_size=len(batch[0]),
                          log=log, log_interval=100, seed=0)
    data_iter = mx.io.NDArrayIter(batch[0], batch[1], batch_size=len(batch[0]))
    metrics = train_epoch(setup, data_iter, 0, StopFlag(), EpochProgress(0))
    log.close()
    updated = {k.split("_", 1)[1]: v.list_data() for k, v in net.collect_params().items()}
    return initial, updated, metrics


@pytest.mark.parametrize("recipe", [recipes.BOOK_GOOGLENET_SGD, recipes.BOOK_GOOGLENET_ADAM])
def test_two_cpu_contexts_give_the_single_context_update(tmp_path, recipe):
    rng = np.random.RandomState(0)
    batch = (rng.randn(8, 3, 12, 12).astype("float32"), rng.randint(0, 4, 8).astype("float32"))
    initial, single, single_metrics = one_update([mx.cpu(0)], recipe, tmp_path, batch)
    _, double, double_metrics = one_update([mx.cpu(0), mx.cpu(1)], recipe, tmp_path, batch)
    for name, (weight,) in single.items():
        assert not np.allclose(weight.asnumpy(), initial[name]), f"{name} was not updated"
        copies = double[name]
        assert len(copies) == 2
        for copy in copies:  # every context holds the same, single-context result
            np.testing.assert_allclose(copy.asnumpy(), weight.asnumpy(), rtol=1e-5, atol=1e-6,
                                       err_msg=name)
    assert double_metrics == pytest.approx(single_metrics, rel=1e-5)
