"""The embedded default: GoogLeNet on the digits mini-ILSVRC.

``build_demo_dataset.py`` writes a miniature ILSVRC2015 tree from scikit-learn's
handwritten digits (10 classes, 64x64 RGB JPEG) in exactly the real file formats, so
``build_imagenet.py``, training and evaluation run the real pipeline on it. Paths are
relative to the repository root unless DIGITS_HOME says otherwise.
"""

import os
from os import path

from config import dataset_files, ilsvrc_tree

_REPO = path.dirname(path.dirname(path.abspath(__file__)))
MX_OUTPUT = os.environ.get("DIGITS_HOME", path.join(_REPO, "datasets", "digits"))
(BASE_PATH, IMAGES_PATH, IMAGE_SETS_PATH, DEVKIT_PATH, WORD_IDS, TRAIN_LIST, VAL_LIST,
 VAL_LABELS, VAL_BLACKLIST) = ilsvrc_tree(MX_OUTPUT)

NUM_CLASSES = 10
NUM_TEST_IMAGES = 30 * NUM_CLASSES
TEST_SPLIT_SEED = 42
LABEL_ORDER = "map_clsloc"

# The demo tree: how many digits go to validation per class, and how many of those
# the blacklist drops (the real blacklist removes 1,762 of 50,000).
DEMO_VAL_PER_CLASS = 30
DEMO_BLACKLIST_SIZE = 12
DEMO_IMAGE_SIZE = 64
DEMO_SEED = 7

(TRAIN_MX_LIST, VAL_MX_LIST, TEST_MX_LIST, TRAIN_MX_REC, VAL_MX_REC, TEST_MX_REC,
 DATASET_MEAN, _) = dataset_files(
    path.join(MX_OUTPUT, "lists"), path.join(MX_OUTPUT, "rec"), "digits_mean.json")

RESIZE = 64
ENCODING_QUALITY = 95

MODEL = "googlenet"
INPUT_SIZE = 56         # 64 -> 56 keeps the book's 256 -> 224 crop ratio
BATCH_SIZE = 32
NUM_DEVICES = 1
DECODE_THREADS = 2
# The project's default augmentation minus the mirror (a mirrored digit is not the same
# digit): a random rotation up to 15 degrees where the book's rotate=15 turns every
# image by exactly 15 (README, "Differences from the book").
AUGMENTATION = {"rand_crop": True, "rand_mirror": False,
                "max_rotate_angle": 15, "max_shear_ratio": 0.1}
# The book's Adam experiment (#3), shortened: 10 epochs, the rate /10 at epoch 8.
RECIPE = {"base": "book-googlenet-adam", "name": "demo-googlenet-adam", "num_epochs": 10,
          "schedule": {"kind": "epoch_table", "table": {0: 1e-3, 8: 1e-4}}}
LOG_INTERVAL = 10
SEED = 42
