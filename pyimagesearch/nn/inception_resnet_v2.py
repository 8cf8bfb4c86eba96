"""Inception-ResNet-v2, in two layouts: Google's released weights, and the paper's.

Szegedy, Ioffe, Vanhoucke & Alemi, "Inception-v4, Inception-ResNet and the Impact of Residual
Connections on Learning", AAAI 2017 (arXiv:1602.07261), Figures 3 and 15-19.

``layout="released"`` (the default) follows the graph of the weights Google released with
TF-slim (``inception_resnet_v2_2016_08_30``; Keras' ``InceptionResNetV2`` has the same
layout), so that its parameter count (55,813,192 trainable at 1000 classes) and its layer
shapes match the weights everyone compares against. ``layout="paper"`` is the paper's
network as the Torch reproduction (lim0606/torch-inception-resnet-v2, its model file in
fb.resnet.torch pull request 64) built it; its choices follow the released layout's below.

The released layout's choices:

Stem
    The paper's Figure 3 (shared with Inception-v4) ends in 384 channels at 35x35. The
    released graph uses a simpler stem: conv 3x3/2 32, 3x3 32, 3x3 64, max pool 3x3/2,
    1x1 80, 3x3 192, max pool 3x3/2, then an Inception block ``mixed_5b`` with branches
    1x1 96 | 1x1 48 -> 5x5 64 | 1x1 64 -> 3x3 96 -> 3x3 96 | avg pool 3x3 -> 1x1 64,
    i.e. 320 channels at 35x35. This module implements the released stem.
Widths that do not add up in the paper
    Each residual block's last 1x1 convolution must restore its input width. With the
    paper's 384-channel stem, Reduction-A (k, l, m, n = 256, 256, 384, 384) outputs
    384 + n + m = 1152 channels, so Figure 17's "1154" for Inception-ResNet-B is a typo for
    1152. Reduction-B (Figure 18: 3x3/2 384 | 3x3/2 288 | 3x3 288 -> 3x3/2 320 | max pool)
    then outputs 1152 + 384 + 288 + 320 = 2144 channels, while Figure 19 gives
    Inception-ResNet-C 2048 (the Torch reproduction narrows Reduction-B to get 2048: the
    paper layout below). With the released 320-channel stem everything adds up:
    Reduction-A gives 320 + 384 + 384 = 1088 (Inception-ResNet-B's last 1x1 is 1088 wide),
    Reduction-B gives 1088 + 384 + 288 + 320 = 2080 (Inception-ResNet-C's last 1x1 is 2080
    wide). The released layout uses these widths, 1088 and 2080, and keeps Figure 18's
    branch widths.
Residual branches
    Each ends in a 1x1 convolution with bias and without BN or ReLU ("1x1 Conv, Linear" in
    the figures), scaled by the block type's residual scale (Section 3.3 suggests 0.1 to
    0.3; the released graph uses 0.17, 0.10, 0.20) before the addition, then ReLU. The last
    Inception-ResNet-C block is released with scale 1.0 and no ReLU after the addition; so it
    is here (``final_scale``).
Batch normalization
    After every convolution except the residual branches' last one. As released, BN has no
    learned scale (gamma fixed at 1, not trained: ReLU follows, and the next convolution can
    absorb a scale) and epsilon 0.001.
Head
    A 1x1 convolution to 1536 channels (``conv2d_7b``, from the released graph), global
    average pooling (8x8 at 299 px), dropout 0.2 (keep probability 0.8), dense.
Block counts
    The paper's Figure 15 repeats the residual blocks 5, 10, 5 times (``PAPER_BLOCKS``); the
    released weights repeat them 10, 20, 10 times (``RELEASED_BLOCKS``, the default).

The paper layout (``PAPER_*`` tables), as the Torch reproduction built it:

Stem
    Figure 3 (shared with Inception-v4): conv 3x3/2 32 V, 3x3 32 V, 3x3 64, then three
    filter concatenations: max pool 3x3/2 V | 3x3/2 96 V (160 channels); 1x1 64 -> 3x3 96 V
    | 1x1 64 -> 7x1 64 -> 1x7 64 -> 3x3 96 V (192); 3x3/2 192 V | max pool 3x3/2 V (384 at
    35x35). Kernels are (height, width) as the figures label them. The Torch code passes
    its (kh, kw) to Torch's (kW, kH) arguments, so it runs each asymmetric pair transposed
    (1x7 first here, 7x1 first in Inception-ResNet-B); shapes and counts are the same.
Widths, with the Torch reproduction's typo corrections
    Reduction-A (k, l, m, n = 256, 256, 384, 384) outputs 384 + 384 + 384 = 1152, so
    Inception-ResNet-B's last 1x1 is 1152 wide (Figure 17 prints 1154). Figure 18's
    Reduction-B (3x3/2 384 | 3x3/2 288 | 3x3 288 -> 3x3/2 320, each after a 1x1 256) would
    output 1152 + 992 = 2144, not the 2048 of Figure 19; the reproduction narrowed the
    second branch to 256 and the third to 256 -> 256 (after revilokeb's Caffe model), which
    gives 1152 + 384 + 256 + 256 = 2048.
Residual branches
    The last 1x1 convolution is "linear" as in the figures: no ReLU, but, as in the Torch
    code, followed by BN (no convolution in that code has a bias); its output is multiplied
    by 0.1 in every block, the last included, before the addition, then ReLU.
Batch normalization, head
    Torch's defaults: trained gamma, epsilon 1e-5 (MXNet's momentum 0.9 is Torch's 0.1).
    No 1x1 head convolution: Inception-ResNet-C's 2048 channels go straight to the average
    pooling (8x8 at 299 px), dropout 0.2 (keep 0.8) and the classifier. Blocks 5, 10, 5.
"""

from __future__ import annotations

from typing import Any

from mxnet.gluon import nn

from pyimagesearch.nn.layers import ConvBNAct, GlobalAvgPool, summarize

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
    """Parallel branches, each a chain of table entries, concatenated along channels.

    Every non-residual block of the network is one of these: ``mixed_5b`` (the stem's last
    block), Reduction-A and Reduction-B; the residual blocks wrap one.

    Parameters
    ----------
    in_channels : int
        Channels of the input.
    branches : tuple
        The block's table (see the module's table format).
    unit : dict
        Keyword arguments of every convolution's :class:`ConvBNAct` (the layout's BN).
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
    """``scale * conv1x1(x)`` computed as ``conv1x1(x; scale * W, scale * b)``.

    The same function and the same gradients as scaling the output, with the multiplication
    on the weights (thousands of numbers) instead of the activations (millions per batch):
    scaling the output of every residual branch cost 6% of an Inception-ResNet-v2 training
    step on the CPU. The parameters are named like ``nn.Conv2D``'s (``<prefix>weight``,
    ``<prefix>bias``), so checkpoints and exports read the same.
    """

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
    """An Inception-ResNet block (Figures 16, 17, 19): ``x + scale * up(branches(x))``, ReLU.

    ``up`` is a 1x1 convolution back to ``in_channels``. Released layout: with bias, without
    BN or activation; it applies ``scale`` (stored as ``self.scale``) to its weights. Paper
    layout (``unit=PAPER_UNIT``): without bias and followed by BN, as the Torch reproduction
    built it, so the scale multiplies BN's output.

    Parameters
    ----------
    in_channels : int
        Channels of the input and of the output.
    branches : tuple
        The block's table (``BLOCK35``, ``BLOCK17`` or ``BLOCK8``).
    scale : float
        Residual scale (Section 3.3 of the paper).
    activation : bool
        ReLU after the addition; the released graph leaves it out of the very last block.
    unit : dict
        The convolutions' BN: ``RELEASED_UNIT`` or ``PAPER_UNIT`` (which also closes the
        branch with conv + BN instead of a biased conv).
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
        # Activation, not relu: MXNet's plain relu has no oneDNN kernel, and on the blocked
        # layouts oneDNN hands it, relu forward and backward took 13% of a training step.
        return F.Activation(out, act_type="relu") if self.activation else out


class InceptionResNetV2(nn.HybridBlock):
    """Inception-ResNet-v2 (Szegedy et al. 2016, arXiv:1602.07261), released or paper layout.

    Released: ``features``: stem, ``mixed_5b``, ``blocks[0]`` x block35, ``mixed_6a``
    (Reduction-A), ``blocks[1]`` x block17, ``mixed_7a`` (Reduction-B), ``blocks[2]`` x block8
    (the last one with ``final_scale`` and no ReLU), ``conv2d_7b`` and global average
    pooling. Paper: Figure 3's stem (``conv2d_1a`` .. ``mixed_5a``), the same sequence of
    residual and reduction blocks in the paper's widths, every block8 alike, global average
    pooling. ``output``: dropout and dense. Output: ``(batch, num_classes)`` logits. The
    smallest input that works is 75 px; the paper's is 299 px.

    Parameters
    ----------
    num_classes : int
        Width of the classifier.
    blocks : tuple of 3 int, optional
        Repeats of Inception-ResNet-A, -B, -C: ``RELEASED_BLOCKS`` (the released layout's
        default) or ``PAPER_BLOCKS`` (the paper layout's).
    scales : tuple of 3 float, optional
        Residual scales of the three block types (``RELEASED_SCALES``, ``PAPER_SCALES``).
    dropout : float
        Dropout rate before the classifier (0.2, i.e. keep probability 0.8).
    in_channels : int
        Channels of the input images.
    final_scale : float, optional
        Released layout only: residual scale of the last Inception-ResNet-C block (1.0).
    layout : str
        ``"released"`` (Google's released graph) or ``"paper"`` (the Torch reproduction's).
    prefix : str
        Name prefix of every parameter; fixed so checkpoints load by name in any process.
    """

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
            self._build_paper(num_classes, blocks, scales, dropout, in_channels)
            return
        final_scale = 1.0 if final_scale is None else final_scale
        channels = in_channels
        with self.name_scope():
            self.features = nn.HybridSequential(prefix="features_")
            for name, spec in zip(STEM_NAMES, STEM):
                layer, channels = _layer(channels, spec, prefix=f"{name}_")
                self.features.add(layer)
            channels = self._add_mixed(channels, MIXED_5B, "mixed_5b_")
            channels = self._add_residual(channels, BLOCK35, "block35", blocks[0], scales[0])
            channels = self._add_mixed(channels, REDUCTION_A, "mixed_6a_")
            channels = self._add_residual(channels, BLOCK17, "block17", blocks[1], scales[1])
            channels = self._add_mixed(channels, REDUCTION_B, "mixed_7a_")
            channels = self._add_residual(channels, BLOCK8, "block8", blocks[2] - 1, scales[2])
            # As released: the last block8 has its own scale and no ReLU after the addition.
            self.features.add(InceptionResNetBlock(channels, BLOCK8, final_scale,
                                                   activation=False,
                                                   prefix=f"block8_{blocks[2]}_"))
            conv, channels = _conv(channels, (FINAL_CHANNELS, 1), prefix="conv2d_7b_")
            self.features.add(conv, GlobalAvgPool(prefix="global_pool_"))
            self.output = nn.HybridSequential(prefix="output_")
            with self.output.name_scope():
                self.output.add(nn.Dropout(dropout),
                                nn.Dense(num_classes, in_units=channels, prefix="logits_"))

    def _build_paper(self, num_classes: int, blocks: tuple[int, int, int],
                     scales: tuple[float, float, float], dropout: float, channels: int) -> None:
        """The ``PAPER_*`` tables, every convolution a ``PAPER_UNIT``."""
        unit = PAPER_UNIT
        with self.name_scope():
            self.features = nn.HybridSequential(prefix="features_")
            for name, spec in zip(PAPER_STEM_NAMES, PAPER_STEM):
                layer, channels = _layer(channels, spec, f"{name}_", unit)
                self.features.add(layer)
            for name, table in PAPER_STEM_MIXED:
                channels = self._add_mixed(channels, table, f"{name}_", unit)
            channels = self._add_residual(channels, PAPER_BLOCK35, "block35", blocks[0],
                                          scales[0], unit)
            channels = self._add_mixed(channels, PAPER_REDUCTION_A, "mixed_6a_", unit)
            channels = self._add_residual(channels, PAPER_BLOCK17, "block17", blocks[1],
                                          scales[1], unit)
            channels = self._add_mixed(channels, PAPER_REDUCTION_B, "mixed_7a_", unit)
            channels = self._add_residual(channels, PAPER_BLOCK8, "block8", blocks[2],
                                          scales[2], unit)
            # Deviation from the Torch code's fixed 8x8 average pooling: the same at 299 px.
            self.features.add(GlobalAvgPool(prefix="global_pool_"))
            self.output = nn.HybridSequential(prefix="output_")
            with self.output.name_scope():
                self.output.add(nn.Dropout(dropout),
                                nn.Dense(num_classes, in_units=channels, prefix="logits_"))

    def _add_mixed(self, in_channels: int, table: tuple, prefix: str,
                   unit: dict[str, Any] = RELEASED_UNIT) -> int:
        block = Mixed(in_channels, table, unit, prefix=prefix)
        self.features.add(block)
        return block.out_channels

    def _add_residual(self, channels: int, table: tuple, name: str, count: int,
                      scale: float, unit: dict[str, Any] = RELEASED_UNIT) -> int:
        for i in range(1, count + 1):
            self.features.add(InceptionResNetBlock(channels, table, scale, unit=unit,
                                                   prefix=f"{name}_{i}_"))
        return channels

    def hybrid_forward(self, F, x):
        return self.output(self.features(x))

    def describe(self, input_size: int = 299) -> str:
        """Stage-by-stage output shapes and parameter counts, for the training log."""
        return summarize(self, (1, self._in_channels, input_size, input_size))
