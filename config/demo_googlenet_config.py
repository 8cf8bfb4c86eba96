"""The embedded default: GoogLeNet on the digits mini-ILSVRC.

``build_demo_dataset.py`` writes a miniature ILSVRC2015 tree from scikit-learn's
handwritten digits (10 classes, 64x64 RGB JPEG) in exactly the real file formats, so
``build_imagenet.py``, training and evaluation run the real pipeline on it. Paths are
relative to the repository root unless DIGITS_HOME says otherwise.
"""

import os
from os import path

_REPO = path.dirname(path.dirname(path.abspath(__file__)))
MX_OUTPUT = os.environ.get("DIGITS_HOME", path.join(_REPO, "datasets", "digits"))
BASE_PATH = path.join(MX_OUTPUT, "ILSVRC2015")
IMAGES_PATH = path.join(BASE_PATH, "Data", "CLS-LOC")
IMAGE_SETS_PATH = path.join(BASE_PATH, "ImageSets", "CLS-LOC")
DEVKIT_PATH = path.join(BASE_PATH, "devkit", "data")

WORD_IDS = path.join(DEVKIT_PATH, "map_clsloc.txt")
TRAIN_LIST = path.join(IMAGE_SETS_PATH, "train_cls.txt")
VAL_LIST = path.join(IMAGE_SETS_PATH, "val.txt")
VAL_LABELS = path.join(DEVKIT_PATH, "ILSVRC2015_clsloc_validation_ground_truth.txt")
VAL_BLACKLIST = path.join(DEVKIT_PATH, "ILSVRC2015_clsloc_validation_blacklist.txt")

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

TRAIN_MX_LIST = path.join(MX_OUTPUT, "lists", "train.lst")
VAL_MX_LIST = path.join(MX_OUTPUT, "lists", "val.lst")
TEST_MX_LIST = path.join(MX_OUTPUT, "lists", "test.lst")
TRAIN_MX_REC = path.join(MX_OUTPUT, "rec", "train.rec")
VAL_MX_REC = path.join(MX_OUTPUT, "rec", "val.rec")
TEST_MX_REC = path.join(MX_OUTPUT, "rec", "test.rec")
DATASET_MEAN = path.join(MX_OUTPUT, "rec", "digits_mean.json")

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
