"""Building units shared by every network: one conv-BN-activation unit, injected everywhere."""

from __future__ import annotations

from mxnet.gluon import nn


class ConvBNAct(nn.HybridSequential):
    """CONV => BN => ACT, the unit the book builds every GoogLeNet layer from.

    ``in_channels`` is given so shapes are known at ``initialize()`` (no deferred init);
    the convolution has no bias because BN's beta takes its place. ``activation=None``
    leaves the activation out (a residual branch's last unit before scaling).
    """

    def __init__(self, in_channels: int, channels: int, kernel_size: int | tuple[int, int],
                 strides: int | tuple[int, int] = 1, padding: int | tuple[int, int] = 0,
                 activation: str | None = "relu", bn_epsilon: float = 1e-5,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        with self.name_scope():
            self.add(nn.Conv2D(channels, kernel_size, strides=strides, padding=padding,
                               use_bias=False, in_channels=in_channels))
            self.add(nn.BatchNorm(in_channels=channels, epsilon=bn_epsilon))
            if activation is not None:
                self.add(nn.Activation(activation))
