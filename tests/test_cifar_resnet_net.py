"""The CIFAR-10 ResNets against Section 4.2 / Table 6 of He et al. 2016."""

from __future__ import annotations

import mxnet as mx
import numpy as np
import pytest

from pyimagesearch.nn import count_trainable_parameters, get_model
from pyimagesearch.nn.cifar_resnet import BasicBlock, CifarResNet, ZeroPadShortcut
from pyimagesearch.nn.layers import ConvBNAct

# Table 6 of the paper: depth -> "#params" as printed (millions), option A shortcuts.
PAPER_PARAMS = {20: "0.27", 32: "0.46", 44: "0.66", 56: "0.85", 110: "1.7"}
WIDTHS = (16, 32, 64)  # Section 4.2: filters of the three stages


def expected_parameters(depth: int, shortcut: str = "A", num_classes: int = 10) -> int:
    """3x3 conv weights (no bias) + BN gamma and beta for each of the depth - 1 conv layers,
    the option-B projections (1x1 conv + BN) where the width changes, and the dense layer."""
    n = (depth - 2) // 6

    def conv(cin: int, cout: int, k: int = 3) -> int:
        return cin * cout * k * k + 2 * cout

    total, channels = conv(3, 16), 16
    for width in WIDTHS:
        for _ in range(n):
            total += conv(channels, width) + conv(width, width)
            if shortcut == "B" and channels != width:
                total += conv(channels, width, 1)
            channels = width
    return total + channels * num_classes + num_classes


def _images(batch: int, size: int = 32, channels: int = 3, seed: int = 0) -> mx.nd.NDArray:
    return mx.nd.array(np.random.RandomState(seed).randn(batch, channels, size, size))


def _net(**kwargs) -> CifarResNet:
    mx.random.seed(0)
    net = CifarResNet(**kwargs)
    net.initialize(mx.init.Xavier(magnitude=2))
    return net


@pytest.mark.parametrize("depth", sorted(PAPER_PARAMS))
def test_parameter_counts_match_paper_and_arithmetic(depth):
    count = count_trainable_parameters(CifarResNet(depth=depth))
    assert count == expected_parameters(depth)
    printed = PAPER_PARAMS[depth]
    decimals = len(printed.split(".")[1])
    assert f"{count / 1e6:.{decimals}f}" == printed


@pytest.mark.parametrize("depth", sorted(PAPER_PARAMS))
def test_option_b_adds_exactly_the_two_projections(depth):
    a = count_trainable_parameters(CifarResNet(depth=depth, shortcut="A"))
    b = count_trainable_parameters(CifarResNet(depth=depth, shortcut="B"))
    assert b == expected_parameters(depth, "B")
    assert b - a == (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)


@pytest.mark.parametrize("depth", [20, 56, 110])
def test_output_shape_and_stage_maps_at_32(depth):
    net = _net(depth=depth)
    out = net(_images(1))
    assert out.shape == (1, 10)
    assert np.isfinite(out.asnumpy()).all()
    text = net.describe(32)
    for shape in ("1x16x32x32", "1x32x16x16", "1x64x8x8"):
        assert shape in text


def test_option_a_subsamples_and_pads_with_zeros():
    x = _images(2, 8, channels=4)
    shortcut = ZeroPadShortcut(4, 4, 2)
    assert not list(shortcut.collect_params().keys())
    out = shortcut(x).asnumpy()
    assert out.shape == (2, 8, 4, 4)
    np.testing.assert_array_equal(out[:, :4], x.asnumpy()[:, :, ::2, ::2])
    np.testing.assert_array_equal(out[:, 4:], 0)


@pytest.mark.parametrize("variant, bn_before, bn_after, relu_after", [
    ("original", True, False, True),
    ("bn_after_add", False, True, True),
    ("no_relu_bn_before", True, False, False),
    ("no_relu_bn_after", False, True, False),
])
def test_variant_structure_and_sign(variant, bn_before, bn_after, relu_after):
    block = BasicBlock(16, 16, variant=variant, prefix="block_")
    first, second = block.residual[0], block.residual[1]
    assert isinstance(first, ConvBNAct) and isinstance(first[2], mx.gluon.nn.Activation)
    assert isinstance(second, ConvBNAct) == bn_before
    if bn_before:
        assert len(second) == 2  # conv, BN: no activation before the addition
    after = [type(layer).__name__ for layer in block.after_add]
    assert after == ["BatchNorm"] * bn_after + ["Activation"] * relu_after
    assert block.shortcut is None

    mx.random.seed(0)
    block.initialize(mx.init.Xavier(magnitude=2))
    out = block(_images(2, 8, channels=16)).asnumpy()
    if relu_after:
        assert out.min() >= 0
    else:
        assert out.min() < 0


@pytest.mark.parametrize("shortcut, kind", [("A", ZeroPadShortcut), ("B", ConvBNAct)])
def test_shortcut_only_where_shape_changes(shortcut, kind):
    net = CifarResNet(depth=20, shortcut=shortcut)
    stages = [net.features[i] for i in (1, 2, 3)]
    for s, stage in enumerate(stages):
        for b in range(len(stage)):
            expected = kind if s > 0 and b == 0 else type(None)
            assert isinstance(stage[b].shortcut, expected)


@pytest.mark.parametrize("depth", [18, 21, 2, 0, "20"])
def test_depth_must_be_6n_plus_2(depth):
    with pytest.raises(ValueError, match="6n\\+2"):
        CifarResNet(depth=depth)


def test_bad_variant_and_shortcut_list_valid_values():
    with pytest.raises(ValueError, match="original, bn_after_add, no_relu_bn_before"):
        CifarResNet(variant="preact")
    with pytest.raises(ValueError, match="A, B"):
        CifarResNet(shortcut="C")


def test_registry_default_is_resnet20_option_a():
    net = get_model("cifar_resnet")
    assert count_trainable_parameters(net) == expected_parameters(20) == 269_722
    assert all(name.startswith("cifar_resnet_") for name in net.collect_params())
