"""GoogLeNet (Inception v1) as the ImageNet Bundle builds it.

Szegedy et al., "Going Deeper with Convolutions", CVPR 2015 (arXiv:1409.4842), Table 1.
The filter counts are the paper's; the book's changes, all written down at the line and in
``docs/networks.md``:

* every convolution is CONV => BN => RELU (:class:`~pyimagesearch.nn.layers.ConvBNAct`);
  the paper has no batch normalization, and its two local response normalizations in the
  stem are left out (BN takes their place);
* the two auxiliary classifiers (on 4a and 4d) are dropped;
* the final 7x7 average pooling is a global average pooling, and the 3x3/2 max poolings are
  padded by 1, so any input from 32 px up works (at 224 px the sizes equal the paper's).

The "5x5" branch really is 5x5 (padding 2): torchvision and GluonCV build it with 3x3
kernels; this module does not.

Two variants (``variant``), the same layers with different units:

``"default"``
    CONV (no bias) => BN (trained gamma, epsilon 1e-5) => RELU, the usual Gluon unit.
``"book"``
    The chapter's ``MxGoogLeNet`` exactly (``BOOK_LAYERS``): ``mx.sym.Convolution`` with its
    default bias, ``mx.sym.BatchNorm`` with its defaults (gamma fixed at 1, epsilon 1e-3,
    momentum 0.9), RELU; so a checkpoint the book's symbolic code wrote loads into it (see
    :mod:`pyimagesearch.run.symbolic_import`) and computes the same logits.
"""

from __future__ import annotations

from typing import Any

from mxnet.gluon import nn

from pyimagesearch.nn.layers import ConvBNAct, GlobalAvgPool, summarize

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

# Table 1, the Inception modules, in the paper's column order.
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


class Inception(nn.HybridBlock):
    """One Inception module (Figure 2b of the paper), every convolution CONV => BN => RELU.

    Four branches concatenated along channels: 1x1; 1x1 reduce -> 3x3; 1x1 reduce -> 5x5;
    3x3 max pool (stride 1, pad 1) -> 1x1 pool projection.

    Parameters
    ----------
    in_channels : int
        Channels of the input.
    ch1x1, ch3x3reduce, ch3x3, ch5x5reduce, ch5x5, pool_proj : int
        The columns of Table 1.
    unit : dict, optional
        Keyword arguments of every :class:`ConvBNAct` (``BOOK_UNIT`` for the book's).
    """

    def __init__(self, in_channels: int, ch1x1: int, ch3x3reduce: int, ch3x3: int,
                 ch5x5reduce: int, ch5x5: int, pool_proj: int,
                 unit: dict[str, Any] | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.out_channels = ch1x1 + ch3x3 + ch5x5 + pool_proj
        unit = unit or {}
        with self.name_scope():
            self.branch_1x1 = ConvBNAct(in_channels, ch1x1, 1, prefix="1x1_", **unit)
            self.branch_3x3 = nn.HybridSequential(prefix="3x3_")
            with self.branch_3x3.name_scope():
                self.branch_3x3.add(
                    ConvBNAct(in_channels, ch3x3reduce, 1, prefix="reduce_", **unit),
                    ConvBNAct(ch3x3reduce, ch3x3, 3, padding=1, prefix="conv_", **unit))
            self.branch_5x5 = nn.HybridSequential(prefix="5x5_")
            with self.branch_5x5.name_scope():
                self.branch_5x5.add(
                    ConvBNAct(in_channels, ch5x5reduce, 1, prefix="reduce_", **unit),
                    ConvBNAct(ch5x5reduce, ch5x5, 5, padding=2, prefix="conv_", **unit))
            self.branch_pool = nn.HybridSequential(prefix="pool_")
            with self.branch_pool.name_scope():
                self.branch_pool.add(nn.MaxPool2D(3, strides=1, padding=1),
                                     ConvBNAct(in_channels, pool_proj, 1, prefix="proj_",
                                               **unit))

    def hybrid_forward(self, F, x):
        return F.concat(self.branch_1x1(x), self.branch_3x3(x), self.branch_5x5(x),
                        self.branch_pool(x), dim=1)


class GoogLeNet(nn.HybridBlock):
    """GoogLeNet, the ImageNet Bundle's variant (Szegedy et al. 2014, Table 1).

    ``features`` holds the stem, the nine Inception modules and the global average pooling;
    ``output`` holds dropout and the classifier. Output: ``(batch, num_classes)`` logits.

    Parameters
    ----------
    num_classes : int
        Width of the classifier.
    dropout : float
        Dropout rate before the classifier (the paper's 40 %, also the book's).
    in_channels : int
        Channels of the input images.
    variant : str
        ``"default"`` (CONV without bias => BN => RELU) or ``"book"``: the chapter's
        symbolic ``MxGoogLeNet``, built from ``BOOK_LAYERS`` with ``BOOK_UNIT``.
    prefix : str
        Name prefix of every parameter; fixed so checkpoints load by name in any process.
    """

    def __init__(self, num_classes: int = 1000, dropout: float = 0.4, in_channels: int = 3,
                 variant: str = "default", prefix: str = "googlenet_", params=None) -> None:
        super().__init__(prefix=prefix, params=params)
        if variant not in VARIANTS:
            raise ValueError(f"unknown GoogLeNet variant {variant!r}; valid: "
                             f"{', '.join(VARIANTS)}")
        self._in_channels = in_channels
        self.variant = variant
        if variant == "book":
            self._build_book(num_classes, dropout, in_channels)
            return
        channels = in_channels
        with self.name_scope():
            self.features = nn.HybridSequential(prefix="features_")
            for name, kind, filters, kernel, stride, padding in STEM:
                if kind == "conv":
                    self.features.add(ConvBNAct(channels, filters, kernel, stride, padding,
                                                prefix=f"{name}_"))
                    channels = filters
                else:
                    self.features.add(nn.MaxPool2D(kernel, stride, padding, prefix=f"{name}_"))
            for name, *widths in INCEPTION:
                module = Inception(channels, *widths, prefix=f"inception{name}_")
                self.features.add(module)
                channels = module.out_channels
                if name in POOL_AFTER:
                    self.features.add(nn.MaxPool2D(3, 2, 1, prefix=f"{POOL_AFTER[name]}_"))
            # Deviation: the paper's 7x7/1 average pooling, made global for any input size.
            self.features.add(GlobalAvgPool(prefix="global_pool_"))
            self.output = nn.HybridSequential(prefix="output_")
            with self.output.name_scope():
                self.output.add(nn.Dropout(dropout),
                                nn.Dense(num_classes, in_units=channels, prefix="fc_"))

    def _build_book(self, num_classes: int, dropout: float, channels: int) -> None:
        """The layers of ``BOOK_LAYERS``, each convolution a ``BOOK_UNIT``."""
        with self.name_scope():
            self.features = nn.HybridSequential(prefix="features_")
            self.output = nn.HybridSequential(prefix="output_")
            for name, kind, *numbers in BOOK_LAYERS:
                if kind == "conv":
                    filters, kernel, stride, padding = numbers
                    self.features.add(ConvBNAct(channels, filters, kernel, stride, padding,
                                                prefix=f"{name}_", **BOOK_UNIT))
                    channels = filters
                elif kind == "max pool":
                    self.features.add(nn.MaxPool2D(*numbers[1:], prefix=f"{name}_"))
                elif kind == "inception":
                    module = Inception(channels, *numbers, unit=BOOK_UNIT, prefix=f"{name}_")
                    self.features.add(module)
                    channels = module.out_channels
                elif kind == "avg pool":
                    # The book's 7x7/1 average pooling sees the whole 7x7 map at its 224 px
                    # input, so it is this global pooling there; global, the variant also
                    # runs at other sizes (the demo's 56 px).
                    self.features.add(GlobalAvgPool(prefix=f"{name}_"))
                elif kind == "dropout":  # the table's 0.4 is the constructor's default
                    self.output.add(nn.Dropout(dropout, prefix=f"{name}_"))
                else:  # the classifier: Flatten => FullyConnected, as Dense flattens
                    self.output.add(nn.Dense(num_classes, in_units=channels,
                                             prefix=f"{name}_"))

    def hybrid_forward(self, F, x):
        return self.output(self.features(x))

    def describe(self, input_size: int = 224) -> str:
        """Stage-by-stage output shapes and parameter counts, for the training log."""
        return summarize(self, (1, self._in_channels, input_size, input_size))
