"""Inception-ResNet-v2 against the block tables of the paper and Google's released graph."""

from __future__ import annotations

import mxnet as mx
import numpy as np
import pytest

from pyimagesearch.nn import count_trainable_parameters, get_model
from pyimagesearch.nn import inception_resnet_v2 as module
from pyimagesearch.nn.inception_resnet_v2 import (
    PAPER_BLOCKS,
    RELEASED_BLOCKS,
    InceptionResNetBlock,
    InceptionResNetV2,
)

# The released layout, restated here as (cout, kh, kw) per convolution, pools as None:
# one list per branch. The test does its own arithmetic from these.
STEM = [(32, 3, 3), (32, 3, 3), (64, 3, 3), None, (80, 1, 1), (192, 3, 3), None]
MIXED_5B = [[(96, 1, 1)], [(48, 1, 1), (64, 5, 5)], [(64, 1, 1), (96, 3, 3), (96, 3, 3)],
            [None, (64, 1, 1)]]
BLOCK35 = [[(32, 1, 1)], [(32, 1, 1), (32, 3, 3)], [(32, 1, 1), (48, 3, 3), (64, 3, 3)]]
REDUCTION_A = [[(384, 3, 3)], [(256, 1, 1), (256, 3, 3), (384, 3, 3)], [None]]  # k l m n
BLOCK17 = [[(192, 1, 1)], [(128, 1, 1), (160, 1, 7), (192, 7, 1)]]
REDUCTION_B = [[(256, 1, 1), (384, 3, 3)], [(256, 1, 1), (288, 3, 3)],
               [(256, 1, 1), (288, 3, 3), (320, 3, 3)], [None]]
BLOCK8 = [[(192, 1, 1)], [(192, 1, 1), (224, 1, 3), (256, 3, 1)]]
FINAL = 1536
KERAS_TRAINABLE = 55_813_192  # keras.applications.InceptionResNetV2(): trainable params


def _chain(cin: int, chain: list) -> tuple[int, int]:
    """Parameters and output channels of one branch: conv weights + BN beta (gamma fixed)."""
    params = 0
    for layer in chain:
        if layer is not None:
            cout, kh, kw = layer
            params, cin = params + cin * cout * kh * kw + cout, cout
    return params, cin


def _mixed(cin: int, branches: list) -> tuple[int, int]:
    results = [_chain(cin, branch) for branch in branches]
    return sum(p for p, _ in results), sum(c for _, c in results)


def _residual(cin: int, branches: list) -> int:
    params, width = _mixed(cin, branches)
    return params + width * cin + cin  # the 1x1 "linear" conv back to cin, with bias


def expected_parameters(blocks: tuple[int, int, int], num_classes: int = 1000) -> int:
    total, channels = _chain(3, STEM)
    for table in (MIXED_5B,):
        params, channels = _mixed(channels, table)
        total += params
    assert channels == 320
    total += blocks[0] * _residual(channels, BLOCK35)
    params, channels = _mixed(channels, REDUCTION_A)
    total += params
    assert channels == 320 + 384 + 384 == 1088
    total += blocks[1] * _residual(channels, BLOCK17)
    params, channels = _mixed(channels, REDUCTION_B)
    total += params
    assert channels == 1088 + 384 + 288 + 320 == 2080
    total += blocks[2] * _residual(channels, BLOCK8)
    total += channels * FINAL + FINAL  # conv2d_7b + its BN beta
    return total + FINAL * num_classes + num_classes


def _as_restated(table: tuple) -> list:
    """The module's table entries in this test's (cout, kh, kw) / None form."""
    out = []
    for branch in table:
        chain = []
        for spec in branch:
            if isinstance(spec[0], str):
                chain.append(None)
            else:
                k = spec[1] if isinstance(spec[1], tuple) else (spec[1], spec[1])
                chain.append((spec[0], *k))
        out.append(chain)
    return out


def _net(blocks=(1, 1, 2), num_classes=10, **kwargs) -> InceptionResNetV2:
    mx.random.seed(0)
    net = InceptionResNetV2(num_classes=num_classes, blocks=blocks, **kwargs)
    net.initialize(mx.init.Xavier(magnitude=2))
    return net


def _images(batch: int, size: int, seed: int = 0) -> mx.nd.NDArray:
    return mx.nd.array(np.random.RandomState(seed).randn(batch, 3, size, size))


def test_tables_are_the_released_layout():
    assert _as_restated((module.STEM,)) == [STEM]
    assert _as_restated(module.MIXED_5B) == MIXED_5B
    assert _as_restated(module.BLOCK35) == BLOCK35
    assert _as_restated(module.REDUCTION_A) == REDUCTION_A
    assert _as_restated(module.BLOCK17) == BLOCK17
    assert _as_restated(module.REDUCTION_B) == REDUCTION_B
    assert _as_restated(module.BLOCK8) == BLOCK8
    assert module.FINAL_CHANNELS == FINAL
    assert (PAPER_BLOCKS, RELEASED_BLOCKS) == ((5, 10, 5), (10, 20, 10))


@pytest.mark.parametrize("blocks", [RELEASED_BLOCKS, PAPER_BLOCKS, (1, 1, 1)])
def test_trainable_parameters_match_tables(blocks):
    net = InceptionResNetV2(blocks=blocks)
    assert count_trainable_parameters(net) == expected_parameters(blocks)


def test_released_preset_matches_googles_count():
    assert expected_parameters(RELEASED_BLOCKS) == KERAS_TRAINABLE
    assert expected_parameters(PAPER_BLOCKS) == 33_764_632


def test_batch_norm_has_no_trained_scale():
    net = InceptionResNetV2(blocks=(1, 1, 1), num_classes=10)
    gammas = [p for n, p in net.collect_params().items() if n.endswith("_gamma")]
    assert gammas and all(p.grad_req == "null" for p in gammas)


def test_released_preset_at_299():
    net = _net(blocks=RELEASED_BLOCKS, num_classes=1000)
    out = net(_images(1, 299))
    assert out.shape == (1, 1000)
    assert np.isfinite(out.asnumpy()).all()


def test_smallest_input_is_75():
    net = _net()
    assert net(_images(1, 75)).shape == (1, 10)
    assert "1x2080x1x1" in net.describe(75)
    with pytest.raises(mx.base.MXNetError):
        net.describe(74)


def _block(scale: float, activation: bool = True) -> InceptionResNetBlock:
    mx.random.seed(0)
    block = InceptionResNetBlock(32, module.BLOCK35, scale, activation, prefix="block35_")
    block.initialize(mx.init.Xavier(magnitude=2))
    return block


def test_residual_scale_is_stored_and_used():
    x = mx.nd.array(np.random.RandomState(2).randn(2, 32, 9, 9))
    identity = _block(0.0)
    assert identity.scale == 0.0
    np.testing.assert_allclose(identity(x).asnumpy(), np.maximum(x.asnumpy(), 0), atol=1e-6)
    scaled = _block(0.17)
    # The branch's 1x1 convolution with the stored (unscaled) weights; the block scales it.
    residual = mx.nd.Convolution(scaled.mixed(x), scaled.up.weight.data(), scaled.up.bias.data(),
                                 kernel=(1, 1), num_filter=32).asnumpy()
    assert np.abs(residual).max() > 0
    np.testing.assert_allclose(scaled.up(scaled.mixed(x)).asnumpy(), 0.17 * residual,
                               rtol=1e-5, atol=1e-6)
    expected = np.maximum(x.asnumpy() + 0.17 * residual, 0)
    np.testing.assert_allclose(scaled(x).asnumpy(), expected, rtol=1e-5, atol=1e-5)
    assert sorted(scaled.up.collect_params()) == ["block35_up_bias", "block35_up_weight"]
    linear = _block(0.0, activation=False)
    np.testing.assert_allclose(linear(x).asnumpy(), x.asnumpy(), atol=1e-6)


def test_network_blocks_carry_their_scales():
    net = InceptionResNetV2(blocks=(2, 3, 2), scales=(0.17, 0.1, 0.2), num_classes=10)
    blocks = [b for b in net.features[:] if isinstance(b, InceptionResNetBlock)]
    names = [b.name.replace("inception_resnet_v2_", "") for b in blocks]
    assert names == ["block35_1", "block35_2", "block17_1", "block17_2", "block17_3",
                     "block8_1", "block8_2"]
    assert [b.scale for b in blocks] == [0.17, 0.17, 0.1, 0.1, 0.1, 0.2, 1.0]
    assert [b.activation for b in blocks] == [True] * 6 + [False]


@pytest.mark.parametrize("blocks", [(0, 1, 1), (1, 1), (1, 1, 1.5)])
def test_bad_block_counts_are_refused(blocks):
    with pytest.raises(ValueError, match="blocks"):
        InceptionResNetV2(blocks=blocks)


def test_registry_and_describe():
    net = get_model("inception_resnet_v2", blocks=PAPER_BLOCKS, num_classes=10)
    text = net.describe()
    assert f"{expected_parameters(PAPER_BLOCKS, 10):,}" in text
    assert "mixed_7a" in text and "1x2080x8x8" in text


# --- the paper's layout, as the Torch reproduction built it -------------------------------
# Restated from Figure 3 (stem), 16, 7 (k, l, m, n = 256, 256, 384, 384), 17, 18, 19 of
# arXiv 1602.07261, with lim0606/torch-inception-resnet-v2's corrections: Inception-ResNet-B
# closes at 1152 (the figure: 1154) and Reduction-B's 288 / 288 -> 320 become 256 / 256 ->
# 256, so Inception-ResNet-C is the figure's 2048. Torch's branch order.
PAPER_STEM = [(32, 3, 3), (32, 3, 3), (64, 3, 3)]
PAPER_STEM_MIXED = [
    [[None], [(96, 3, 3)]],
    [[(64, 1, 1), (96, 3, 3)], [(64, 1, 1), (64, 7, 1), (64, 1, 7), (96, 3, 3)]],
    [[(192, 3, 3)], [None]],
]
PAPER_REDUCTION_A = [[None], [(384, 3, 3)], [(256, 1, 1), (256, 3, 3), (384, 3, 3)]]
PAPER_REDUCTION_B = [[None], [(256, 1, 1), (384, 3, 3)], [(256, 1, 1), (256, 3, 3)],
                     [(256, 1, 1), (256, 3, 3), (256, 3, 3)]]


def _paper_chain(cin: int, chain: list) -> tuple[int, int]:
    """Conv weights (no bias) + BN gamma and beta (both trained, as in Torch)."""
    params = 0
    for layer in chain:
        if layer is not None:
            cout, kh, kw = layer
            params, cin = params + cin * cout * kh * kw + 2 * cout, cout
    return params, cin


def _paper_mixed(cin: int, branches: list) -> tuple[int, int]:
    results = [_paper_chain(cin, branch) for branch in branches]
    return sum(p for p, _ in results), sum(c for _, c in results)


def _paper_residual(cin: int, branches: list) -> int:
    params, width = _paper_mixed(cin, branches)
    return params + width * cin + 2 * cin  # the linear 1x1 + its BN, no bias


def expected_paper_parameters(blocks: tuple[int, int, int], num_classes: int = 1000) -> int:
    total, channels = _paper_chain(3, PAPER_STEM)
    for table in PAPER_STEM_MIXED:
        params, channels = _paper_mixed(channels, table)
        total += params
    assert channels == 384  # Figure 3
    total += blocks[0] * _paper_residual(channels, BLOCK35)
    params, channels = _paper_mixed(channels, PAPER_REDUCTION_A)
    total += params
    assert channels == 384 + 384 + 384 == 1152  # Figure 17 prints 1154
    total += blocks[1] * _paper_residual(channels, BLOCK17)
    params, channels = _paper_mixed(channels, PAPER_REDUCTION_B)
    total += params
    assert channels == 2048  # Figure 19; Figure 18's widths would give 2144
    total += blocks[2] * _paper_residual(channels, BLOCK8)
    return total + channels * num_classes + num_classes


def test_paper_tables_are_figure_3_to_19_with_the_torch_corrections():
    assert _as_restated((module.PAPER_STEM,)) == [PAPER_STEM]
    assert [_as_restated(table) for _, table in module.PAPER_STEM_MIXED] == PAPER_STEM_MIXED
    assert _as_restated(module.PAPER_BLOCK35) == BLOCK35
    assert _as_restated(module.PAPER_REDUCTION_A) == PAPER_REDUCTION_A
    assert _as_restated(module.PAPER_BLOCK17) == BLOCK17
    assert _as_restated(module.PAPER_REDUCTION_B) == PAPER_REDUCTION_B
    assert _as_restated(module.PAPER_BLOCK8) == BLOCK8
    assert module.PAPER_SCALES == (0.1, 0.1, 0.1)


@pytest.mark.parametrize("blocks", [PAPER_BLOCKS, (1, 1, 1)])
def test_paper_layout_parameters_match_tables(blocks):
    net = InceptionResNetV2(layout="paper", blocks=blocks)
    assert count_trainable_parameters(net) == expected_paper_parameters(blocks)


def test_paper_layout_count_pinned_and_defaults():
    assert expected_paper_parameters(PAPER_BLOCKS) == 31_574_440
    assert count_trainable_parameters(InceptionResNetV2(layout="paper")) == 31_574_440
    net = InceptionResNetV2(layout="paper", num_classes=10)
    blocks = [b for b in net.features[:] if isinstance(b, InceptionResNetBlock)]
    assert len(blocks) == 5 + 10 + 5
    assert all(b.scale == 0.1 and b.activation for b in blocks)
    text = net.describe(299)
    for shape in ("1x384x35x35", "1x1152x17x17", "1x2048x8x8", "1x2048x1x1"):
        assert shape in text


def test_paper_layout_batch_norm_is_torchs():
    import json

    net = InceptionResNetV2(layout="paper", blocks=(1, 1, 1), num_classes=10)
    gammas = [p for n, p in net.collect_params().items() if n.endswith("_gamma")]
    assert gammas and all(p.grad_req == "write" for p in gammas)
    graph = json.loads(net(mx.sym.var("data")).tojson())
    assert all(float(n["attrs"]["eps"]) == 1e-5 for n in graph["nodes"] if n["op"] == "BatchNorm")
    assert all(n["attrs"]["no_bias"] == "True" for n in graph["nodes"] if n["op"] == "Convolution")


def test_paper_layout_scales_after_the_linear_bn():
    mx.random.seed(0)
    block = InceptionResNetBlock(32, module.PAPER_BLOCK35, 0.1, unit=module.PAPER_UNIT,
                                 prefix="block35_")
    block.initialize(mx.init.Xavier(magnitude=2))
    x = mx.nd.array(np.random.RandomState(3).randn(2, 32, 9, 9))
    residual = block.up(block.mixed(x)).asnumpy()  # conv + BN, unscaled
    assert np.abs(residual).max() > 0
    assert sorted(n.split("_", 2)[-1] for n in block.up.collect_params()) == [
        "batchnorm0_beta", "batchnorm0_gamma", "batchnorm0_running_mean",
        "batchnorm0_running_var", "conv0_weight"]
    np.testing.assert_allclose(block(x).asnumpy(), np.maximum(x.asnumpy() + 0.1 * residual, 0),
                               rtol=1e-5, atol=1e-5)


def test_paper_layout_refuses_final_scale_and_unknown_layouts():
    with pytest.raises(ValueError, match="final_scale belongs to the released layout"):
        InceptionResNetV2(layout="paper", final_scale=1.0)
    with pytest.raises(ValueError, match="valid: released, paper"):
        InceptionResNetV2(layout="torch")
