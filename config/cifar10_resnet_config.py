"""CIFAR-10 ResNets as He et al. 2016 train them (arXiv 1512.03385, section 4.2).

SGD, learning rate 0.1, momentum 0.9, weight decay 1e-4, batch 128, divided by 10 at 32k
and 48k updates, stopped at 64k updates (a schedule the paper chose on a 45k/5k train/val
split; its Table 6 models trained on all 50k, this config on the 45k); 4-pixel zero
padding, random 32x32 crop, horizontal flip; per-pixel mean subtraction. The 110-layer
net (and 1202) warms up at 0.01 for the first 400 updates ("until the training error is
below 80%, about 400 iterations"), then goes back to 0.1: ``train_cifar.py --depth 110``
picks ``RECIPES_BY_DEPTH[110]``.

The official files (python or binary layout, as extracted from the archive) are read from
CIFAR_ROOT; ``build_cifar.py`` writes the records beside them under ``rec/``.
"""

import math
import os
from os import path

from config import dataset_files

# --- dataset ------------------------------------------------------------------------
# The folder holding cifar-10-batches-py/ (or cifar-10-batches-bin/), or that folder itself.
_CIFAR_HOME = os.environ.get("CIFAR_HOME", "/raid/datasets/cifar10")
CIFAR_ROOT = _CIFAR_HOME
CIFAR_DATASET = "cifar10"
CIFAR_LAYOUT = "auto"   # "python", "binary", or "auto" (binary when both are there)
CIFAR_LABELS = "fine"
NUM_CLASSES = 10
_TRAIN_FILE_IMAGES = 50000
NUM_TEST_IMAGES = 10000
# Section 4.2: the schedule was chosen on a 45k/5k train/val split (500 per class here);
# the paper then trained on all 50k. VAL_SIZE = 0 trains on all 50k and validates on the
# test set.
VAL_SIZE = 5000
VAL_SPLIT_SEED = 0

MX_OUTPUT = path.join(_CIFAR_HOME, "rec", "split_45k_5k")
# Per-pixel mean (3x32x32, MXNet .nd), subtracted on the device instead of DATASET_MEAN.
(_, _, _, TRAIN_MX_REC, VAL_MX_REC, TEST_MX_REC, DATASET_MEAN,
 MEAN_IMAGE) = dataset_files(
    MX_OUTPUT, MX_OUTPUT, "cifar10_mean.json")
RESIZE = 32             # stored as they are (PNG, lossless)
BUILD_SCRIPT = "build_cifar.py"   # named in "rebuild" messages

# --- training -----------------------------------------------------------------------
MODEL = "cifar_resnet"
# train_cifar.py --depth/--shortcut/--variant override these per run.
MODEL_PARAMS = {"depth": 20, "shortcut": "A", "variant": "original"}
INPUT_SIZE = 32
BATCH_SIZE = 128        # per device: with N GPUs use 128 // N to keep the paper's batch
NUM_DEVICES = 1
DECODE_THREADS = 1      # 32x32 PNGs decode at ~100k img/s a thread; more would only compete
# Pad 4 on each side, crop 32x32 at random, flip; evaluation sees the un-padded image.
# Padding happens before the mean is subtracted, so it is filled with about the mean
# colour (CIFAR-10: 125, 123, 114): after subtraction it is ~0, as in fb.resnet.torch,
# which pads normalised images with zeros. (ImageRecordIter's default fill is 255.)
AUGMENTATION = {"pad": 4, "fill_value": 121, "rand_crop": True, "rand_mirror": True}
# He et al. initialise as in their PReLU paper (arXiv 1502.01852): Gaussian, fan-in, x2.
INITIALIZER = "msra"
_PAPER_UPDATES = 64000
# 64k updates at ceil(45000 / 128) = 352 per epoch: 182 epochs (164 with VAL_SIZE = 0).
RECIPE = {"base": "paper-cifar-resnet", "num_epochs": math.ceil(
    _PAPER_UPDATES / math.ceil((_TRAIN_FILE_IMAGES - VAL_SIZE) / BATCH_SIZE))}
# Section 4.2, 110 layers: 0.01 until training error < 80% (about 400 updates), then 0.1.
# A fixed 400 updates here; the paper's trigger is the training error.
_WARMUP_RECIPE = {**RECIPE, "name": "paper-cifar-resnet-warmup",
                  "warmup": {"updates": 400, "begin_lr": 0.01}}
RECIPES_BY_DEPTH = {110: _WARMUP_RECIPE, 1202: _WARMUP_RECIPE}
LOG_INTERVAL = 50
SEED = 1
