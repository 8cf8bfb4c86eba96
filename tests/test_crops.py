"""10-crop evaluation: the right windows, an exact count, a clear refusal where it cannot apply."""

from __future__ import annotations

import dataclasses
import json

import mxnet as mx
import numpy as np
import pytest
from conftest import config_with, linked_copy, run_config

import test_googlenet
from pyimagesearch.config import ConfigError, load_config
from pyimagesearch.data.dataset import check_dataset
from pyimagesearch.evaluation.crops import (
    TenCropAverage,
    check_ten_crop,
    ten_crop_iterator,
    ten_crop_windows,
    ten_crops,
)
from pyimagesearch.evaluation.evaluate import evaluate_checkpoint


def coordinate_images(count: int, size: int) -> mx.nd.NDArray:
    """Channel 0 holds each pixel's row, channel 1 its column, channel 2 the image index."""
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float32)
    return mx.nd.array(np.stack([np.stack([rows, cols, np.full_like(rows, n)])
                                 for n in range(count)]))


def test_the_ten_windows_are_the_corners_the_center_and_their_mirrors():
    size, crop = 11, 8
    assert ten_crop_windows(size, crop) == [(0, 0), (0, 3), (3, 0), (3, 3), (1, 1)]
    images = coordinate_images(2, size)
    crops = ten_crops(images, crop)
    assert len(crops) == 10 and all(c.shape == (2, 3, crop, crop) for c in crops)
    for k, (top, left) in enumerate(ten_crop_windows(size, crop)):
        plain, mirrored = crops[k].asnumpy(), crops[k + 5].asnumpy()
        for n in range(2):
            np.testing.assert_array_equal(plain[n, 0], np.arange(top, top + crop)[:, None]
                                          * np.ones((1, crop)))
            np.testing.assert_array_equal(plain[n, 1], np.ones((crop, 1))
                                          * np.arange(left, left + crop)[None, :])
            np.testing.assert_array_equal(plain[n, 2], n)
            # The mirror is the same window read right to left.
            np.testing.assert_array_equal(mirrored[n], plain[n, :, :, ::-1])
    with pytest.raises(ValueError, match="does not fit"):
        ten_crop_windows(7, 8)


def test_the_average_is_taken_over_probabilities():
    class Net:
        """Logits that depend on the crop: the mean of each channel, scaled."""

        def __call__(self, x):
            return x.mean(axis=(2, 3)) * mx.nd.array([0.05, 0.1, 1.0])

    images = coordinate_images(3, 10)
    out = TenCropAverage(Net(), 6)(images).asnumpy()
    probs = [mx.nd.softmax(Net()(c)).asnumpy() for c in ten_crops(images, 6)]
    np.testing.assert_allclose(out, np.log(np.mean(probs, axis=0)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.exp(out).sum(axis=1), 1.0, rtol=1e-5)


@pytest.fixture(scope="module")
def trained(tiny_run, tmp_path_factory):
    """The tiny dataset (32 px stored, 28 px crops) evaluated in batches of 6, and a copy of
    the session's GoogLeNet run on it (evaluations are written beside the checkpoints)."""
    folder = tmp_path_factory.mktemp("crops")
    config = config_with(run_config(tiny_run), folder / "config.py", BATCH_SIZE=6)
    return str(config), linked_copy(tiny_run, folder / "run")


def test_ten_crop_scores_each_image_once_and_differs_plausibly(trained, capsys):
    config, folder = trained
    one = evaluate_checkpoint(load_config(config), str(folder), "net", 1, "val")
    capsys.readouterr()
    assert test_googlenet.main(["--config", config, "--checkpoints", str(folder),
                                "--prefix", "net", "--epoch", "1", "--split", "val",
                                "--crops", "10"]) == 0
    captured = capsys.readouterr()
    assert "10 crops of 28 px" in captured.out and "rank-1:" in captured.out
    # The tiny config trains without mirroring (as the digits demo), which 10-crop assumes.
    assert "trains without rand_mirror" in captured.err
    ten = json.loads((folder / "net-0001-val-10crop.json").read_text())
    # 11 validation images (12 less one blacklisted), batches of 6: the last one wraps.
    assert one["images"] == ten["images"] == 11
    assert (one["crops"], ten["crops"]) == (1, 10)
    assert json.loads((folder / "net-0001-val.json").read_text())["crops"] == 1
    for result in (one, ten):
        assert 0.0 <= result["accuracy"] <= result["top_k_accuracy_5"] <= 1.0
        assert np.isfinite(result["cross-entropy"]) and result["cross-entropy"] > 0
    assert ten["cross-entropy"] != pytest.approx(one["cross-entropy"], rel=1e-6)
    # Averaging ten views smooths the prediction; it does not change it wholesale.
    assert abs(ten["cross-entropy"] - one["cross-entropy"]) < 0.5 * one["cross-entropy"]
    assert abs(ten["accuracy"] - one["accuracy"]) <= 4 / 11


def test_the_iterator_delivers_the_stored_center_square(trained):
    config = load_config(trained[0])
    info = check_dataset(config, ("test",))
    batch = next(iter(ten_crop_iterator(config, info, "test", 4)))
    assert batch.data[0].shape == (4, 3, 32, 32)


def test_ten_crop_is_refused_where_it_cannot_apply(trained, tmp_path, capsys):
    config, folder = trained
    # A per-pixel mean (CIFAR's) is of the crop's size: it cannot apply to the stored square.
    info = dataclasses.replace(check_dataset(load_config(config), ("test",)),
                               mean_image=str(tmp_path / "mean.nd"))
    with pytest.raises(ConfigError, match="per-pixel MEAN_IMAGE"):
        check_ten_crop(load_config(config), info)

    no_margin = config_with(config, tmp_path / "no_margin.py", INPUT_SIZE=32)
    with pytest.raises(ConfigError, match="same window"):
        evaluate_checkpoint(load_config(str(no_margin)), str(folder), "net", 1, crops=10)
    assert test_googlenet.main(["--config", str(no_margin), "--checkpoints", str(folder),
                                "--prefix", "net", "--epoch", "1", "--crops", "10"]) == 2
    assert "use --crops 1" in capsys.readouterr().err
