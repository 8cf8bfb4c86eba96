"""CIFAR-100 (100 fine classes) with the CIFAR-10 paper recipe of He et al. 2016.

He et al. report no CIFAR-100 numbers for these nets; this is the same recipe, data
pipeline and 45k/5k split applied to CIFAR-100, for comparison runs.
"""

import os
from os import path

from config import dataset_files
from config.cifar10_resnet_config import *  # noqa: F403

_CIFAR_HOME = os.environ.get("CIFAR100_HOME", "/raid/datasets/cifar100")
CIFAR_ROOT = _CIFAR_HOME
CIFAR_DATASET = "cifar100"
CIFAR_LABELS = "fine"   # "coarse": the 20 superclasses (then NUM_CLASSES = 20)
NUM_CLASSES = 100

MX_OUTPUT = path.join(_CIFAR_HOME, "rec", "split_45k_5k")
(_, _, _, TRAIN_MX_REC, VAL_MX_REC, TEST_MX_REC, DATASET_MEAN,
 MEAN_IMAGE) = dataset_files(
    MX_OUTPUT, MX_OUTPUT, "cifar100_mean.json")
