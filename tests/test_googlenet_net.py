"""GoogLeNet against Table 1 of Szegedy et al. 2014 (its Gluon contract: test_networks.py)."""

from __future__ import annotations

import mxnet as mx
import numpy as np
import pytest

from pyimagesearch.nn import count_trainable_parameters, get_model
from pyimagesearch.nn import googlenet as module
from pyimagesearch.nn.googlenet import GoogLeNet

# Table 1 of the paper, restated here so the test does not trust the module's copy:
# name, #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj
TABLE_1 = (
    ("3a", 64, 96, 128, 16, 32, 32),
    ("3b", 128, 128, 192, 32, 96, 64),
    ("4a", 192, 96, 208, 16, 48, 64),
    ("4b", 160, 112, 224, 24, 64, 64),
    ("4c", 128, 128, 256, 24, 64, 64),
    ("4d", 112, 144, 288, 32, 64, 64),
    ("4e", 256, 160, 320, 32, 128, 128),
    ("5a", 256, 160, 320, 32, 128, 128),
    ("5b", 384, 192, 384, 48, 128, 128),
)


def expected_parameters(num_classes: int, in_channels: int = 3) -> int:
    """Conv weights (no bias) + BN gamma and beta per convolution, dense weight + bias."""

    def conv(cin: int, cout: int, k: int) -> int:
        return cin * cout * k * k + 2 * cout

    total = conv(in_channels, 64, 7) + conv(64, 64, 1) + conv(64, 192, 3)
    channels = 192
    for _, n1, r3, n3, r5, n5, proj in TABLE_1:
        total += (conv(channels, n1, 1) + conv(channels, r3, 1) + conv(r3, n3, 3)
                  + conv(channels, r5, 1) + conv(r5, n5, 5) + conv(channels, proj, 1))
        channels = n1 + n3 + n5 + proj
    assert channels == 1024  # Table 1: 5b's output
    return total + channels * num_classes + num_classes


def _net(num_classes: int = 10, **kwargs) -> GoogLeNet:
    mx.random.seed(0)
    net = GoogLeNet(num_classes=num_classes, **kwargs)
    net.initialize(mx.init.Xavier(magnitude=2))
    return net


def _images(batch: int, size: int, seed: int = 0) -> mx.nd.NDArray:
    return mx.nd.array(np.random.RandomState(seed).randn(batch, 3, size, size))


def test_table_is_the_papers():
    assert module.INCEPTION == TABLE_1
    assert list(module.POOL_AFTER) == ["3b", "4e"]


@pytest.mark.parametrize("num_classes", [1000, 10])
def test_trainable_parameters_match_table(num_classes):
    net = GoogLeNet(num_classes=num_classes)
    assert count_trainable_parameters(net) == expected_parameters(num_classes)


def test_five_by_five_branch_is_true_5x5():
    net = GoogLeNet(num_classes=10)
    shapes = {name: p.shape for name, p in net.collect_params().items()}
    for name, *_, n5, _ in TABLE_1:
        assert shapes[f"googlenet_inception{name}_5x5_conv_conv0_weight"][0] == n5
        assert shapes[f"googlenet_inception{name}_5x5_conv_conv0_weight"][2:] == (5, 5)


@pytest.mark.parametrize("size", [32, 64, 224])
def test_forward_shape_any_size_from_32(size):
    net = _net(num_classes=10)
    out = net(_images(1, size))
    assert out.shape == (1, 10)
    assert np.isfinite(out.asnumpy()).all()


def test_parameter_names_are_deterministic():
    first, second = GoogLeNet(num_classes=10), GoogLeNet(num_classes=10)
    assert list(first.collect_params()) == list(second.collect_params())
    assert all(name.startswith("googlenet_") for name in first.collect_params())


def test_registry_and_describe():
    net = get_model("googlenet", num_classes=10)
    assert isinstance(net, GoogLeNet)
    text = net.describe(224)
    assert f"{expected_parameters(10):,}" in text
    assert "inception5b" in text and "1x1024x7x7" in text


# --- the book's variant: MxGoogLeNet's parametrization -----------------------------------

def _book_table_as_chapter() -> tuple:
    """``BOOK_LAYERS`` in the form of ``tests/book_symbol.CHAPTER_TABLE``."""
    rows = []
    for name, kind, *numbers in module.BOOK_LAYERS:
        if kind == "conv":
            rows.append((name, "conv", tuple(numbers)))
        elif kind.endswith("pool"):
            rows.append((name, kind.split()[0], tuple(numbers[1:])))
        elif kind in ("inception", "dropout"):
            rows.append((name, kind, tuple(numbers)))
    return tuple(rows)


def test_book_table_is_the_chapters_and_the_papers():
    from book_symbol import CHAPTER_TABLE

    assert _book_table_as_chapter() == CHAPTER_TABLE
    book_inceptions = [(n[2:], *w) for n, kind, *w in module.BOOK_LAYERS if kind == "inception"]
    assert tuple(book_inceptions) == TABLE_1
    book_stem = [tuple(row[2:]) for row in module.BOOK_LAYERS[:5]]
    assert book_stem == [tuple(row[2:]) for row in module.STEM]
    assert module.BOOK_LAYERS[-2] == ("do", "dropout", 0.4)
    assert GoogLeNet.__init__.__defaults__[1] == 0.4  # dropout's default is the book's rate


def test_book_variant_has_the_symbolic_defaults():
    """Conv bias on; BatchNorm gamma fixed and untrained, eps 1e-3, momentum 0.9."""
    import json

    net = GoogLeNet(num_classes=10, variant="book")
    graph = json.loads(net(mx.sym.var("data")).tojson())
    convs = [n for n in graph["nodes"] if n["op"] == "Convolution"]
    norms = [n for n in graph["nodes"] if n["op"] == "BatchNorm"]
    assert len(convs) == len(norms) == 3 + 9 * 6
    assert all(n["attrs"]["no_bias"] == "False" for n in convs)
    assert all(n["attrs"]["fix_gamma"] == "True" and float(n["attrs"]["eps"]) == 1e-3
               and float(n["attrs"]["momentum"]) == 0.9 for n in norms)
    params = net.collect_params()
    assert all(p.grad_req == "null" for name, p in params.items() if name.endswith("gamma"))
    default = GoogLeNet(num_classes=10)
    default_graph = json.loads(default(mx.sym.var("data")).tojson())
    assert all(n["attrs"]["no_bias"] == "True" for n in default_graph["nodes"]
               if n["op"] == "Convolution")


def test_book_variant_parameter_counts():
    # Trainable: conv weights + bias (in place of gamma) + beta, dense: the same as default.
    for classes in (1000, 10):
        assert count_trainable_parameters(GoogLeNet(num_classes=classes, variant="book")) \
            == expected_parameters(classes)
    # Stored: 57 convolutions x (weight, bias, gamma, beta, mean, var) + dense weight and bias.
    assert len(list(GoogLeNet(num_classes=10, variant="book").collect_params())) == 57 * 6 + 2


def test_book_variant_runs_any_size():
    net = _net(num_classes=10, variant="book")
    out = net(_images(2, 56, seed=2)).asnumpy()
    assert out.shape == (2, 10) and np.isfinite(out).all()
    assert "in5b" in net.describe(224) and "1x1024x1x1" in net.describe(224)


def test_unknown_variant_names_the_valid_ones():
    with pytest.raises(ValueError, match="default, book"):
        GoogLeNet(variant="caffe")
