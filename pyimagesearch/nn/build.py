"""A config's network, built: the registered model with its arguments, initialized,
hybridized, on the run's devices."""

from __future__ import annotations

from typing import Any

import mxnet as mx
from mxnet import gluon

from pyimagesearch.nn import complete_shapes, get_model
from pyimagesearch.settings import Settings


def model_params(config: Settings, overrides: dict[str, Any] | None = None
                 ) -> dict[str, Any]:
    """Constructor arguments of the config's network, with run-specific overrides."""
    return {"num_classes": config.NUM_CLASSES, **config.MODEL_PARAMS, **(overrides or {})}


INITIALIZERS = {
    # The book's scripts: MXNet's default Xavier (uniform, average fan, magnitude 3).
    "xavier": lambda: mx.init.Xavier(),
    # He et al. 2015 (arXiv 1502.01852), for ReLU networks: Gaussian, fan-in, variance 2/n.
    "msra": lambda: mx.init.Xavier(rnd_type="gaussian", factor_type="in", magnitude=2),
}


def initializer(config: Settings) -> mx.init.Initializer:
    return INITIALIZERS[config.INITIALIZER]()


def build_network(config: Settings, contexts: list[mx.Context], seed: int,
                  overrides: dict[str, Any] | None = None) -> gluon.HybridBlock:
    net = get_model(config.MODEL, **model_params(config, overrides))
    # Networks with deferred shapes (GluonCV's zoo) get them now, so counts are complete.
    complete_shapes(net, (1, 3, config.INPUT_SIZE, config.INPUT_SIZE))
    mx.random.seed(seed)
    net.initialize(initializer(config), ctx=contexts)
    net.hybridize(static_alloc=True, static_shape=True)
    return net
