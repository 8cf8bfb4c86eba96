"""Checkpoints written by MXNet's symbolic API, loaded into the project's networks by structure."""

from __future__ import annotations

from pathlib import Path

import mxnet as mx
import numpy as np
import pytest
from book_symbol import (
    BOOK_INPUT,
    CHAPTER_TABLE,
    module_logits,
    save_book_checkpoint,
)

from pyimagesearch.nn import get_model
from pyimagesearch.run.checkpoints import CheckpointError
from pyimagesearch.run.symbolic_import import (
    StructureMismatch,
    load_symbolic_checkpoint,
    read_symbolic_checkpoint,
)

CLASSES = 4


@pytest.fixture(scope="module")
def book_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``googlenet-symbol.json`` + ``googlenet-0003.params``, as the book's code writes them."""
    folder = tmp_path_factory.mktemp("book_checkpoint")
    save_book_checkpoint(folder, "googlenet", 3, CLASSES)
    return folder


def _book_net(**kwargs) -> mx.gluon.HybridBlock:
    net = get_model("googlenet", num_classes=CLASSES, variant="book", **kwargs)
    net.initialize(mx.init.Xavier())
    return net


def test_book_checkpoint_gives_the_modules_logits(book_checkpoint):
    images = np.random.RandomState(1).uniform(-1, 1, (2, 3, BOOK_INPUT, BOOK_INPUT))
    expected = module_logits(book_checkpoint, "googlenet", 3, images.astype(np.float32))
    net = _book_net()
    line = load_symbolic_checkpoint(net, book_checkpoint, "googlenet", 3)
    assert "344 arrays" in line
    net.hybridize(static_alloc=True, static_shape=True)
    logits = net(mx.nd.array(images)).asnumpy()
    assert np.abs(logits - expected).max() < 1e-4
    assert np.abs(expected).max() > 0.1  # not a trivially small output


def test_default_variant_is_refused_at_the_first_bias(book_checkpoint):
    net = get_model("googlenet", num_classes=CLASSES)
    net.initialize()
    with pytest.raises(StructureMismatch) as caught:
        load_symbolic_checkpoint(net, book_checkpoint, "googlenet", 3)
    message = str(caught.value)
    assert "\n" not in message
    assert "parameter 2 of 287" in message
    assert "expected BatchNorm gamma (64,)" in message
    assert "found Convolution bias (64,) of layer 'convolution" in message


def test_other_class_count_is_refused_at_the_classifier(book_checkpoint):
    net = get_model("googlenet", num_classes=CLASSES + 1, variant="book")
    net.initialize()
    with pytest.raises(StructureMismatch, match=r"parameter 343 of 344: expected "
                       r"FullyConnected weight \(5, 1024\).*found FullyConnected weight "
                       r"\(4, 1024\)"):
        load_symbolic_checkpoint(net, book_checkpoint, "googlenet", 3)


def test_a_different_structure_is_refused_where_it_differs(tmp_path):
    # The same network with inception 4c's 3x3 branch 16 filters narrower.
    table = tuple((name, kind, (128, 128, 240, 24, 64, 64)) if name == "in4c"
                  else (name, kind, numbers) for name, kind, numbers in CHAPTER_TABLE)
    save_book_checkpoint(tmp_path, "narrow", 1, CLASSES, table=table)
    net = _book_net()
    with pytest.raises(StructureMismatch) as caught:
        load_symbolic_checkpoint(net, tmp_path, "narrow", 1)
    message = str(caught.value)
    assert "expected Convolution weight (256, 128, 3, 3) of layer 'googlenet_in4c_3x3_conv_" \
           in message
    assert "found Convolution weight (240, 128, 3, 3)" in message


def test_settings_that_keep_shapes_are_compared(tmp_path):
    """A stride the shapes cannot show is still a different network."""
    symbol = mx.sym.Convolution(mx.sym.var("data"), kernel=(3, 3), num_filter=8, stride=(2, 2))
    symbol = mx.sym.FullyConnected(mx.sym.BatchNorm(symbol), num_hidden=CLASSES)
    module = mx.mod.Module(symbol, label_names=None)
    module.bind(data_shapes=[("data", (1, 3, 8, 8))], for_training=False)
    module.init_params()
    module.save_checkpoint(str(tmp_path / "strided"), 1)

    net = mx.gluon.nn.HybridSequential(prefix="small_")
    with net.name_scope():
        net.add(mx.gluon.nn.Conv2D(8, 3, in_channels=3),
                mx.gluon.nn.BatchNorm(in_channels=8, epsilon=1e-3, scale=False),
                mx.gluon.nn.Dense(CLASSES, in_units=8 * 6 * 6))
    net.initialize()
    with pytest.raises(StructureMismatch, match=r"has stride=\(1, 1\) where the checkpoint's "
                                                r"layer .* has stride=\(2, 2\)"):
        load_symbolic_checkpoint(net, tmp_path, "strided", 1)


def test_unreadable_files_are_one_line_errors(tmp_path, book_checkpoint):
    with pytest.raises(CheckpointError, match="googlenet-0007.params: not found"):
        read_symbolic_checkpoint(book_checkpoint, "googlenet", 7)
    (tmp_path / "bad-symbol.json").write_text("{not json")
    (tmp_path / "bad-0001.params").write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="bad-symbol.json: not an MXNet symbol file"):
        read_symbolic_checkpoint(tmp_path, "bad", 1)
    (tmp_path / "bad-symbol.json").write_text((book_checkpoint / "googlenet-symbol.json")
                                              .read_text())
    with pytest.raises(CheckpointError, match="bad-0001.params: not a readable parameter file"):
        read_symbolic_checkpoint(tmp_path, "bad", 1)


# --- every command that takes --checkpoints/--prefix/--epoch ----------------------------

@pytest.fixture(scope="module")
def book_config(tiny_dataset_config, tmp_path_factory) -> Path:
    """The tiny dataset (4 classes, 28 px crops) with the book's GoogLeNet."""
    from conftest import config_with
    from model_use_fixtures import FAST

    folder = tmp_path_factory.mktemp("book_config")
    return config_with(tiny_dataset_config, folder / "book_config.py",
                       **{**FAST, "MODEL_PARAMS": {"variant": "book"}})


def _copy_checkpoint(source: Path, target: Path) -> Path:
    import shutil

    target.mkdir(parents=True, exist_ok=True)
    for path in source.glob("googlenet-*"):
        shutil.copy(path, target / path.name)
    return target


def test_evaluation_path_gives_the_modules_logits(book_checkpoint, book_config, tmp_path):
    from conftest import config_with

    from pyimagesearch.config import load_config
    from pyimagesearch.run.checkpoints import load_network

    config = load_config(str(config_with(book_config, tmp_path / "at224.py",
                                         INPUT_SIZE=BOOK_INPUT)))
    images = np.random.RandomState(4).uniform(-1, 1, (2, 3, BOOK_INPUT, BOOK_INPUT))
    expected = module_logits(book_checkpoint, "googlenet", 3, images.astype(np.float32))
    net = load_network(book_checkpoint, "googlenet", 3, [mx.cpu()], config)
    assert np.abs(net(mx.nd.array(images)).asnumpy() - expected).max() < 1e-4


def test_test_export_classify_and_report_accept_it(book_checkpoint, book_config, tmp_path,
                                                   capsys):
    from pyimagesearch.commands.classify_image import main as classify_main
    from pyimagesearch.commands.export_onnx import main as export_main
    from pyimagesearch.commands.report import main as report_main
    from pyimagesearch.commands.test import main as test_main

    folder = _copy_checkpoint(book_checkpoint, tmp_path / "book")
    common = ["--checkpoints", str(folder), "--prefix", "googlenet", "--config", str(book_config)]
    assert test_main([*common, "--epoch", "last"], "test", "config.demo_googlenet_config") == 0
    assert "googlenet epoch 3 on 8 test images" in capsys.readouterr().out
    assert (folder / "googlenet-0003-test.json").is_file()

    pytest.importorskip("onnx", reason="onnx==1.13.1 belongs in requirements.txt")
    assert export_main([*common, "--epoch", "3", "--runtime", "reference",
                        "--parity-images", "3"]) == 0
    assert (folder / "googlenet-0003.onnx").is_file()

    from pyimagesearch.config import load_config

    images = sorted(Path(load_config(str(book_config)).IMAGES_PATH).glob("train/*/*.JPEG"))
    assert classify_main([*common, "--epoch", "3", str(images[0])]) == 0
    assert report_main(common) == 0
    assert "googlenet in " in (folder / "googlenet-report.html").read_text()
    assert "checkpoint 3; generated" in (folder / "googlenet-report.html").read_text()


def test_other_structure_is_refused_by_the_command(book_checkpoint, tiny_dataset_config,
                                                   tmp_path, capsys):
    from conftest import config_with
    from model_use_fixtures import FAST

    from pyimagesearch.commands.test import main as test_main

    folder = _copy_checkpoint(book_checkpoint, tmp_path / "book")
    default = config_with(tiny_dataset_config, tmp_path / "default.py", **FAST)
    code = test_main(["--checkpoints", str(folder), "--prefix", "googlenet", "--epoch", "3",
                      "--config", str(default)], "test", "config.demo_googlenet_config")
    assert code == 2
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0
    assert "does not fit the network: parameter 2 of 287: expected BatchNorm gamma (64,)" in error


def test_training_resumes_from_it_weights_only(book_checkpoint, book_config, tmp_path):
    from model_use_fixtures import train_run

    from pyimagesearch.config import load_config
    from pyimagesearch.evaluation.evaluate import evaluate_checkpoint
    from pyimagesearch.run.checkpoints import read_manifest

    folder = _copy_checkpoint(book_checkpoint, tmp_path / "book")
    book_symbol_text = (folder / "googlenet-symbol.json").read_text()
    train_run(book_config, folder, "googlenet", end_epoch=4, start_epoch=3)

    log = (folder / "training_3.log").read_text()
    resumed = [line for line in log.splitlines() if "Resumed from epoch 3" in line]
    assert len(resumed) == 1
    per_epoch = read_manifest(folder, "googlenet", 4)["identity"]["updates_per_epoch"]
    assert "weights only, from MXNet checkpoint googlenet-0003: 344 arrays" in resumed[0]
    assert f"optimizer state starts fresh and the schedule at update {3 * per_epoch:,}" \
        in resumed[0]
    # The schedule went on from update 3 x per_epoch: epoch 4 ends one epoch later.
    assert read_manifest(folder, "googlenet", 4)["num_update"] == 4 * per_epoch
    # The run wrote its own symbol; the book's was kept, and its epoch still loads.
    assert (folder / "googlenet-mxnet-symbol.json").read_text() == book_symbol_text
    assert (folder / "googlenet-symbol.json").read_text() != book_symbol_text
    config = load_config(str(book_config))
    for epoch in (3, 4):
        assert evaluate_checkpoint(config, str(folder), "googlenet", epoch)["images"] == 8
