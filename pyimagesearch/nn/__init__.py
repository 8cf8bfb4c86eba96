"""The networks, one Gluon HybridBlock per file, reachable by name.

``get_model("googlenet", ...)`` builds a network of this package; a name
``"gluoncv:<name>"`` builds any network of GluonCV's model zoo (``gluoncv_zoo.py``).
"""

from __future__ import annotations

import importlib

import mxnet as mx
from mxnet import gluon

from pyimagesearch.settings import ConfigError

# name -> "module:factory"; imported lazily so one network's import cost is not paid by all.
_REGISTRY = {
    "googlenet": "pyimagesearch.nn.googlenet:GoogLeNet",
    "inception_resnet_v2": "pyimagesearch.nn.inception_resnet_v2:InceptionResNetV2",
    "cifar_resnet": "pyimagesearch.nn.cifar_resnet:CifarResNet",
}
GLUONCV_PREFIX = "gluoncv:"


def model_names() -> list[str]:
    """The package's own networks; ``gluoncv:<name>`` adds GluonCV's zoo."""
    return sorted(_REGISTRY)


def get_model(name: str, **kwargs) -> gluon.HybridBlock:
    """Build the network ``name`` with constructor arguments ``kwargs``.

    Raises ``ConfigError`` (one line) for an unknown name or arguments the network refuses.
    """
    if name.startswith(GLUONCV_PREFIX):
        from pyimagesearch.nn.gluoncv_zoo import ZooNetwork, ZooNetworkError

        try:
            return ZooNetwork(name[len(GLUONCV_PREFIX):], **kwargs)
        except ZooNetworkError as exc:
            raise ConfigError(str(exc)) from None
    try:
        target = _REGISTRY[name]
    except KeyError:
        raise ConfigError(
            f"unknown model {name!r}; known models: {', '.join(model_names())}, or "
            f"{GLUONCV_PREFIX}<name> for a network of GluonCV's model zoo (e.g. "
            f"{GLUONCV_PREFIX}resnet18_v1b)") from None
    module_name, factory = target.split(":")
    try:
        return getattr(importlib.import_module(module_name), factory)(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"cannot build {name} with {kwargs}: {exc}") from None


def count_trainable_parameters(net: gluon.Block) -> int:
    """Parameters that receive gradients (BN running statistics are buffers, not counted)."""
    return sum(int(_size(p.shape)) for p in net.collect_params().values() if p.grad_req != "null")


def complete_shapes(net: gluon.HybridBlock, data_shape: tuple[int, ...]) -> None:
    """Give parameters whose shape is still open (deferred initialization) their shape.

    GluonCV's networks leave input channels to the first forward pass; inferring them for
    an input of ``data_shape`` makes counts and ``initialize`` complete at once. Networks
    whose shapes are all known are left alone.
    """
    params = [p for p in net.collect_params().values() if p.shape is None or not all(p.shape)]
    if not params:
        return
    symbol = net(mx.sym.var("data"))
    args, _, auxs = symbol.infer_shape(data=data_shape)
    shapes = dict(zip(symbol.list_arguments(), args))
    shapes.update(zip(symbol.list_auxiliary_states(), auxs))
    for param in params:
        if param.name in shapes:
            param.shape = tuple(shapes[param.name])


def _size(shape: tuple[int, ...]) -> int:
    size = 1
    for dim in shape:
        size *= dim
    return size
