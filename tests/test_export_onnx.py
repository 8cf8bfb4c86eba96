"""export_onnx.py: MXNet's exporter, metadata, and the parity check that refuses a wrong file.

Checkpoints come from the real training core on tiny record datasets: GoogLeNet (28 px,
the session's ``tiny_run``), Inception-ResNet-v2 with one block of each type (its minimum,
75 px) and CIFAR ResNets of depth 8 with shortcuts A and B (A with a per-pixel mean image).
Parity runs on ONNX's reference evaluator, so the tests need no onnxruntime; where it is
installed, it is checked too.
"""

from __future__ import annotations

import json
from pathlib import Path

import mxnet as mx
import numpy as np
import pytest

# Without onnx (it belongs in requirements.txt) say so instead of failing to collect.
onnx = pytest.importorskip("onnx", reason="onnx==1.13.1 belongs in requirements.txt")
from conftest import config_with, rewrite_checkpoint_params, write_cifar_config  # noqa: E402
from model_use_fixtures import FAST, build_large_dataset, train_run  # noqa: E402
from onnx import helper  # noqa: E402

import export_onnx  # noqa: E402, F401  (the script imports)
from pyimagesearch.commands.export_onnx import main as export_main  # noqa: E402
from pyimagesearch.config import load_config  # noqa: E402
from pyimagesearch.data.build.cifar import build_cifar_dataset  # noqa: E402
from pyimagesearch.data.dataset import load_mean_image  # noqa: E402
from pyimagesearch.data.sources.cifar_writer import write_fake_cifar  # noqa: E402
from pyimagesearch.errors import EXIT_PARITY  # noqa: E402
from pyimagesearch.export import onnx_export  # noqa: E402
from pyimagesearch.export.runtime import OnnxModel, onnxruntime_version  # noqa: E402
from pyimagesearch.files import sha256_file  # noqa: E402
from pyimagesearch.run.checkpoints import read_manifest  # noqa: E402


def export(folder: Path, prefix: str, output: Path, *extra: str) -> int:
    return export_main(["--checkpoints", str(folder), "--prefix", prefix, "--epoch", "last",
                        "--runtime", "reference", "--parity-images", "3", "--output",
                        str(output), *extra])


def metadata(path: Path) -> dict[str, str]:
    return {prop.key: prop.value for prop in onnx.load(str(path)).metadata_props}


def test_googlenet_export_keeps_parity_and_documents_its_input(tiny_run, tmp_path,
                                                                capsys):
    from mxnet.onnx.mx2onnx._export_onnx import MXNetGraph

    translations = {version: dict(table) for version, table in MXNetGraph.registry_.items()}
    output = tmp_path / "googlenet.onnx"
    assert export(tiny_run, "net", output) == 0
    # The raw-bytes weight translation is gone again: MXNet's exporter is as it was.
    assert {v: dict(t) for v, t in MXNetGraph.registry_.items()} == translations
    out = capsys.readouterr().out
    assert "parity: max |ONNX - MXNet| = " in out and "over 3 test images" in out
    figure = float(out.split("max |ONNX - MXNet| = ")[1].split()[0])
    assert figure <= 1e-4

    model = onnx.load(str(output))
    onnx.checker.check_model(model)
    assert [i.name for i in model.graph.input] == ["data"]  # weights are not inputs
    assert model.opset_import[0].version == 18
    props = metadata(output)
    assert props["input_size"] == "28" and props["resize_shorter_side"] == "32"
    assert props["channel_order"] == "RGB" and "per channel" in props["mean_subtraction"]
    mean = json.loads((Path(read_manifest(tiny_run, "net", 1)["config"]["DATASET_MEAN"]))
                      .read_text())
    spec = json.loads(props["preprocessing"])
    assert spec["mean_rgb"] == pytest.approx([mean["R"], mean["G"], mean["B"]])
    classes = json.loads(props["classes"])
    assert [c["label"] for c in classes] == [0, 1, 2, 3]
    assert classes[0]["name"].startswith("class_0_") and classes[0]["wnid"] == "n02119789"
    assert props["label_order"] == "map_clsloc"
    assert props["class_names_source"].endswith("manifest.json")
    assert float(props["parity_max_abs_diff"]) == pytest.approx(figure, rel=1e-2, abs=1e-9)
    assert props["source_params_sha256"] == sha256_file(tiny_run / "net-0003.params")
    assert not list(tmp_path.glob(".*partial*"))
    # The batch dimension is free: one image and two images run.
    reference = OnnxModel(output, "reference")
    x = np.random.RandomState(0).normal(0, 40, (2, 3, 28, 28)).astype(np.float32)
    assert reference.run(x).shape == (2, 4) and reference.run(x[:1]).shape == (1, 4)
    if onnxruntime_version() is not None:
        runtime = OnnxModel(output, "onnxruntime")
        np.testing.assert_allclose(runtime.run(x), reference.run(x), atol=1e-4)


def test_a_wrong_config_or_missing_checkpoint_fails_clearly(tiny_run, tiny_dataset_config,
                                                            tmp_path, capsys):
    other = config_with(tiny_dataset_config, tmp_path / "other.py", INPUT_SIZE=24)
    assert export_main(["-c", str(tiny_run), "-p", "net", "-e", "1", "--config",
                        str(other), "-o", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err
    assert "trained with INPUT_SIZE 28, the config" in err and "says 24" in err
    assert export_main(["-c", str(tiny_run), "-p", "net", "-e", "7",
                        "-o", str(tmp_path / "x.onnx")]) == 2
    assert "complete checkpoints of 'net' there: 1, 2, 3" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()


# --- Inception-ResNet-v2 -------------------------------------------------------------
@pytest.fixture(scope="module")
def irv2_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("irv2")
    config = build_large_dataset(root, MODEL="inception_resnet_v2",
                                 MODEL_PARAMS={"blocks": [1, 1, 1]}, BATCH_SIZE=4)
    return train_run(config, root / "run", "irv2", end_epoch=1)


def _set_fixed_gammas(folder: Path, prefix: str, epoch: int, value: float) -> int:
    """Store ``value`` in every fix_gamma BatchNorm's gamma (as a checkpoint trained
    elsewhere might), its checksum updated; return how many were changed."""
    symbol = mx.sym.load(str(folder / f"{prefix}-symbol.json"))
    nodes = json.loads(symbol.tojson())["nodes"]
    fixed = {nodes[n["inputs"][1][0]]["name"] for n in nodes
             if n["op"] == "BatchNorm" and n["attrs"].get("fix_gamma", "True") == "True"}

    def set_gammas(arrays: dict) -> None:
        for name in arrays:
            if name.split(":", 1)[1] in fixed:
                arrays[name] = mx.nd.full(arrays[name].shape, value)

    rewrite_checkpoint_params(folder, prefix, epoch, set_gammas)
    return len(fixed)


@pytest.mark.slow
def test_inception_resnet_v2_export_and_a_failed_parity(irv2_run, tmp_path, capsys,
                                                        monkeypatch):
    output = tmp_path / "irv2.onnx"
    assert export(irv2_run, "irv2", output) == 0
    assert "over 2 test images" in capsys.readouterr().out
    ops = OnnxModel(output, "reference").operators()
    # residual sums, TF-style average pooling, the batch norms in inference mode (the
    # residual scale rides on the 1x1 weights, so parity above is what shows it survived)
    assert {"Add", "AveragePool", "MaxPool", "BatchNormalization", "Concat"} <= set(ops)
    pools = [n for n in onnx.load(str(output)).graph.node if n.op_type == "AveragePool"]
    assert all(helper.get_attribute_value(a) == 0 for n in pools for a in n.attribute
               if a.name == "count_include_pad")

    # A checkpoint whose scale-free BNs store gamma = 2: MXNet ignores it, so must the file.
    assert _set_fixed_gammas(irv2_run, "irv2", 1, 2.0) > 30
    assert export(irv2_run, "irv2", tmp_path / "foreign.onnx") == 0
    capsys.readouterr()
    # Without that correction MXNet's exporter copies gamma = 2: the check must refuse.
    monkeypatch.setattr(onnx_export, "fixed_gamma_params", lambda symbol, params: params)
    refused = tmp_path / "refused.onnx"
    assert export(irv2_run, "irv2", refused) == EXIT_PARITY
    err = capsys.readouterr().err
    assert "parity check failed: max |ONNX - MXNet| = " in err and "not keeping" in err
    assert float(err.split("max |ONNX - MXNet| = ")[1].split()[0]) > 1e-4
    assert not refused.exists() and not list(tmp_path.glob(".*partial*"))


# --- CIFAR ResNets -------------------------------------------------------------------
@pytest.mark.parametrize("shortcut", ["A", "B"])
def test_cifar_resnet_exports_with_both_shortcuts(shortcut, tiny_dataset_config, tmp_path,
                                                  capsys):
    fields = {**FAST, "MODEL": "cifar_resnet",
              "MODEL_PARAMS": {"depth": 8, "shortcut": shortcut}}
    if shortcut == "A":
        # CIFAR's own records and per-pixel mean: ImageRecordIter subtracts a (3, 32, 32) image.
        fake = write_fake_cifar(tmp_path / "cifar", images_per_batch=20)
        config = write_cifar_config(tmp_path / "config.py", fake.folder.parent,
                                    tmp_path / "rec", VAL_SIZE=10, **fields)
        build_cifar_dataset(load_config(str(config)))
        values = load_mean_image(load_config(str(config)).MEAN_IMAGE)
    else:
        config = config_with(tiny_dataset_config, tmp_path / "config.py", **fields)
    run = train_run(config, tmp_path / "run", "resnet8", end_epoch=1)
    output = tmp_path / "resnet8.onnx"
    assert export(run, "resnet8", output) == 0
    assert "over 3 test images" in capsys.readouterr().out
    ops = OnnxModel(output, "reference").operators()
    if shortcut == "A":
        assert "Slice" in ops and ops["Concat"] >= 2  # subsample, then zero channels
        spec = json.loads(metadata(output)["preprocessing"])
        assert spec["mean"] == "image"
        np.testing.assert_allclose(spec["mean_image"], values, atol=1e-4)
    else:
        assert "Slice" not in ops and ops["Conv"] == 9  # 7 + two 1x1 projections


def test_the_fast_convolution_matches_the_reference_evaluators_own():
    from onnx.reference import ReferenceEvaluator

    from pyimagesearch.export.reference_ops import NEW_OPS

    rng = np.random.RandomState(0)
    cases = [  # channels in/out, kernel, strides, pads (begin h, w, end h, w), dilations, group
        (3, 8, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),
        (4, 6, (1, 7), (1, 1), (0, 3, 0, 3), (1, 1), 1),
        (6, 4, (3, 3), (2, 2), (0, 0, 1, 1), (1, 1), 2),
        (3, 5, (5, 5), (2, 2), (2, 2, 2, 2), (2, 2), 1),
        (8, 8, (3, 3), (1, 2), (1, 0, 1, 2), (1, 1), 8),
    ]
    for c_in, c_out, kernel, strides, pads, dilations, group in cases:
        node = helper.make_node("Conv", ["X", "W", "B"], ["Y"], kernel_shape=list(kernel),
                                strides=list(strides), pads=list(pads),
                                dilations=list(dilations), group=group)
        graph = helper.make_graph(
            [node], "conv", [helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None)
                             for n in "XWB"],
            [helper.make_tensor_value_info("Y", onnx.TensorProto.FLOAT, None)])
        model = helper.make_model(graph)
        feeds = {"X": rng.randn(2, c_in, 11, 12).astype(np.float32),
                 "W": rng.randn(c_out, c_in // group, *kernel).astype(np.float32),
                 "B": rng.randn(c_out).astype(np.float32)}
        expected = ReferenceEvaluator(model).run(None, feeds)[0]
        got = ReferenceEvaluator(model, new_ops=NEW_OPS).run(None, feeds)[0]
        assert got.shape == expected.shape
        np.testing.assert_allclose(got, expected, atol=1e-4, rtol=1e-5)


def test_without_the_onnx_packages_the_command_says_what_to_install(tiny_run, tmp_path):
    """A hand-made environment without onnx: one line naming the requirements files."""
    import subprocess
    import sys

    from conftest import REPO_ROOT

    blocker = tmp_path / "no_onnx"
    (blocker / "onnx").mkdir(parents=True)
    (blocker / "onnx" / "__init__.py").write_text("raise ImportError('No module named onnx')\n")
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "export_onnx.py"), "--checkpoints", str(tiny_run),
         "--prefix", "net", "--epoch", "last"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
        env={"PYTHONPATH": f"{blocker}:{REPO_ROOT}", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert "pip install -r requirements.txt" in lines[0]
    assert "requirements-export.txt" in lines[0]
