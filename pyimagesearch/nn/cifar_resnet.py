"""The CIFAR-10 ResNets of He, Zhang, Ren & Sun, "Deep Residual Learning for Image
Recognition", CVPR 2016 (arXiv:1512.03385), Section 4.2.

Depth 6n+2: a 3x3 convolution with 16 filters, three stages of n building blocks (2n layers)
with 16, 32, 64 filters on 32x32, 16x16, 8x8 maps, global average pooling, a dense layer.
The first block of stages 2 and 3 halves the map with stride 2 in its first convolution.

Shortcuts (Section 3.3): option "A" is the identity, and where the shape changes it subsamples
with stride 2 and pads the new channels with zeros, without parameters (the paper's choice on
CIFAR); option "B" projects with a 1x1 convolution + BN where the shape changes and is the
identity elsewhere. The paper does not say where the zero channels go; here they follow the
input's channels (written down in ``docs/networks.md``).

Building-block variants (``variant``), the four of the Torch CIFAR reproduction's study
(gcr/torch-residual-networks, M. Wilber, README of 2016-01-12, "CIFAR: Effect of model
architecture"): "original" is the paper's conv-BN-ReLU-conv-BN, add, ReLU ("ReLU, BN before
add"); "bn_after_add" moves the second BN after the addition ("ReLU, BN after add"); the two
"no_relu_*" variants drop the ReLU after the addition, with the second BN before or after
the addition ("No ReLU, BN before/after add"). Of the three alternatives only
"bn_after_add" is also in He et al., "Identity Mappings in Deep Residual Networks", ECCV 2016
(arXiv:1603.05027), Figure 4(b).
"""

from __future__ import annotations

from mxnet.gluon import nn

from pyimagesearch.nn.layers import ConvBNAct, GlobalAvgPool, Network

# Section 4.2: the stem, then per stage (#filters, stride of its first block); output maps
# 32x32, 16x16, 8x8 for a 32x32 input. Each stage has n blocks of two 3x3 layers.
STEM_FILTERS = 16
STAGES = (
    (16, 1),
    (32, 2),
    (64, 2),
)

SHORTCUTS = ("A", "B")

# variant: (BN closes the residual branch, BN after the addition, ReLU after the addition)
VARIANTS = {
    "original": (True, False, True),
    "bn_after_add": (False, True, True),
    "no_relu_bn_before": (True, False, False),
    "no_relu_bn_after": (False, True, False),
}


def blocks_per_stage(depth: int) -> int:
    """n of depth = 6n + 2; ``ValueError`` for any other depth."""
    if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise ValueError(f"depth must be 6n+2 with n >= 1, e.g. 20, 32, 44, 56, 110 or 1202 "
                         f"(the paper's), got {depth!r}")
    return (depth - 2) // 6


class ZeroPadShortcut(nn.HybridBlock):
    """Option A: ``x[:, :, ::stride, ::stride]`` followed by ``extra_channels`` zero channels.

    Parameter-free. ``extra_channels`` may not exceed the input's channels (it equals them
    wherever a CIFAR ResNet changes width).
    """

    def __init__(self, in_channels: int, extra_channels: int, stride: int, **kwargs) -> None:
        super().__init__(**kwargs)
        if not 0 <= extra_channels <= in_channels:
            raise ValueError(f"option A pads at most {in_channels} channels, "
                             f"asked for {extra_channels}")
        self.extra_channels = extra_channels
        self.stride = stride

    def hybrid_forward(self, F, x):
        if self.stride > 1:
            x = F.slice(x, begin=(None, None, None, None), end=(None, None, None, None),
                        step=(1, 1, self.stride, self.stride))
        if self.extra_channels:
            zeros = F.slice_axis(F.zeros_like(x), axis=1, begin=0, end=self.extra_channels)
            x = F.concat(x, zeros, dim=1)
        return x


class BasicBlock(nn.HybridBlock):
    """Two 3x3 layers and a shortcut (Figure 2 of the paper), arranged by ``variant`` (a key
    of ``VARIANTS``); ``stride`` is the first convolution's and the shortcut's.

    Children: ``residual`` (conv-BN-ReLU, then conv with or without BN), ``shortcut``
    (``None`` for the identity, :class:`ZeroPadShortcut` for option ``"A"``, a 1x1 conv + BN
    projection for ``"B"``) and ``after_add`` (BN and/or ReLU on the sum, possibly empty).
    """

    def __init__(self, in_channels: int, channels: int, stride: int = 1, shortcut: str = "A",
                 variant: str = "original", **kwargs) -> None:
        super().__init__(**kwargs)
        bn_before_add, bn_after_add, relu_after_add = VARIANTS[variant]
        with self.name_scope():
            self.residual = nn.HybridSequential(prefix="")
            self.residual.add(ConvBNAct(in_channels, channels, 3, stride, 1, prefix="conv1_"))
            if bn_before_add:
                self.residual.add(ConvBNAct(channels, channels, 3, 1, 1, activation=None,
                                            prefix="conv2_"))
            else:  # the BN after the addition takes this one's place
                self.residual.add(nn.Conv2D(channels, 3, 1, 1, use_bias=False,
                                            in_channels=channels, prefix="conv2_"))
            if stride == 1 and in_channels == channels:
                self.shortcut = None
            elif shortcut == "A":
                self.shortcut = ZeroPadShortcut(in_channels, channels - in_channels, stride,
                                                prefix="shortcut_")
            else:
                self.shortcut = ConvBNAct(in_channels, channels, 1, stride, activation=None,
                                          prefix="shortcut_")
            self.after_add = nn.HybridSequential(prefix="")
            if bn_after_add:
                self.after_add.add(nn.BatchNorm(in_channels=channels, prefix="bn_after_add_"))
            if relu_after_add:
                self.after_add.add(nn.Activation("relu", prefix="relu_after_add_"))

    def hybrid_forward(self, F, x):
        shortcut = x if self.shortcut is None else self.shortcut(x)
        return self.after_add(self.residual(x) + shortcut)


class CifarResNet(Network):
    """ResNet for CIFAR-10 (He et al. 2016, Section 4.2), depth 6n+2 (20, 32, 44, 56, 110,
    1202 in the paper).

    ``features``: stem, three stages, global average pooling; ``output``: dense.
    ``shortcut``: option A (zero-padding, parameter-free, the paper's on CIFAR) or B
    (projection); ``variant``: a key of ``VARIANTS``. ``prefix`` names every parameter, fixed
    so checkpoints load by name in any process.
    """

    INPUT_SIZE = 32

    def __init__(self, depth: int = 20, num_classes: int = 10, shortcut: str = "A",
                 variant: str = "original", in_channels: int = 3,
                 prefix: str = "cifar_resnet_", params=None) -> None:
        super().__init__(prefix=prefix, params=params)
        n = blocks_per_stage(depth)
        if shortcut not in SHORTCUTS:
            raise ValueError(f"unknown shortcut {shortcut!r}; valid: {', '.join(SHORTCUTS)}")
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}; valid: {', '.join(VARIANTS)}")
        self._in_channels = in_channels
        with self.name_scope():
            self.features = nn.HybridSequential(prefix="features_")
            self.features.add(ConvBNAct(in_channels, STEM_FILTERS, 3, 1, 1, prefix="conv1_"))
            channels = STEM_FILTERS
            for s, (filters, stride) in enumerate(STAGES, start=1):
                stage = nn.HybridSequential(prefix=f"stage{s}_")
                with stage.name_scope():
                    for b in range(1, n + 1):
                        stage.add(BasicBlock(channels, filters, stride if b == 1 else 1,
                                             shortcut, variant, prefix=f"block{b}_"))
                        channels = filters
                self.features.add(stage)
            self.features.add(GlobalAvgPool(prefix="global_pool_"))
            self.output = nn.Dense(num_classes, in_units=channels, prefix="fc_")
