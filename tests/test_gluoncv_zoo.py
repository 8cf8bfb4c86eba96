"""GluonCV's model zoo by name: built, trained, tested and exported through the project's path."""

from __future__ import annotations

from pathlib import Path

import mxnet as mx
import numpy as np
import pytest
from conftest import config_with
from model_use_fixtures import FAST, train_run

from pyimagesearch.config import load_config
from pyimagesearch.evaluation.evaluate import evaluate_checkpoint
from pyimagesearch.nn import complete_shapes, count_trainable_parameters, get_model
from pyimagesearch.settings import ConfigError
from pyimagesearch.training.health import last_feature_map, parse_health_lines


def _built(name: str, classes: int = 4, size: int = 28) -> mx.gluon.HybridBlock:
    net = get_model(f"gluoncv:{name}", num_classes=classes)
    complete_shapes(net, (1, 3, size, size))
    mx.random.seed(0)
    net.initialize(mx.init.Xavier())
    return net


@pytest.mark.parametrize("name, trunk_channels", [("resnet18_v1b", 512), ("mobilenet0.25", 256)])
def test_zoo_network_has_a_fixed_prefix_and_a_feature_trunk(name, trunk_channels):
    net = _built(name)
    x = mx.nd.array(np.random.RandomState(0).randn(2, 3, 28, 28))
    assert net(x).shape == (2, 4)
    prefix = "gluoncv_" + name.replace(".", "_") + "_"
    assert all(p.startswith(prefix) for p in net.collect_params())
    # A second instance in the same process gets the same names (GluonCV's own count up).
    assert list(_built(name).collect_params()) == list(net.collect_params())
    trunk = last_feature_map(net)
    assert trunk is not None
    assert trunk(x).shape[:2] == (2, trunk_channels)
    # The trunk is the network's own layers: global pooling of it feeds the classifier.
    assert count_trainable_parameters(net) > 0 and all(
        p.shape and all(p.shape) for p in net.collect_params().values())


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(ConfigError, match=r"unknown GluonCV model 'resnet18_v1x'; close names: "
                                          r"gluoncv:resnet18_v1, gluoncv:resnet18_v1b"):
        get_model("gluoncv:resnet18_v1x", num_classes=4)
    with pytest.raises(ConfigError, match=r"known models: cifar_resnet, googlenet, "
                                          r"inception_resnet_v2, or gluoncv:<name>"):
        get_model("resnet18", num_classes=4)
    with pytest.raises(ConfigError, match="may not set 'pretrained'"):
        get_model("gluoncv:resnet18_v1b", num_classes=4, pretrained=True)


@pytest.fixture(scope="module")
def zoo_run(tiny_dataset_config, tmp_path_factory) -> tuple[Path, Path]:
    """resnet18_v1b trained one epoch on the tiny dataset, the health monitor every update."""
    folder = tmp_path_factory.mktemp("zoo_run")
    config = config_with(tiny_dataset_config, folder / "config.py",
                         **{**FAST, "MODEL": "gluoncv:resnet18_v1b",
                            "HEALTH": {"interval": 1, "dead_fraction": 0.99, "patience": 3}})
    return config, train_run(config, folder / "run", "zoo", end_epoch=1)


def test_a_misspelt_model_param_is_refused_naming_the_known_ones():
    """The zoo's constructors take **kwargs and ignore what they do not know."""
    with pytest.raises(ConfigError) as info:
        get_model("gluoncv:resnet18_v1b", num_classes=4, dep_stem=True)
    message = str(info.value)
    assert "MODEL_PARAMS key 'dep_stem' is not an argument" in message
    assert "did you mean 'deep_stem'?" in message
    net = get_model("gluoncv:resnet18_v1", num_classes=4, thumbnail=True)
    assert net.net.features[0]._kwargs["kernel"] == (3, 3)  # the CIFAR-sized stem
    get_model("gluoncv:resnet18_v1b", num_classes=4, deep_stem=True, final_drop=0.1)


def test_zoo_network_trains_with_the_health_monitor(zoo_run):
    _, run = zoo_run
    log = parse_health_lines(run / "training_0.log")
    assert log.checks
    assert all(0.0 <= check.zero_fraction <= 1.0 for check in log.checks)  # not NaN
    text = (run / "training_0.log").read_text()
    assert "Network: gluoncv:resnet18_v1b, 11,1" in text  # the complete count, 11.18M


def test_zoo_network_tests_and_exports(zoo_run, tmp_path, capsys):
    pytest.importorskip("onnx", reason="onnx==1.13.1 belongs in requirements.txt")
    from pyimagesearch.commands.export_onnx import main as export_main

    config, run = zoo_run
    result = evaluate_checkpoint(load_config(str(config)), str(run), "zoo", 1)
    assert result["images"] == 8 and 0.0 <= result["accuracy"] <= 1.0
    output = tmp_path / "zoo.onnx"
    assert export_main(["--checkpoints", str(run), "--prefix", "zoo", "--epoch", "1",
                        "--runtime", "reference", "--parity-images", "3",
                        "--output", str(output)]) == 0
    assert output.exists() and "parity: max |ONNX - MXNet| = " in capsys.readouterr().out
