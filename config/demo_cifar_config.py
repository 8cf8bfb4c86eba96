"""A quick CIFAR run anywhere: fake CIFAR-10 files in the official python format.

``build_cifar.py --config config.demo_cifar_config`` first writes 500 training and 100
test images (class-coloured noise, see ``pyimagesearch.data.sources.cifar_writer.fake_cifar_arrays``)
into ``datasets/cifar10_fake/cifar-10-batches-py`` (or under CIFAR_DEMO_HOME), then
converts them through the same reader, split and record writer a real download takes.
Everything else is the paper config with a short schedule.
"""

import os
from os import path

from config import dataset_files
from config.cifar10_resnet_config import *  # noqa: F403
from config.cifar10_resnet_config import RECIPE

_REPO = path.dirname(path.dirname(path.abspath(__file__)))
CIFAR_ROOT = os.environ.get("CIFAR_DEMO_HOME", path.join(_REPO, "datasets", "cifar10_fake"))
# Not in real configs: only then does build_cifar.py write fake files.
FAKE_CIFAR = {"images_per_batch": 100, "seed": 0, "layout": "python"}
NUM_TEST_IMAGES = 100
VAL_SIZE = 100

MX_OUTPUT = path.join(CIFAR_ROOT, "rec")
(_, _, _, TRAIN_MX_REC, VAL_MX_REC, TEST_MX_REC, DATASET_MEAN,
 MEAN_IMAGE) = dataset_files(
    MX_OUTPUT, MX_OUTPUT, "cifar10_mean.json")

BATCH_SIZE = 32
RECIPE = {**RECIPE, "name": "demo-cifar-resnet", "num_epochs": 6,
          "schedule": {"kind": "multi_step", "factor": 0.1, "at_epochs": [4]}}
_WARMUP_RECIPE = {**RECIPE, "name": "demo-cifar-resnet-warmup",
                  "warmup": {"updates": 20, "begin_lr": 0.01}}
RECIPES_BY_DEPTH = {110: _WARMUP_RECIPE, 1202: _WARMUP_RECIPE}
LOG_INTERVAL = 5
SEED = 1
