"""The networks, one Gluon HybridBlock per file, reachable by name.

``get_model("googlenet", ...)`` builds a network of this package; a name
``"gluoncv:<name>"`` builds any network of GluonCV's model zoo (``gluoncv_zoo.py``).
"""

from __future__ import annotations

import importlib

from mxnet import gluon

from pyimagesearch.nn.gluoncv_zoo import PREFIX as GLUONCV_PREFIX
from pyimagesearch.nn.gluoncv_zoo import ZooNetwork
from pyimagesearch.nn.layers import complete_shapes, count_trainable_parameters
from pyimagesearch.settings import ConfigError

__all__ = ["complete_shapes", "count_trainable_parameters", "get_model", "model_names"]

# name -> "module:factory"; imported lazily so one network's import cost is not paid by all.
_REGISTRY = {
    "googlenet": "pyimagesearch.nn.googlenet:GoogLeNet",
    "inception_resnet_v2": "pyimagesearch.nn.inception_resnet_v2:InceptionResNetV2",
    "cifar_resnet": "pyimagesearch.nn.cifar_resnet:CifarResNet",
}


def model_names() -> list[str]:
    """The package's own networks; ``gluoncv:<name>`` adds GluonCV's zoo."""
    return sorted(_REGISTRY)


def get_model(name: str, **kwargs) -> gluon.HybridBlock:
    """Build the network ``name`` with constructor arguments ``kwargs``; ``ConfigError`` (one
    line) for an unknown name or arguments the network refuses."""
    if name.startswith(GLUONCV_PREFIX):  # GluonCV itself is imported by the zoo network
        return ZooNetwork(name[len(GLUONCV_PREFIX):], **kwargs)
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
