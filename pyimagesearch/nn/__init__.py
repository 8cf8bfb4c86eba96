"""The networks, one Gluon HybridBlock per file, reachable by name."""

from __future__ import annotations

import importlib

from mxnet import gluon

# name -> "module:factory"; imported lazily so one network's import cost is not paid by all.
_REGISTRY = {
    "googlenet": "pyimagesearch.nn.googlenet:GoogLeNet",
    "inception_resnet_v2": "pyimagesearch.nn.inception_resnet_v2:InceptionResNetV2",
    "cifar_resnet": "pyimagesearch.nn.cifar_resnet:CifarResNet",
}


def model_names() -> list[str]:
    return sorted(_REGISTRY)


def get_model(name: str, **kwargs) -> gluon.HybridBlock:
    """Build the registered network ``name`` with constructor arguments ``kwargs``."""
    try:
        target = _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; known models: {', '.join(model_names())}") \
            from None
    module_name, factory = target.split(":")
    return getattr(importlib.import_module(module_name), factory)(**kwargs)


def count_trainable_parameters(net: gluon.Block) -> int:
    """Parameters that receive gradients (BN running statistics are buffers, not counted)."""
    return sum(int(_size(p.shape)) for p in net.collect_params().values() if p.grad_req != "null")


def _size(shape: tuple[int, ...]) -> int:
    size = 1
    for dim in shape:
        size *= dim
    return size
