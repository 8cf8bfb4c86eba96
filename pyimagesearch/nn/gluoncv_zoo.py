"""GluonCV's model zoo by name: ``MODEL = "gluoncv:resnet18_v1b"`` in a config.

Any ``gluoncv.model_zoo.get_model`` name, built untrained with ``classes=NUM_CLASSES`` and the
config's ``MODEL_PARAMS``, inside :class:`ZooNetwork`: a fixed parameter prefix and, where
the network allows, ``features`` up to its global pooling for the health monitor (which
networks do: docs/networks.md). Otherwise the network is GluonCV's own, forward included.
"""

from __future__ import annotations

import difflib
import inspect
import re
import sys
import warnings

from mxnet.gluon import nn

from pyimagesearch.errors import ConfigError

PREFIX = "gluoncv:"
GLOBAL_POOLS = (nn.GlobalAvgPool2D, nn.GlobalMaxPool2D)
# ResNetV1b.hybrid_forward and ResNeSt.hybrid_forward, up to the global pooling.
RESNET_V1B_STAGES = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3",
                     "layer4", "avgpool")


class ZooNetworkError(ConfigError):
    """The name is not in GluonCV's model zoo, or its constructor refuses the arguments."""


def _model_zoo():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # GluonCV warns about optional packages on import
        from gluoncv import model_zoo
    return model_zoo


def _named(function: object) -> set[str]:
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return set()
    return {p.name for p in parameters if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)}


def _keywords(zoo: object, name: str, net: nn.HybridBlock) -> set[str]:
    """Every argument name the zoo's factory for ``name`` can pass on: its own, those of
    the functions of its module it calls, and those of the network's constructors."""
    factory = zoo.model_zoo._models[name]
    module = sys.modules[factory.__module__]
    names, seen, queue = set(), set(), [factory]
    while queue:
        function = queue.pop()
        if function in seen:
            continue
        seen.add(function)
        names |= _named(function)
        try:
            source = inspect.getsource(function)
        except (OSError, TypeError):
            continue
        for called in set(re.findall(r"\b(\w+)\(", source)):
            candidate = getattr(module, called, None)
            if inspect.isfunction(candidate) and candidate.__module__ == module.__name__:
                queue.append(candidate)
    for cls in type(net).__mro__:
        if cls in (nn.HybridBlock, nn.Block, object):
            break
        names |= _named(cls.__init__)
    return names - {"self"}


def _feature_trunk(net: nn.HybridBlock) -> nn.HybridSequential | None:
    """The layers up to the last global pooling, in forward order, or None."""
    features = getattr(net, "features", None)
    if isinstance(features, nn.HybridSequential) and any(
            isinstance(layer, GLOBAL_POOLS) for layer in features):
        return features
    from gluoncv.model_zoo.resnest import ResNeSt
    from gluoncv.model_zoo.resnetv1b import ResNetV1b

    if isinstance(net, (ResNetV1b, ResNeSt)):
        trunk = nn.HybridSequential(prefix="features_")
        for stage in RESNET_V1B_STAGES:
            trunk.register_child(getattr(net, stage))
        return trunk
    return None


class ZooNetwork(nn.HybridBlock):
    """A GluonCV model-zoo network ``name``, untrained, under a fixed prefix (GluonCV's own
    prefixes count instances per process, so checkpoints would not load by name).

    ``num_classes`` is passed as the zoo constructor's ``classes``, ``kwargs``
    (``MODEL_PARAMS``) as its further arguments. Output: ``(batch, num_classes)`` logits.
    """

    def __init__(self, name: str, num_classes: int = 1000, **kwargs) -> None:
        super().__init__(prefix=f"gluoncv_{re.sub(r'[^0-9A-Za-z]+', '_', name)}_")
        if "pretrained" in kwargs:
            raise ZooNetworkError(f"{PREFIX}{name}: MODEL_PARAMS may not set 'pretrained'; "
                                  f"zoo networks are trained from scratch here")
        zoo = _model_zoo()
        known = zoo.get_model_list()
        if name.lower() not in known:
            close = difflib.get_close_matches(name.lower(), known, n=6, cutoff=0.5)
            raise ZooNetworkError(
                f"unknown GluonCV model {name!r}; "
                + (f"close names: {', '.join(PREFIX + c for c in close)}; " if close else "")
                + f"gluoncv.model_zoo.get_model_list() has all {len(known)}")
        self.zoo_name = name
        with self.name_scope():
            try:
                self.net = zoo.get_model(name, pretrained=False, classes=num_classes, **kwargs)
            except TypeError as exc:
                raise ZooNetworkError(f"{PREFIX}{name} does not take these arguments "
                                      f"(classes={num_classes}, MODEL_PARAMS {kwargs}): "
                                      f"{exc}") from None
        # The zoo's constructors swallow unknown keywords (**kwargs): a misspelt one would
        # silently build the default network.
        known_keywords = _keywords(zoo, name.lower(), self.net)
        unknown = sorted(set(kwargs) - known_keywords)
        if unknown:
            close = difflib.get_close_matches(unknown[0], known_keywords, n=1, cutoff=0.6)
            raise ZooNetworkError(
                f"{PREFIX}{name}: MODEL_PARAMS key {unknown[0]!r} is not an argument of its "
                f"constructor" + (f"; did you mean {close[0]!r}?" if close else "")
                + f"; it takes {', '.join(sorted(known_keywords - {'pretrained'}))}")

    @property
    def features(self) -> nn.HybridSequential | None:
        """Layers up to and including the global pooling (None where the network has none).

        Built on each call: an attribute would register the zoo's layers a second time.
        """
        return _feature_trunk(self.net)

    def hybrid_forward(self, F, x):
        return self.net(x)
