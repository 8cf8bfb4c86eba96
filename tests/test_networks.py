"""The Gluon contract of every network the project builds by name (``pyimagesearch.nn``).

Each row of ``CASES`` is a network at its smallest input, with the trainable-parameter count
worked out apart from the code. Every registered name needs at least one row, so a new
network comes with its count (a new variant, or a GluonCV zoo network the project relies on,
gets a row too) and is held to the same contract:

- it builds, and its trainable parameters (``grad_req != 'null'``) are the table's count;
- forward at the smallest input gives finite ``(batch, classes)`` logits;
- it names its last feature map for the health monitor: ``features`` up to its global
  pooling (``health.last_feature_map``), whose pooled output is what the classifier reads;
- hybridized, it computes what it computes imperatively;
- ``export`` then ``SymbolBlock.imports`` gives the same outputs (the checkpoint format);
- backward, hybridized as training runs it, gives every trainable parameter a finite,
  non-zero gradient.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import mxnet as mx
import numpy as np
import pytest
from mxnet import autograd, gluon

from pyimagesearch.nn import GLUONCV_PREFIX, get_model, model_names
from pyimagesearch.training.health import last_feature_map


class Case(NamedTuple):
    name: str
    kwargs: dict[str, Any]
    size: int           # smallest input side the network takes
    trainable: int      # trainable parameters, counted apart from the code (see `source`)
    source: str

    @property
    def id(self) -> str:
        return self.name + "".join(f"-{k}={v}" for k, v in self.kwargs.items())


CASES = [
    Case("googlenet", {"num_classes": 10}, 32, 5_991_082,
         "Table 1 of Szegedy et al.: 57 convolutions (weights, BN gamma and beta) and the "
         "1024x10 classifier with bias; 7,005,832 with 1000 classes"),
    Case("googlenet", {"num_classes": 10, "variant": "book"}, 32, 5_991_082,
         "as the default: each convolution's bias takes the place of BN's gamma (fixed)"),
    Case("inception_resnet_v2", {"blocks": (1, 1, 1), "num_classes": 10}, 75, 13_478_042,
         "the released layout's tables (weights and BN beta; gamma fixed), one block per "
         "stage; the same arithmetic gives Keras' 55,813,192 for (10, 20, 10) blocks"),
    Case("inception_resnet_v2", {"layout": "paper", "blocks": (1, 1, 1), "num_classes": 10},
         75, 10_393_354, "Figures 3 and 16-19 with the Torch reproduction's corrections "
         "(weights, BN gamma and beta); 31,574,440 for the paper's (5, 10, 5) and 1000 classes"),
    # Every block variant with both shortcuts: the variants move BN and ReLU, never a weight.
    *(Case("cifar_resnet", {"depth": 8, "shortcut": "A", "variant": variant}, 32, 75_290,
           "by hand: stem 3*16*9+32, one block per stage at widths 16/32/64 "
           "(4,672 + 13,952 + 55,552), the 64x10 classifier with bias")
      for variant in ("original", "bn_after_add", "no_relu_bn_before", "no_relu_bn_after")),
    *(Case("cifar_resnet", {"depth": 8, "shortcut": "B", "variant": variant}, 32, 78_042,
           "the option-A count plus two 1x1 projections with BN: 576 + 2,176")
      for variant in ("original", "bn_after_add", "no_relu_bn_before", "no_relu_bn_after")),
    # GluonCV's zoo (any gluoncv.model_zoo name builds; these stand for it).
    Case("gluoncv:resnet18_v1b", {"num_classes": 10}, 32, 11_181_642,
         "torchvision's ResNet-18, 11,689,512, with a 10-class head: - 512*1000 - 1000 "
         "+ 512*10 + 10"),
    Case("gluoncv:cifar_resnet20_v1", {"num_classes": 10}, 32, 272_474,
         "He et al.'s ResNet-20 with 1x1 projections (option B): 269,722 + 576 + 2,176"),
]


def test_every_registered_network_has_a_row():
    own = {case.name for case in CASES if not case.name.startswith(GLUONCV_PREFIX)}
    assert sorted(own) == model_names(), \
        "add a row to CASES for each network: constructor arguments, smallest input, count"


def _built(case: Case) -> gluon.HybridBlock:
    mx.random.seed(0)
    net = get_model(case.name, **case.kwargs)
    net.initialize(mx.init.Xavier(magnitude=2))
    return net


def _images(size: int, seed: int = 0) -> mx.nd.NDArray:
    return mx.nd.array(np.random.RandomState(seed).randn(2, 3, size, size))


@pytest.mark.filterwarnings("ignore:Cannot decide type")  # SymbolBlock.imports, MXNet 1.9
@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_network_contract(case, tmp_path):
    net = _built(case)
    x = _images(case.size, seed=1)
    imperative = net(x).asnumpy()
    classes = case.kwargs.get("num_classes", 10)
    assert imperative.shape == (2, classes) and np.isfinite(imperative).all()

    trainable = {name: p for name, p in net.collect_params().items() if p.grad_req != "null"}
    assert sum(p.data().size for p in trainable.values()) == case.trainable, case.source

    trunk = last_feature_map(net)
    assert trunk is not None, "no features stage ending in a global pooling"
    feature_map = trunk(x)
    assert feature_map.ndim == 4 and min(feature_map.shape[2:]) >= 1
    # The map is the last one: its global average, through the classifier (the last dense
    # layer's weight and bias), is the network's output.
    weight = [p for p in net.collect_params().values() if len(p.shape) == 2][-1]
    bias = net.collect_params()[weight.name[:-len("weight")] + "bias"]
    pooled = feature_map.mean(axis=(2, 3)).asnumpy()
    logits = pooled @ weight.data().asnumpy().T + bias.data().asnumpy()
    np.testing.assert_allclose(logits, imperative, rtol=1e-4, atol=1e-5)

    net.hybridize(static_alloc=True, static_shape=True)
    np.testing.assert_allclose(net(x).asnumpy(), imperative, rtol=1e-4, atol=1e-5)
    net.export(str(tmp_path / "net"), epoch=7)
    imported = gluon.SymbolBlock.imports(str(tmp_path / "net-symbol.json"), ["data"],
                                         str(tmp_path / "net-0007.params"))
    np.testing.assert_allclose(imported(x).asnumpy(), imperative, rtol=1e-4, atol=1e-5)

    # Last: a training step moves BatchNorm's running statistics.
    with autograd.record():
        loss = gluon.loss.SoftmaxCrossEntropyLoss()(net(x), mx.nd.array([1, classes - 1]))
    loss.backward()
    assert np.isfinite(loss.asnumpy()).all()
    dead = [name for name, p in trainable.items()
            if not (np.isfinite(p.grad().asnumpy()).all() and np.abs(p.grad().asnumpy()).sum())]
    assert not dead, f"no gradient reaches {dead[:5]}"
