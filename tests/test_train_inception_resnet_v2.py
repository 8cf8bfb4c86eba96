"""train_inception_resnet_v2.py / test_inception_resnet_v2.py end to end on a small record set.

The network needs 75 px or more, so this builds its own tiny ILSVRC tree at 80 px records
(the session's tiny dataset stores 32 px) and trains one block of each type, with the demo
config's recipe and health monitor.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import make_ilsvrc_tree, write_config

import test_inception_resnet_v2
import train_inception_resnet_v2
from config.demo_inception_resnet_v2_config import RECIPE as DEMO_RECIPE
from pyimagesearch.config import load_config
from pyimagesearch.data.build.builder import build_dataset
from pyimagesearch.run.checkpoints import list_checkpoints, read_manifest
from pyimagesearch.run.logs import parse_log
from pyimagesearch.training.health import parse_health_lines


@pytest.fixture(scope="module")
def irv2_config(tmp_path_factory) -> str:
    """3 classes x 6 training images (4 carved out for test), 5 validation images, 80 px."""
    root = tmp_path_factory.mktemp("irv2_dataset")
    tree = make_ilsvrc_tree(root / "ILSVRC2015", classes=3, train_per_class=6,
                            val_per_class=2, image_size=(96, 84))
    path = write_config(root / "irv2_config.py", tree.base, root / "out", NUM_CLASSES=3,
                        NUM_TEST_IMAGES=4, RESIZE=80, INPUT_SIZE=75, BATCH_SIZE=4,
                        MODEL="inception_resnet_v2", MODEL_PARAMS={"blocks": [1, 1, 1]},
                        AUGMENTATION={"rand_crop": True, "rand_mirror": True},
                        HEALTH={"interval": 1, "dead_fraction": 0.99, "patience": 3},
                        LOG_INTERVAL=1, DECODE_THREADS=1, SEED=11, RECIPE=DEMO_RECIPE)
    build_dataset(load_config(str(path)))
    return str(path)


def run(script, config, folder, *extra):
    return script.main(["--config", config, "--checkpoints", str(folder), "--prefix", "irv2",
                        *map(str, extra)])


@pytest.mark.slow
def test_train_resume_and_evaluate_with_one_and_ten_crops(irv2_config, tmp_path, capsys):
    assert run(train_inception_resnet_v2, irv2_config, tmp_path, "--end-epoch", 1) == 0
    assert run(train_inception_resnet_v2, irv2_config, tmp_path, "--start-epoch", 1,
               "--end-epoch", 2) == 0
    assert list_checkpoints(tmp_path, "irv2") == [1, 2]
    manifest = read_manifest(tmp_path, "irv2", 2)
    assert manifest["identity"]["model"] == "inception_resnet_v2"
    assert manifest["identity"]["model_params"]["blocks"] == [1, 1, 1]
    assert manifest["num_update"] == 2 * 4  # 14 training images in batches of 4
    resumed_log = tmp_path / "training_1.log"
    assert "Resumed from epoch 1" in resumed_log.read_text()
    assert sorted(parse_log(resumed_log).epochs) == [1]
    health = parse_health_lines(resumed_log)
    assert [(c.epoch, c.batch) for c in health.checks] == [(1, b) for b in range(1, 5)]
    assert all(np.isfinite(c.loss) and 0 <= c.zero_fraction <= 1 for c in health.checks)

    capsys.readouterr()
    assert run(test_inception_resnet_v2, irv2_config, tmp_path, "--epoch", "last") == 0
    assert "center 75 px crop" in capsys.readouterr().out
    assert run(test_inception_resnet_v2, irv2_config, tmp_path, "--epoch", "2",
               "--crops", "10") == 0
    assert "10 crops of 75 px" in capsys.readouterr().out
    one = json.loads((tmp_path / "irv2-0002-test.json").read_text())
    ten = json.loads((tmp_path / "irv2-0002-test-10crop.json").read_text())
    assert one["images"] == ten["images"] == 4
    assert (one["crops"], ten["crops"]) == (1, 10)
    for result in (one, ten):
        assert 0.0 <= result["accuracy"] <= result["top_k_accuracy_5"] <= 1.0
