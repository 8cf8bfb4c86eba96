"""Optimizer state: saved as arrays (no pickle), restored exactly, refused when it does not fit."""

import pickle

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, gluon
from mxnet.gluon import nn

from pyimagesearch.run.optimizer_state import StateError, load_optimizer_state, save_optimizer_state
from pyimagesearch.settings import recipes
from pyimagesearch.training.optimizers import create_optimizer


def small_net(units=3):
    net = nn.HybridSequential(prefix="small_")
    with net.name_scope():
        net.add(nn.Dense(8, in_units=5, activation="relu"), nn.Dense(units, in_units=8))
    return net


def make(recipe, contexts, seed=0, units=3):
    mx.random.seed(seed)
    net = small_net(units)
    net.initialize(mx.init.Xavier(), ctx=contexts)
    trainer = gluon.Trainer(net.collect_params(), create_optimizer(recipe, 10),
                            update_on_kvstore=False)
    return net, trainer


def step(net, trainer, contexts, seed):
    rng = np.random.RandomState(seed)
    x = mx.nd.array(rng.randn(8, 5))
    y = mx.nd.array(rng.randint(0, 3, 8))
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    xs = gluon.utils.split_and_load(x, contexts)
    ys = gluon.utils.split_and_load(y, contexts)
    with autograd.record():
        losses = [loss_fn(net(a), b) for a, b in zip(xs, ys)]
    autograd.backward(losses)
    trainer.step(8)


def params(net):
    return {k.split("_", 1)[1]: v.data().asnumpy() for k, v in net.collect_params().items()}


@pytest.mark.parametrize("recipe", [recipes.BOOK_GOOGLENET_SGD, recipes.BOOK_GOOGLENET_ADAM,
                                    recipes.PAPER_IRV2_RMSPROP])
@pytest.mark.parametrize("contexts", [[mx.cpu(0)], [mx.cpu(0), mx.cpu(1)]])
def test_save_then_load_continues_exactly(tmp_path, recipe, contexts):
    net, trainer = make(recipe, contexts)
    for seed in range(3):
        step(net, trainer, contexts, seed)
    path = str(tmp_path / "net.states")
    counters = save_optimizer_state(trainer, path)
    assert counters["num_update"] == 3
    net.save_parameters(str(tmp_path / "net.params"))

    resumed, resumed_trainer = make(recipe, contexts, seed=99)
    resumed.load_parameters(str(tmp_path / "net.params"), ctx=contexts)
    load_optimizer_state(resumed_trainer, path, counters)
    assert resumed_trainer.optimizer.num_update == 3
    for seed in range(3, 5):
        step(net, trainer, contexts, seed)
        step(resumed, resumed_trainer, contexts, seed)
    for name, value in params(net).items():
        np.testing.assert_array_equal(value, params(resumed)[name], err_msg=name)


def test_the_file_is_plain_arrays_not_a_pickle(tmp_path):
    net, trainer = make(recipes.BOOK_GOOGLENET_ADAM, [mx.cpu()])
    step(net, trainer, [mx.cpu()], 0)
    path = tmp_path / "net.states"
    save_optimizer_state(trainer, str(path))
    with pytest.raises(pickle.UnpicklingError):
        pickle.loads(path.read_bytes())
    arrays = mx.nd.load(str(path))
    # Adam keeps two moments per weight: 2 dense layers x (weight, bias) x 2.
    assert len(arrays) == 8 and all(key.count("/") == 1 for key in arrays)


def test_a_pickled_states_file_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "net.states"
    path.write_bytes(pickle.dumps(Payload()))
    _, trainer = make(recipes.BOOK_GOOGLENET_SGD, [mx.cpu()])
    with pytest.raises(StateError, match="not a readable optimizer-state file"):
        load_optimizer_state(trainer, str(path), {"optimizer": "sgd", "num_update": 1,
                                                  "index_update_count": {}})
    assert not marker.exists()


def test_state_of_another_network_or_optimizer_is_refused(tmp_path):
    net, trainer = make(recipes.BOOK_GOOGLENET_SGD, [mx.cpu()])
    step(net, trainer, [mx.cpu()], 0)
    path = str(tmp_path / "net.states")
    counters = save_optimizer_state(trainer, path)
    _, adam = make(recipes.BOOK_GOOGLENET_ADAM, [mx.cpu()])
    with pytest.raises(StateError, match="saved for optimizer 'sgd'"):
        load_optimizer_state(adam, path, counters)
    _, wider = make(recipes.BOOK_GOOGLENET_SGD, [mx.cpu()], units=4)
    with pytest.raises(StateError, match="shape"):
        load_optimizer_state(wider, path, counters)
