"""Building units shared by every network: one conv-BN-activation unit, injected everywhere."""

from __future__ import annotations

import mxnet as mx
from mxnet import gluon
from mxnet.gluon import nn


class ConvBNAct(nn.HybridSequential):
    """CONV => BN => ACT, the unit the book builds every GoogLeNet layer from.

    ``in_channels`` is given so shapes are known at ``initialize()`` (no deferred init).
    By default the convolution has no bias, because BN's beta takes its place;
    ``use_bias=True`` gives it one, as ``mx.sym.Convolution`` does by default (the book's
    symbolic GoogLeNet). ``activation=None`` leaves the activation out (a residual branch's
    last unit before scaling). ``bn_scale=False`` fixes BN's gamma at 1 and stops training
    it (``grad_req='null'``): MXNet's ``fix_gamma=True``, the default of ``mx.sym.BatchNorm``
    and the choice of Google's released Inception-ResNet-v2, whose batch norms have no scale.
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


def summarize(net: gluon.HybridBlock, data_shape: tuple[int, ...]) -> str:
    """A printable table of ``net``'s stages: output shape and trainable parameters of each.

    The stages are the children of ``net.features`` followed by ``net.output``, the layout
    every network in this package follows. Shapes come from symbolic shape inference, so
    nothing is computed and ``net`` need not be initialized.
    """
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


class GlobalAvgPool(nn.HybridBlock):
    """Global average pooling, shaped (N, C, 1, 1), through MXNet's own adaptive pooling.

    The same numbers as ``nn.GlobalAvgPool2D``, but a much faster backward on the CPU:
    MXNet 1.9's oneDNN pooling backward runs a reference kernel (15 ms for a 128x64x8x8
    map) and returns its gradient in a layout (``acdB16b``) that sends every BatchNorm
    backward it reaches through the residual sums to oneDNN's reference kernel as well
    (20 ms each, against 0.3 ms): 45% of a CIFAR ResNet-20 step. The adaptive pooling
    operator is MXNet's own and hands back a plain gradient. (A ``mean`` would do the
    same but exports to an ONNX ReduceMean that MXNet 1.9's exporter writes wrongly for
    onnx 1.13; this one exports as GlobalAveragePool.)
    """

    def hybrid_forward(self, F, x):
        return F.contrib.AdaptiveAvgPooling2D(x, output_size=1)


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
