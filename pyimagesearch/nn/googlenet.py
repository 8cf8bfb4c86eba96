"""GoogLeNet (Inception v1) as the ImageNet Bundle builds it: Szegedy et al., "Going Deeper
with Convolutions", CVPR 2015 (arXiv:1409.4842), Table 1.

Two variants of the same layers: ``"default"`` (CONV without bias => BN => RELU) and
``"book"``, the chapter's symbolic ``MxGoogLeNet`` exactly, so its checkpoints load. The
deviations from the paper are written at their lines and in ``docs/networks.md``.
"""

from __future__ import annotations

from typing import Any

from mxnet.gluon import nn

from pyimagesearch.nn.layers import ConvBNAct, GlobalAvgPool, Network

# Table 1, the layers before the first Inception module: (name, type, #filters, kernel, stride,
# padding), named as in the paper's Caffe model.
STEM = (
    ("conv1", "conv", 64, 7, 2, 3),
    # Deviation: the paper pools 3x3/2 without padding and rounds sizes up (Caffe); padding 1
    # with floor rounding gives the same sizes at 224 px and keeps a 32 px input alive.
    ("pool1", "max pool", 0, 3, 2, 1),
    # Deviation: the paper has a local response normalization here (and after conv2).
    ("conv2_reduce", "conv", 64, 1, 1, 0),  # the table's "#3x3 reduce" of the 3x3 conv
    ("conv2", "conv", 192, 3, 1, 1),
    ("pool2", "max pool", 0, 3, 2, 1),
)

# Table 1, the Inception modules, in the paper's column order. Deviations: every convolution
# is CONV => BN => RELU (the paper has no BN), and the auxiliary classifiers on 4a and 4d are
# dropped, as in the book.
INCEPTION = (
    # name  #1x1  #3x3 reduce  #3x3  #5x5 reduce  #5x5  pool proj
    ("3a",    64,     96,      128,      16,       32,     32),
    ("3b",   128,    128,      192,      32,       96,     64),
    ("4a",   192,     96,      208,      16,       48,     64),
    ("4b",   160,    112,      224,      24,       64,     64),
    ("4c",   128,    128,      256,      24,       64,     64),
    ("4d",   112,    144,      288,      32,       64,     64),
    ("4e",   256,    160,      320,      32,      128,    128),
    ("5a",   256,    160,      320,      32,      128,    128),
    ("5b",   384,    192,      384,      48,      128,    128),
)

# Table 1: a max pool 3x3/2 (padded like the stem's) follows these modules: module -> pool name.
POOL_AFTER = {"3b": "pool3", "4e": "pool4"}

# The ImageNet Bundle's MxGoogLeNet.build (the GoogLeNet chapter), layer by layer, with the
# book's names. A conv row is (name, "conv", #filters, kernel, stride, pad); a pool row is
# (name, "max pool" | "avg pool", 0, kernel, stride, pad); an inception row gives the six
# widths of the paper's columns; then dropout (rate) and the classifier.
BOOK_LAYERS = (
    ("conv1_1", "conv", 64, 7, 2, 3),
    ("pool1", "max pool", 0, 3, 2, 1),
    ("conv1_2", "conv", 64, 1, 1, 0),
    ("conv1_3", "conv", 192, 3, 1, 1),
    ("pool2", "max pool", 0, 3, 2, 1),
    ("in3a", "inception", 64, 96, 128, 16, 32, 32),
    ("in3b", "inception", 128, 128, 192, 32, 96, 64),
    ("pool3", "max pool", 0, 3, 2, 1),
    ("in4a", "inception", 192, 96, 208, 16, 48, 64),
    ("in4b", "inception", 160, 112, 224, 24, 64, 64),
    ("in4c", "inception", 128, 128, 256, 24, 64, 64),
    ("in4d", "inception", 112, 144, 288, 32, 64, 64),
    ("in4e", "inception", 256, 160, 320, 32, 128, 128),
    ("pool4", "max pool", 0, 3, 2, 1),
    ("in5a", "inception", 256, 160, 320, 32, 128, 128),
    ("in5b", "inception", 384, 192, 384, 48, 128, 128),
    ("pool5", "avg pool", 0, 7, 1, 0),
    ("do", "dropout", 0.4),
    ("fc1", "dense"),
)
# The book's conv_module: mx.sym.Convolution (bias on by default) => mx.sym.BatchNorm with
# MXNet's symbolic defaults => ReLU. The inception module's pool branch is a 3x3/1 max pool
# with pad 1, as in the default variant.
BOOK_UNIT = {"use_bias": True, "bn_scale": False, "bn_epsilon": 1e-3, "bn_momentum": 0.9}

VARIANTS = ("default", "book")


def _table1_layers() -> list[tuple]:
    """``STEM``, ``INCEPTION`` and ``POOL_AFTER`` as rows of ``BOOK_LAYERS``' format, up to
    the average pooling, with the default variant's names."""
    rows = list(STEM)
    for name, *widths in INCEPTION:
        rows.append((f"inception{name}", "inception", *widths))
        if name in POOL_AFTER:
            rows.append((POOL_AFTER[name], "max pool", 0, 3, 2, 1))
    return [*rows, ("global_pool", "avg pool", 0, 7, 1, 0)]


def _chain(prefix: str, *layers: nn.HybridBlock) -> nn.HybridSequential:
    chain = nn.HybridSequential(prefix=prefix)
    chain.add(*layers)
    return chain


class Inception(nn.HybridBlock):
    """One Inception module (Figure 2b of the paper): four branches concatenated along
    channels, widths the columns of Table 1: 1x1; 1x1 reduce -> 3x3; 1x1 reduce -> 5x5; 3x3
    max pool (stride 1, pad 1) -> 1x1 pool projection. Every convolution is a
    :class:`ConvBNAct` with ``unit`` as keyword arguments (``BOOK_UNIT`` for the book's)."""

    def __init__(self, in_channels: int, ch1x1: int, ch3x3reduce: int, ch3x3: int,
                 ch5x5reduce: int, ch5x5: int, pool_proj: int,
                 unit: dict[str, Any] | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj
        unit = unit or {}
        with self.name_scope():
            self.branch_1x1 = ConvBNAct(in_channels, ch1x1, 1, prefix="1x1_", **unit)
            self.branch_3x3 = _chain(
                "3x3_", ConvBNAct(in_channels, ch3x3reduce, 1, prefix="3x3_reduce_", **unit),
                ConvBNAct(ch3x3reduce, ch3x3, 3, padding=1, prefix="3x3_conv_", **unit))
            # A true 5x5 (padding 2), as in the paper: torchvision and GluonCV use 3x3 here.
            self.branch_5x5 = _chain(
                "5x5_", ConvBNAct(in_channels, ch5x5reduce, 1, prefix="5x5_reduce_", **unit),
                ConvBNAct(ch5x5reduce, ch5x5, 5, padding=2, prefix="5x5_conv_", **unit))
            self.branch_pool = _chain(
                "pool_", nn.MaxPool2D(3, strides=1, padding=1, prefix="pool_pool0_"),
                ConvBNAct(in_channels, pool_proj, 1, prefix="pool_proj_", **unit))

    def hybrid_forward(self, F, x):
        return F.concat(self.branch_1x1(x), self.branch_3x3(x), self.branch_5x5(x),
                        self.branch_pool(x), dim=1)


class GoogLeNet(Network):
    """GoogLeNet, the ImageNet Bundle's variant (Szegedy et al. 2014, Table 1).

    ``features``: the stem, the nine Inception modules, the global average pooling;
    ``output``: dropout (``dropout``, the paper's and the book's 40 %) and the classifier.
    ``variant`` is ``"default"`` (layers from ``STEM``, ``INCEPTION``, ``POOL_AFTER``) or
    ``"book"`` (``BOOK_LAYERS`` with ``BOOK_UNIT``). ``prefix`` names every parameter, fixed
    so checkpoints load by name in any process.
    """

    def __init__(self, num_classes: int = 1000, dropout: float = 0.4, in_channels: int = 3,
                 variant: str = "default", prefix: str = "googlenet_", params=None) -> None:
        super().__init__(prefix=prefix, params=params)
        if variant not in VARIANTS:
            raise ValueError(f"unknown GoogLeNet variant {variant!r}; valid: "
                             f"{', '.join(VARIANTS)}")
        self._in_channels = in_channels
        self.variant = variant
        book = variant == "book"
        unit = BOOK_UNIT if book else {}
        channels = in_channels
        with self.name_scope():
            self.features = nn.HybridSequential(prefix="features_")
            self.output = nn.HybridSequential(prefix="output_")
            for name, kind, *numbers in BOOK_LAYERS if book else _table1_layers():
                if kind == "conv":
                    filters, kernel, stride, padding = numbers
                    self.features.add(ConvBNAct(channels, filters, kernel, stride, padding,
                                                prefix=f"{name}_", **unit))
                    channels = filters
                elif kind == "max pool":
                    self.features.add(nn.MaxPool2D(*numbers[1:], prefix=f"{name}_"))
                elif kind == "inception":
                    module = Inception(channels, *numbers, unit=unit, prefix=f"{name}_")
                    self.features.add(module)
                    channels = module.out_channels
                elif kind == "avg pool":
                    # Deviation: the 7x7/1 average pooling made global. At 224 px it sees
                    # the whole 7x7 map, so it is the same there; other sizes run too (the
                    # demo's 56 px).
                    self.features.add(GlobalAvgPool(prefix=f"{name}_"))
                elif kind == "dropout":  # the table's 0.4 is the constructor's default
                    self.output.add(nn.Dropout(dropout, prefix=f"{name}_"))
                else:  # the classifier: Flatten => FullyConnected, as Dense flattens
                    self.output.add(nn.Dense(num_classes, in_units=channels,
                                             prefix=f"{name}_"))
            if not book:
                with self.output.name_scope():
                    self.output.add(nn.Dropout(dropout),
                                    nn.Dense(num_classes, in_units=channels, prefix="fc_"))
