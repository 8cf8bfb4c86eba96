"""Inception-ResNet-v2 (Szegedy, Ioffe, Vanhoucke & Alemi, "Inception-v4, Inception-ResNet and
the Impact of Residual Connections on Learning", AAAI 2017, arXiv:1602.07261), two layouts.

``layout="released"`` (the default) follows the graph of the weights Google released with
TF-slim (``inception_resnet_v2_2016_08_30``, Keras' ``InceptionResNetV2`` alike);
``layout="paper"`` is Figures 3 and 15-19 as the Torch reproduction (lim0606) built it. Each
departure from the paper is written at its table line and in ``docs/networks.md``.
"""

from __future__ import annotations

from typing import Any

from mxnet.gluon import nn

from pyimagesearch.nn.layers import ConvBNAct, GlobalAvgPool, Network

# The tables. A convolution is (channels, kernel[, stride, padding]); kernel is an int or
# (height, width); stride defaults to 1 and padding to "same" (kernel // 2), as unmarked layers
# in the paper's figures; "V" (valid) layers give padding 0. A pooling is
# ("max" | "avg", kernel, stride, padding). A branch is a chain of these; a block is a tuple of
# branches whose outputs are concatenated.

# Deviation: the released stem (Conv2d_1a_3x3 .. MaxPool_5a_3x3 + mixed_5b), not Figure 3.
STEM = (
    (32, 3, 2, 0),
    (32, 3, 1, 0),
    (64, 3),
    ("max", 3, 2, 0),
    (80, 1, 1, 0),
    (192, 3, 1, 0),
    ("max", 3, 2, 0),
)
STEM_NAMES = ("conv2d_1a", "conv2d_2a", "conv2d_2b", "maxpool_3a", "conv2d_3b", "conv2d_4a",
              "maxpool_5a")

MIXED_5B = (  # released graph: the stem's last block, 320 channels
    ((96, 1),),
    ((48, 1), (64, 5)),
    ((64, 1), (96, 3), (96, 3)),
    (("avg", 3, 1, 1), (64, 1)),
)

BLOCK35 = (  # Inception-ResNet-A, Figure 16; closed by a 1x1 back to the input width
    ((32, 1),),
    ((32, 1), (32, 3)),
    ((32, 1), (48, 3), (64, 3)),
)

REDUCTION_A = (  # Figure 7 with k, l, m, n = 256, 256, 384, 384 (Table 1)
    ((384, 3, 2, 0),),
    ((256, 1), (256, 3), (384, 3, 2, 0)),
    (("max", 3, 2, 0),),
)

BLOCK17 = (  # Inception-ResNet-B, Figure 17
    ((192, 1),),
    ((128, 1), (160, (1, 7)), (192, (7, 1))),
)

REDUCTION_B = (  # Figure 18
    ((256, 1), (384, 3, 2, 0)),
    ((256, 1), (288, 3, 2, 0)),
    ((256, 1), (288, 3), (320, 3, 2, 0)),
    (("max", 3, 2, 0),),
)

BLOCK8 = (  # Inception-ResNet-C, Figure 19
    ((192, 1),),
    ((192, 1), (224, (1, 3)), (256, (3, 1))),
)

FINAL_CHANNELS = 1536  # released graph: Conv2d_7b_1x1

PAPER_BLOCKS = (5, 10, 5)  # Figure 15: Inception-ResNet-A, -B, -C repeats
RELEASED_BLOCKS = (10, 20, 10)  # Google's released weights
RELEASED_SCALES = (0.17, 0.10, 0.20)  # residual scales of block35, block17, block8

BN_EPSILON = 1e-3  # released graph
BN_SCALE = False  # Deviation from Gluon's default, as released: no trained gamma
RELEASED_UNIT = {"bn_epsilon": BN_EPSILON, "bn_scale": BN_SCALE}

# --- The paper's layout, as the Torch reproduction built it (lim0606) -------------------
# Concatenations in the Torch code's branch order.

PAPER_STEM = (  # Figure 3, before its first filter concatenation
    (32, 3, 2, 0),
    (32, 3, 1, 0),
    (64, 3),
)
PAPER_STEM_NAMES = ("conv2d_1a", "conv2d_2a", "conv2d_2b")

PAPER_STEM_MIXED = (  # Figure 3's three filter concatenations: 160, 192, 384 channels
    ("mixed_3a", (
        (("max", 3, 2, 0),),
        ((96, 3, 2, 0),),
    )),
    ("mixed_4a", (
        ((64, 1), (96, 3, 1, 0)),
        ((64, 1), (64, (7, 1)), (64, (1, 7)), (96, 3, 1, 0)),
    )),
    ("mixed_5a", (
        ((192, 3, 2, 0),),
        (("max", 3, 2, 0),),
    )),
)

PAPER_BLOCK35 = BLOCK35  # Figure 16: the same branches; closed by a 1x1 back to 384

PAPER_REDUCTION_A = (  # Figure 7 with k, l, m, n = 256, 256, 384, 384: 1152 channels
    (("max", 3, 2, 0),),
    ((384, 3, 2, 0),),
    ((256, 1), (256, 3), (384, 3, 2, 0)),
)

PAPER_BLOCK17 = BLOCK17  # Figure 17; closed by a 1x1 back to 1152 (the figure prints 1154)

PAPER_REDUCTION_B = (  # Figure 18 with the Torch reproduction's widths: 2048 channels
    (("max", 3, 2, 0),),
    ((256, 1), (384, 3, 2, 0)),
    ((256, 1), (256, 3, 2, 0)),               # Deviation from Figure 18: 288 there
    ((256, 1), (256, 3), (256, 3, 2, 0)),     # Deviation from Figure 18: 288, 320 there
)

PAPER_BLOCK8 = BLOCK8  # Figure 19; closed by a 1x1 back to 2048

PAPER_SCALES = (0.1, 0.1, 0.1)  # the Torch code's MulConstant(0.1), every block
PAPER_UNIT = {"bn_epsilon": 1e-5, "bn_scale": True}  # Torch's SpatialBatchNormalization

LAYOUTS = ("released", "paper")


def _conv(in_channels: int, spec: tuple, prefix: str, unit: dict[str, Any] = RELEASED_UNIT,
          activation: str | None = "relu") -> tuple[ConvBNAct, int]:
    channels, kernel, *rest = spec
    kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
    stride, padding = rest if rest else (1, (kh // 2, kw // 2))
    return ConvBNAct(in_channels, channels, (kh, kw), stride, padding, activation=activation,
                     prefix=prefix, **unit), channels


def _layer(in_channels: int, spec: tuple, prefix: str,
           unit: dict[str, Any] = RELEASED_UNIT) -> tuple[nn.HybridBlock, int]:
    """A convolution or pooling from its table entry, and its output channels."""
    if spec[0] == "max":
        return nn.MaxPool2D(*spec[1:], prefix=prefix), in_channels
    if spec[0] == "avg":
        # TF "same" average pooling divides by the number of real (unpadded) inputs.
        return nn.AvgPool2D(*spec[1:], count_include_pad=False, prefix=prefix), in_channels
    return _conv(in_channels, spec, prefix, unit)


class Mixed(nn.HybridBlock):
    """Parallel branches, each a chain of table entries (``branches``, the module's table
    format), concatenated along channels; ``unit`` is every convolution's BN.

    Every non-residual block is one: ``mixed_5b`` (the stem's last block), Reduction-A and
    Reduction-B; the residual blocks wrap one.
    """

    def __init__(self, in_channels: int, branches: tuple,
                 unit: dict[str, Any] = RELEASED_UNIT, **kwargs) -> None:
        super().__init__(**kwargs)
        self.out_channels = 0
        with self.name_scope():
            self.branches = []
            for b, chain in enumerate(branches):
                branch = nn.HybridSequential(prefix=f"branch{b}_")
                channels = in_channels
                with branch.name_scope():
                    for i, spec in enumerate(chain):
                        layer, channels = _layer(channels, spec, f"{i}_", unit)
                        branch.add(layer)
                self.register_child(branch)
                self.branches.append(branch)
                self.out_channels += channels

    def hybrid_forward(self, F, x):
        return F.concat(*[branch(x) for branch in self.branches], dim=1)


class ScaledConv1x1(nn.HybridBlock):
    """``scale * conv1x1(x)`` computed as ``conv1x1(x; scale * W, scale * b)``: the same
    function and gradients, the multiplication on the weights instead of the activations
    (faster: docs/networks.md). Parameters are named like ``nn.Conv2D``'s."""

    def __init__(self, channels: int, in_channels: int, scale: float, **kwargs) -> None:
        super().__init__(**kwargs)
        self.channels = channels
        self.scale = float(scale)
        with self.name_scope():
            self.weight = self.params.get("weight", shape=(channels, in_channels, 1, 1),
                                          allow_deferred_init=True)
            self.bias = self.params.get("bias", shape=(channels,), init="zeros",
                                        allow_deferred_init=True)

    def hybrid_forward(self, F, x, weight, bias):
        if self.scale != 1.0:
            weight, bias = weight * self.scale, bias * self.scale
        return F.Convolution(x, weight, bias, kernel=(1, 1), num_filter=self.channels)


class InceptionResNetBlock(nn.HybridBlock):
    """An Inception-ResNet block (Figures 16, 17, 19): ``x + scale * up(branches(x))``, then
    ReLU unless ``activation`` is False (the released graph's very last block).

    ``branches`` is ``BLOCK35``, ``BLOCK17`` or ``BLOCK8``; ``up`` is a 1x1 convolution back to
    ``in_channels``. With ``unit=RELEASED_UNIT`` it has a bias, no BN and no activation, and
    applies ``scale`` to its weights; with ``PAPER_UNIT`` it has no bias and is followed by BN,
    as the Torch reproduction built it, so the scale multiplies BN's output.
    """

    def __init__(self, in_channels: int, branches: tuple, scale: float,
                 activation: bool = True, unit: dict[str, Any] = RELEASED_UNIT,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        self.scale = float(scale)
        self.activation = activation
        self._scale_outside = unit is not RELEASED_UNIT
        with self.name_scope():
            self.mixed = Mixed(in_channels, branches, unit, prefix="")
            # Back to the input width: 320, 1088 and 2080 in the released layout, 384, 1152
            # and 2048 in the paper's (whose figures print 1154 for 1152).
            if self._scale_outside:
                # The Torch reproduction's addConvLinear: conv (no bias) => BN, no ReLU.
                self.up, _ = _conv(self.mixed.out_channels, (in_channels, 1), "up_", unit,
                                   activation=None)
            else:  # bias, no BN, as released
                self.up = ScaledConv1x1(in_channels, self.mixed.out_channels, self.scale,
                                        prefix="up_")

    def hybrid_forward(self, F, x):
        residual = self.up(self.mixed(x))  # the released up() applies the scale itself
        out = x + (residual * self.scale if self._scale_outside else residual)
        # Activation, not relu: MXNet's plain relu has no oneDNN kernel (docs/networks.md).
        return F.Activation(out, act_type="relu") if self.activation else out


class InceptionResNetV2(Network):
    """Inception-ResNet-v2 (Szegedy et al. 2016, arXiv:1602.07261), released or paper layout.

    ``features``: the stem (released: ``conv2d_1a`` .. ``mixed_5b``; paper: Figure 3's,
    ``conv2d_1a`` .. ``mixed_5a``), ``blocks[0]`` x block35, ``mixed_6a`` (Reduction-A),
    ``blocks[1]`` x block17, ``mixed_7a`` (Reduction-B), ``blocks[2]`` x block8 (released: the
    last one with ``final_scale``, default 1.0, and no ReLU, then ``conv2d_7b``), global
    average pooling. ``output``: dropout (0.2, keep probability 0.8) and dense. ``blocks``
    and ``scales`` default to the layout's (``RELEASED_*`` or ``PAPER_*``). The smallest input
    is 75 px; the paper's is 299 px. ``prefix`` names every parameter, fixed so checkpoints
    load by name in any process.
    """

    INPUT_SIZE = 299

    def __init__(self, num_classes: int = 1000, blocks: tuple[int, int, int] | None = None,
                 scales: tuple[float, float, float] | None = None, dropout: float = 0.2,
                 in_channels: int = 3, final_scale: float | None = None,
                 layout: str = "released", prefix: str = "inception_resnet_v2_",
                 params=None) -> None:
        super().__init__(prefix=prefix, params=params)
        if layout not in LAYOUTS:
            raise ValueError(f"unknown layout {layout!r}; valid: {', '.join(LAYOUTS)}")
        paper = layout == "paper"
        if paper and final_scale is not None:
            raise ValueError("final_scale belongs to the released layout; the paper layout "
                             "scales its last block like the others (scales[2])")
        blocks = tuple(blocks if blocks is not None else
                       PAPER_BLOCKS if paper else RELEASED_BLOCKS)
        scales = tuple(scales if scales is not None else
                       PAPER_SCALES if paper else RELEASED_SCALES)
        if len(blocks) != 3 or any(not isinstance(n, int) or n < 1 for n in blocks):
            raise ValueError(f"blocks must be three positive ints (e.g. {RELEASED_BLOCKS} "
                             f"released, {PAPER_BLOCKS} paper), got {blocks}")
        if len(scales) != 3:
            raise ValueError(f"scales must be three floats (e.g. {RELEASED_SCALES}), got {scales}")
        self._in_channels = in_channels
        self.layout = layout
        if paper:
            unit, stem, mixed = PAPER_UNIT, zip(PAPER_STEM_NAMES, PAPER_STEM), PAPER_STEM_MIXED
            reductions = (PAPER_REDUCTION_A, PAPER_REDUCTION_B)
            tables = (PAPER_BLOCK35, PAPER_BLOCK17, PAPER_BLOCK8)
        else:
            unit, stem, mixed = RELEASED_UNIT, zip(STEM_NAMES, STEM), (("mixed_5b", MIXED_5B),)
            reductions, tables = (REDUCTION_A, REDUCTION_B), (BLOCK35, BLOCK17, BLOCK8)
        channels = in_channels
        with self.name_scope():
            self.features = nn.HybridSequential(prefix="features_")
            for name, spec in stem:
                layer, channels = _layer(channels, spec, f"{name}_", unit)
                self.features.add(layer)
            for name, table in mixed:
                channels = self._add_mixed(channels, table, f"{name}_", unit)
            channels = self._add_residual(channels, tables[0], "block35", blocks[0], scales[0],
                                          unit)
            channels = self._add_mixed(channels, reductions[0], "mixed_6a_", unit)
            channels = self._add_residual(channels, tables[1], "block17", blocks[1], scales[1],
                                          unit)
            channels = self._add_mixed(channels, reductions[1], "mixed_7a_", unit)
            # Released: the last block8 is built apart, below.
            last = blocks[2] if paper else blocks[2] - 1
            channels = self._add_residual(channels, tables[2], "block8", last, scales[2], unit)
            if not paper:
                # As released: the last block8 has its own scale and no ReLU after the addition.
                self.features.add(InceptionResNetBlock(
                    channels, BLOCK8, 1.0 if final_scale is None else final_scale,
                    activation=False, prefix=f"block8_{blocks[2]}_"))
                conv, channels = _conv(channels, (FINAL_CHANNELS, 1), prefix="conv2d_7b_")
                self.features.add(conv)
            # Deviation from the released graph's and the Torch code's fixed 8x8 average
            # pooling: global, the same at 299 px.
            self.features.add(GlobalAvgPool(prefix="global_pool_"))
            self.output = nn.HybridSequential(prefix="output_")
            with self.output.name_scope():
                self.output.add(nn.Dropout(dropout),
                                nn.Dense(num_classes, in_units=channels, prefix="logits_"))

    def _add_mixed(self, in_channels: int, table: tuple, prefix: str,
                   unit: dict[str, Any]) -> int:
        block = Mixed(in_channels, table, unit, prefix=prefix)
        self.features.add(block)
        return block.out_channels

    def _add_residual(self, channels: int, table: tuple, name: str, count: int,
                      scale: float, unit: dict[str, Any]) -> int:
        for i in range(1, count + 1):
            self.features.add(InceptionResNetBlock(channels, table, scale, unit=unit,
                                                   prefix=f"{name}_{i}_"))
        return channels
