"""classify_image.py: evaluation's preprocessing on image files, top-k names and probabilities.

The preprocessing is checked against ``mx.io.ImageRecordIter`` itself on one-record files;
the classification after a short real training on the tiny dataset's colour classes (a
CIFAR ResNet of depth 8 learns them in three epochs), from the checkpoint and from its
ONNX export.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import mxnet as mx
import numpy as np
import pytest
from conftest import TREE_WNIDS, config_with
from model_use_fixtures import FAST, class_image, train_run
from PIL import Image
from test_build_faults import png_header_only

import classify_image  # noqa: F401  (the script imports)
from pyimagesearch.commands.classify_image import main as classify_main
from pyimagesearch.data.images import prepare_image, resize_shorter
from pyimagesearch.errors import EXIT_UNREADABLE
from pyimagesearch.inference.preprocess import Preprocessing

MEAN = (121.5, 100.25, 80.0)


def structured_image(height: int, width: int, blocks: bool = True) -> np.ndarray:
    """Gradients (and blocks): any shift of the crop or swap of channels changes the pixels."""
    ys, xs = np.mgrid[0:height, 0:width]
    rng = np.random.RandomState(height * width)
    image = np.stack([4.0 * xs, 5.0 * ys, 120 + 100 * np.sin(xs / 3.0 + ys / 5.0)], axis=-1)
    if blocks:
        image += rng.uniform(-20, 20, (height // 4 + 1, width // 4 + 1, 3)).repeat(
            4, 0).repeat(4, 1)[:height, :width]
    return np.clip(image, 0, 255).astype(np.uint8)


def record_iter_input(folder: Path, stored: bytes, size: int, **mean) -> np.ndarray:
    """What ImageRecordIter (evaluation's settings) makes of one stored image."""
    rec, idx = folder / "one.rec", folder / "one.idx"
    writer = mx.recordio.MXIndexedRecordIO(str(idx), str(rec), "w")
    writer.write_idx(0, mx.recordio.pack(mx.recordio.IRHeader(0, 0.0, 0, 0), stored))
    writer.close()
    batches = mx.io.ImageRecordIter(path_imgrec=str(rec), path_imgidx=str(idx),
                                    data_shape=(3, size, size), batch_size=1,
                                    preprocess_threads=1, round_batch=True, verbose=False,
                                    **mean)
    return next(iter(batches)).data[0].asnumpy()[0]


def png(rgb: np.ndarray) -> bytes:
    ok, buffer = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return buffer.tobytes()


@pytest.mark.parametrize("height, width", [(47, 60), (71, 45), (40, 40)])
def test_preprocessing_is_what_image_record_iter_does(height, width, tmp_path):
    """Same resize, same crop position ((size - crop) // 2, odd margins included), RGB, mean."""
    prep = Preprocessing(resize=40, input_size=28, mean_rgb=MEAN)
    rgb = structured_image(height, width)
    # Stored losslessly, the record holds exactly the build's resize: equality up to rounding.
    expected = record_iter_input(tmp_path, png(resize_shorter(rgb, 40)), 28,
                                 mean_r=MEAN[0], mean_g=MEAN[1], mean_b=MEAN[2])
    got = prep.apply(rgb)
    assert got.shape == expected.shape == (3, 28, 28) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, atol=1e-3)
    # A crop one pixel off (or rounded up where the margin is odd), or BGR, would not pass.
    stored = resize_shorter(rgb, 40).astype(np.float32).transpose(2, 0, 1)
    margins = (stored.shape[1] - 28, stored.shape[2] - 28)
    wrong = {(margins[0] // 2 + 1, margins[1] // 2), (margins[0] // 2, margins[1] // 2 + 1),
             ((margins[0] + 1) // 2, (margins[1] + 1) // 2)} - {(margins[0] // 2,
                                                                  margins[1] // 2)}
    mean = np.asarray(MEAN, np.float32).reshape(3, 1, 1)
    for top, left in wrong:
        other = stored[:, top:top + 28, left:left + 28] - mean
        assert np.abs(other - expected).mean() > 1.0, (top, left)
    assert np.abs(got[::-1] - expected).mean() > 10

    # As the build stores it (JPEG, quality 95): the difference is JPEG's loss, nothing else.
    path = tmp_path / "photo.png"
    Image.fromarray(structured_image(height, width, blocks=False)).save(path)
    jpeg = prepare_image(path, 40, 95)
    from_records = record_iter_input(tmp_path, jpeg, 28,
                                     mean_r=MEAN[0], mean_g=MEAN[1], mean_b=MEAN[2])
    decoded = cv2.cvtColor(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR),
                           cv2.COLOR_BGR2RGB)
    np.testing.assert_allclose(prep.apply(decoded), from_records, atol=2.0)  # JPEG decoders
    jpeg_loss = np.abs(prep.load(path) - prep.apply(decoded)).mean()
    assert np.abs(prep.load(path) - from_records).mean() == pytest.approx(jpeg_loss, abs=0.3)


def test_per_pixel_mean_is_what_image_record_iter_subtracts(tmp_path):
    mean_image = np.random.RandomState(0).uniform(50, 200, (3, 28, 28)).astype(np.float32)
    mean_file = tmp_path / "mean.nd"
    mx.nd.save(str(mean_file), {"mean_img": mx.nd.array(mean_image)})
    rgb = structured_image(50, 36)
    expected = record_iter_input(tmp_path, png(resize_shorter(rgb, 32)), 28,
                                 mean_img=str(mean_file))
    got = Preprocessing(resize=32, input_size=28, mean_image=mean_image).apply(rgb)
    np.testing.assert_allclose(got, expected, atol=1e-3)


# --- classifying after a short real training ---------------------------------------------
@pytest.fixture(scope="module")
def colour_run(tiny_dataset_config, tmp_path_factory) -> Path:
    """A run of its own: the session's tiny_run (GoogLeNet, mostly at a low rate) has not
    learnt the colours well enough to name new images; this small ResNet has."""
    folder = tmp_path_factory.mktemp("colour_run")
    config = config_with(tiny_dataset_config, folder / "config.py", **FAST,
                         MODEL="cifar_resnet", MODEL_PARAMS={"depth": 8, "shortcut": "A"})
    return train_run(config, folder / "run", "net", end_epoch=3)


@pytest.fixture(scope="module")
def colour_images(tmp_path_factory) -> list[tuple[Path, int]]:
    """New images of each of the 4 classes, in several formats and shapes: (path, label)."""
    folder = tmp_path_factory.mktemp("colour_images")
    images = []
    for label in range(4):
        for n, (width, height, kind) in enumerate([(45, 37, "JPEG"), (30, 52, "PNG")]):
            path = folder / f"label{label}_{n}.{kind.lower()}"
            Image.fromarray(class_image(label, width, height, seed=10 * label + n)).save(path,
                                                                                      kind)
            images.append((path, label))
    return images


def classify_json(capsys, *argv: str) -> list[dict]:
    assert classify_main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_top1_names_and_probabilities(colour_run, colour_images, capsys):
    results = classify_json(capsys, "-c", str(colour_run), "-p", "net", "-e", "last",
                            "--top", "4", *[str(p) for p, _ in colour_images])
    assert len(results) == len(colour_images)
    for result, (path, label) in zip(results, colour_images):
        assert result["path"] == str(path) and result["error"] is None
        top = result["predictions"]
        assert top[0]["label"] == label, result
        assert top[0]["name"] == f"class_{label}_{TREE_WNIDS[label]}"
        assert top[0]["wnid"] == TREE_WNIDS[label]
        probabilities = [p["probability"] for p in top]
        assert probabilities == sorted(probabilities, reverse=True)
        assert sum(probabilities) == pytest.approx(1.0, abs=1e-6)  # all 4 classes shown

    # The text output: the model, the preprocessing, ranked names with percentages.
    assert classify_main(["-c", str(colour_run), "-p", "net", "-e", "3",
                          str(colour_images[0][0])]) == 0
    out = capsys.readouterr().out
    assert "(MXNet), 4 classes in map_clsloc order" in out
    assert "center 28x28 crop" in out
    assert "  1. " in out and f"class_0_{TREE_WNIDS[0]} ({TREE_WNIDS[0]}, label 0)" in out


def test_unreadable_images_are_named_and_the_rest_classified(colour_run, colour_images,
                                                             tmp_path, capsys):
    text = tmp_path / "notes.jpg"
    text.write_text("not an image\n")
    missing = tmp_path / "gone.png"
    good = str(colour_images[2][0])
    code = classify_main(["-c", str(colour_run), "-p", "net", "-e", "last",
                          str(text), good, str(missing)])
    captured = capsys.readouterr()
    assert code == EXIT_UNREADABLE
    assert f"{text}: cannot be classified: not an image" in captured.err
    assert f"{missing}: cannot be classified: file not found" in captured.err
    assert "2 of 3 images could not be read" in captured.err
    assert good in captured.out and "label 1)" in captured.out


def test_the_builds_size_and_aspect_limits_protect_classification(colour_run, colour_images,
                                                                   tmp_path, capsys):
    elongated = tmp_path / "strip.jpg"  # 23:1, beyond BUILD_MAX_ASPECT_RATIO (20)
    Image.fromarray(class_image(0, 690, 30)).save(elongated, "JPEG")
    bomb = tmp_path / "huge.png"  # declares 20000 x 20000 pixels and holds none
    bomb.write_bytes(png_header_only(20000, 20000))
    good = str(colour_images[0][0])
    code = classify_main(["-c", str(colour_run), "-p", "net", "-e", "last", str(elongated),
                          str(bomb), good])
    captured = capsys.readouterr()
    assert code == EXIT_UNREADABLE
    assert (f"[ERROR] {elongated}: cannot be classified: extreme aspect ratio (690x30 px, "
            f"23:1, above the 20:1 limit") in captured.err
    assert (f"[ERROR] {bomb}: cannot be classified: too large (Image size (400000000 "
            f"pixels) exceeds") in captured.err
    assert "Traceback" not in captured.err and good in captured.out


def test_the_onnx_export_classifies_alike_without_config(colour_run, colour_images, tmp_path,
                                                         capsys):
    pytest.importorskip("onnx", reason="onnx==1.13.1 belongs in requirements.txt")
    from pyimagesearch.commands.export_onnx import main as export_main

    onnx_file = tmp_path / "net.onnx"
    assert export_main(["-c", str(colour_run), "-p", "net", "-e", "last", "--runtime",
                        "reference", "--parity-images", "2", "-o", str(onnx_file)]) == 0
    capsys.readouterr()
    files = [str(p) for p, _ in colour_images[::3]]
    from_mxnet = classify_json(capsys, "-c", str(colour_run), "-p", "net", "-e", "last",
                               *files)
    from_onnx = classify_json(capsys, "--onnx", str(onnx_file), "--runtime", "reference",
                              *files)
    for a, b in zip(from_mxnet, from_onnx):
        assert [p["label"] for p in a["predictions"]][:1] == \
            [p["label"] for p in b["predictions"]][:1]
        assert b["predictions"][0]["name"] == a["predictions"][0]["name"]
        for p, q in zip(a["predictions"], b["predictions"]):
            assert q["probability"] == pytest.approx(p["probability"], abs=1e-4)


def test_the_command_line_needs_a_model(capsys):
    pytest.importorskip("onnx", reason="onnx==1.13.1 belongs in requirements.txt")
    with pytest.raises(SystemExit) as exit_info:
        classify_main(["photo.jpg"])
    assert exit_info.value.code == 2
    assert "give --checkpoints, --prefix and --epoch, or --onnx FILE" in capsys.readouterr().err
    assert classify_main(["--onnx", "/nonexistent/model.onnx", "photo.jpg"]) == 2
    assert "ONNX file /nonexistent/model.onnx not found" in capsys.readouterr().err
