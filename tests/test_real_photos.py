"""Learning on real photographs, end to end at a tiny scale: scikit-learn's two sample
photos cut into crops (four classes: the upper and lower half of each photo; test crops
from stripes of the photos that no training crop touches), built into records as an
image-folder tree, an 8-layer ResNet trained by ``train_cifar.py`` for 6 epochs (84
updates), then scored on the held-out crops. Chance is 25%; a network that learned
nothing about the scenes cannot pass."""

from __future__ import annotations

from pathlib import Path

import mxnet as mx
import numpy as np
import pytest

import build_demo_dataset
import build_imagenet
import test_cifar
import train_cifar
from pyimagesearch.config import load_config
from pyimagesearch.data.dataset import check_dataset
from pyimagesearch.data.iterators import Normalizer, evaluation_iterator
from pyimagesearch.data.sources.sample_photos import PhotoTree
from pyimagesearch.run.checkpoints import load_network
from pyimagesearch.run.paths import result_path


@pytest.fixture(scope="module")
def photo_config(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("photos")
    path = root / "config.py"
    out = root / "rec"
    fields = {"FOLDER_ROOT": str(root / "tree"), "MX_OUTPUT": str(out),
              "DATASET_MEAN": str(out / "mean.json"), "BUILD_THREADS": 1, "HEALTH": None,
              **{f"{split.upper()}_MX_{field}": str(out / f"{split}.{kind}")
                 for split in ("train", "val", "test")
                 for kind, field in (("lst", "LIST"), ("rec", "REC"))}}
    path.write_text("from config.demo_folder_config import *  # noqa: F403\n"
                    + "".join(f"{k} = {v!r}\n" for k, v in fields.items()), encoding="utf-8")
    return path


def predictions(config_path: Path, folder: Path, epoch: int) -> tuple[np.ndarray, np.ndarray]:
    """(labels, predicted labels) of every test image, each scored once."""
    config = load_config(str(config_path))
    info = check_dataset(config, ("test",))
    net = load_network(folder, "r8", epoch, [mx.cpu()])
    normalize, truth, guess = Normalizer(info.mean, info.mean_image), [], []
    for batch in evaluation_iterator(config, info, "test", config.BATCH_SIZE):
        kept = config.BATCH_SIZE - batch.pad
        truth += batch.label[0].asnumpy()[:kept].astype(int).tolist()
        guess += net(normalize(batch.data[0])).argmax(axis=1).asnumpy()[:kept].astype(int).tolist()
    return np.array(truth), np.array(guess)


def test_a_network_learns_real_photographs_through_the_folder_build(photo_config, tmp_path,
                                                                    capsys):
    assert build_demo_dataset.main(["--config", str(photo_config)]) == 0
    assert build_imagenet.main(["--config", str(photo_config), "--strict"]) == 0
    tree = PhotoTree()
    assert "train: listed 440 = written 440 + skipped 0" in capsys.readouterr().out
    out = tmp_path / "run"
    assert train_cifar.main(["--config", str(photo_config), "--checkpoints", str(out),
                             "--prefix", "r8", "--depth", "8", "--seed", "1"]) == 0
    run = out / "seed1"
    assert test_cifar.main(["--config", str(photo_config), "--checkpoints", str(run),
                            "--prefix", "r8", "--epoch", "last"]) == 0
    assert result_path(run, "r8", 6, "test").is_file()
    truth, guess = predictions(photo_config, run, 6)
    assert len(truth) == 4 * tree.test_per_class
    accuracy = float(np.mean(truth == guess))
    # Classes are sorted: china_lower, china_upper, flower_lower, flower_upper.
    same_photo = float(np.mean(truth // 2 == guess // 2))
    assert accuracy >= 0.5, f"4-class test accuracy {accuracy:.3f} (chance 0.25)"
    assert same_photo >= 0.9, f"photo told apart on {same_photo:.3f} of the test crops"
