"""Inception-ResNet-v2 on ILSVRC2015-CLS-LOC (Szegedy et al. 2016, arXiv 1602.07261).

The raw tree, label order and test split are GoogLeNet's (imported, not copied), so both
experiments train and test on the same images. The records are separate: the public
reproductions store images at 328 px and crop 299, GoogLeNet's records hold 256 px, so
these go to ``$IMAGENET_HOME/rec328``:

    python build_imagenet.py --config config.imagenet_inception_resnet_v2_config
    python train_inception_resnet_v2.py --checkpoints output/irv2 --prefix irv2
"""

import os
from os import path

from config import dataset_files
from config.imagenet_googlenet_config import (  # noqa: F401  (the config's public fields)
    BASE_PATH,
    DEVKIT_PATH,
    IMAGE_SETS_PATH,
    IMAGES_PATH,
    LABEL_ORDER,
    MX_OUTPUT,
    NUM_CLASSES,
    NUM_TEST_IMAGES,
    TEST_SPLIT_SEED,
    TRAIN_LIST,
    VAL_BLACKLIST,
    VAL_LABELS,
    VAL_LIST,
    WORD_IDS,
)

# --- lists, records and mean of this experiment: their own folder --------------------
_RECORDS = path.join(MX_OUTPUT, "rec328")
(TRAIN_MX_LIST, VAL_MX_LIST, TEST_MX_LIST, TRAIN_MX_REC, VAL_MX_REC, TEST_MX_REC,
 DATASET_MEAN, _) = dataset_files(
    path.join(_RECORDS, "lists"), _RECORDS, "imagenet_mean.json")

# Shorter side stored at 328, aspect kept; both public reproductions resized to 328x328
# (square), so their center 299 crop sees a slightly different window.
RESIZE = 328
ENCODING_QUALITY = 95

# --- training -----------------------------------------------------------------------
MODEL = "inception_resnet_v2"
# The released layout (55.8M parameters at 1000 classes); [5, 10, 5] is the paper's figure.
MODEL_PARAMS = {"blocks": [10, 20, 10], "scales": [0.17, 0.10, 0.20]}
INPUT_SIZE = 299        # training crop and evaluation crop(s)
BATCH_SIZE = 32         # per device: the Torch reproduction's 32 x 2 (BN normalizes per device)
NUM_DEVICES = 2
DECODE_THREADS = os.cpu_count() or 1
# fb.resnet.torch's ImageNet augmentation, which the Torch reproduction trained with:
# random-size crop (8%-100% of the area, aspect 3/4-4/3) resized to 299, mirror, colour
# jitter 0.4 and PCA lighting 0.1. The paper's TF-slim pipeline is similar (area 5%-100%).
AUGMENTATION = {"random_resized_crop": True, "min_random_area": 0.08, "max_random_area": 1.0,
                "min_aspect_ratio": 3 / 4, "max_aspect_ratio": 4 / 3, "rand_mirror": True,
                "brightness": 0.4, "contrast": 0.4, "saturation": 0.4, "pca_noise": 0.1}
# The Torch reproduction's schedule (SGD 0.045, x0.96 every 12,800 updates of batch 64, 90
# epochs) with momentum 0.9; its one run with a result, the published 24.407% / 7.407%,
# used momentum 0.4737: "torch-inception-resnet-v2-sgd-setting1" (recipes.py lists how
# that run differed from what this project can train). Alternatives:
# "paper-inception-resnet-v2-rmsprop" (the paper's, without RMSProp momentum in MXNet),
# "caffe-inception-resnet-v2-sgd".
RECIPE = "torch-inception-resnet-v2-sgd"
LOG_INTERVAL = 250      # batches between speed lines, as the book's Speedometer(batch, 250)
# The health monitor's defaults, written out: a dying network shows within hours.
HEALTH = {"interval": 100, "dead_fraction": 0.99, "patience": 3}
SEED = 42
