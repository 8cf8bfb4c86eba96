"""Building units shared by every network: the conv-BN-activation unit, global pooling, the
``features`` => ``output`` layout with its printable summary, and parameter counts."""

from __future__ import annotations

import math

import mxnet as mx
from mxnet import gluon
from mxnet.gluon import nn


class ConvBNAct(nn.HybridSequential):
    """CONV => BN => ACT, the unit the book builds every GoogLeNet layer from.

    ``in_channels`` is given so shapes are known at ``initialize()``. The convolution has
    no bias (BN's beta takes its place) unless ``use_bias``, as ``mx.sym.Convolution`` has.
    ``activation=None`` leaves the activation out. ``bn_scale=False`` fixes BN's gamma at 1,
    untrained: MXNet's ``fix_gamma=True``, as ``mx.sym.BatchNorm`` and Google's released
    Inception-ResNet-v2 have it.
    """

    def __init__(self, in_channels: int, channels: int, kernel_size: int | tuple[int, int],
                 strides: int | tuple[int, int] = 1, padding: int | tuple[int, int] = 0,
                 activation: str | None = "relu", bn_epsilon: float = 1e-5,
                 bn_scale: bool = True, use_bias: bool = False, bn_momentum: float = 0.9,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        with self.name_scope():
            self.add(nn.Conv2D(channels, kernel_size, strides=strides, padding=padding,
                               use_bias=use_bias, in_channels=in_channels))
            self.add(nn.BatchNorm(in_channels=channels, epsilon=bn_epsilon, scale=bn_scale,
                                  momentum=bn_momentum))
            if activation is not None:
                self.add(nn.Activation(activation))


class GlobalAvgPool(nn.HybridBlock):
    """Global average pooling, shaped (N, C, 1, 1), through MXNet's own adaptive pooling.

    The numbers of ``nn.GlobalAvgPool2D`` with a much faster CPU backward, and it exports
    as ONNX GlobalAveragePool (why: docs/networks.md, "Shared units").
    """

    def hybrid_forward(self, F, x):
        return F.contrib.AdaptiveAvgPooling2D(x, output_size=1)


class Network(nn.HybridBlock):
    """The layout of every network here: ``features`` (up to the global pooling), then
    ``output``; ``(batch, num_classes)`` logits. ``INPUT_SIZE`` is the paper's input side."""

    INPUT_SIZE = 224

    def hybrid_forward(self, F, x):
        return self.output(self.features(x))

    def describe(self, input_size: int | None = None) -> str:
        """Stage-by-stage output shapes and parameter counts, for the training log."""
        size = input_size or self.INPUT_SIZE
        return summarize(self, (1, self._in_channels, size, size))


def summarize(net: gluon.HybridBlock, data_shape: tuple[int, ...]) -> str:
    """A printable table of the stages (children of ``net.features``, then ``net.output``):
    output shape, by symbolic shape inference (``net`` need not be initialized), and trainable
    parameters of each."""
    stages = [net.features[i] for i in range(len(net.features))] + [net.output]
    rows = []
    x = mx.sym.var("data")
    for stage in stages:
        x = stage(x)
        _, (shape,), _ = x.infer_shape(data=data_shape)
        name = stage.name[len(net.prefix):] if stage.name.startswith(net.prefix) else stage.name
        rows.append((name or type(stage).__name__.lower(), "x".join(map(str, shape)),
                     count_trainable_parameters(stage)))
    width = max(len(row[0]) for row in rows) + 2
    lines = [f"{type(net).__name__} on input {'x'.join(map(str, data_shape))}",
             f"{'stage':<{width}}{'output':>18}{'parameters':>14}"]
    lines += [f"{name:<{width}}{shape:>18}{count:>14,}" for name, shape, count in rows]
    lines.append(f"trainable parameters: {count_trainable_parameters(net):,}")
    return "\n".join(lines)


def count_trainable_parameters(net: gluon.Block) -> int:
    """Parameters that receive gradients (BN running statistics are buffers, not counted)."""
    return sum(math.prod(p.shape) for p in net.collect_params().values()
               if p.grad_req != "null")


def complete_shapes(net: gluon.HybridBlock, data_shape: tuple[int, ...]) -> None:
    """Give parameters whose shape is still open (deferred initialization, as GluonCV's
    networks leave input channels) their shape for an input of ``data_shape``."""
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
