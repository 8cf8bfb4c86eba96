"""An image-folder dataset end to end, on real photographs: the layout for your own data.

``build_demo_dataset.py --config config.demo_folder_config`` writes a small class-folder
tree of crops of scikit-learn's two sample photographs (four classes: the upper and lower
half of each photo; test crops from a part of each photo that no training crop touches,
see ``pyimagesearch/data/sources/sample_photos.py``). ``build_imagenet.py`` then reads it as it
would read any ``<root>/<split>/<class>/<image>`` tree: classes in sorted folder order,
validation carved out of train (stratified, seeded) because the tree has no val/ folder,
unreadable files skipped and listed, JPEG records, the channel mean, a manifest.
``train_cifar.py --depth 8`` trains an 8-layer CIFAR ResNet on it in seconds.

For your own tree copy this file, point FOLDER_ROOT at it, set NUM_CLASSES, RESIZE and
INPUT_SIZE, and pick a model and recipe.
"""

import os
from os import path

from config import dataset_files

_REPO = path.dirname(path.dirname(path.abspath(__file__)))
_HOME = os.environ.get("PHOTOS_HOME", path.join(_REPO, "datasets", "photos"))

# --- dataset ------------------------------------------------------------------------
DATASET_LAYOUT = "folders"
FOLDER_ROOT = path.join(_HOME, "tree")     # train/<class>/*.jpg, test/<class>/*.jpg
FOLDER_CLASSES = None   # the sorted folder names; or a list giving the label order
NUM_CLASSES = 4
VAL_SIZE = 40           # carved out of train/ (stratified) since the tree has no val/
VAL_SPLIT_SEED = 0
DEMO_IMAGE_SIZE = 32    # side of the photo crops build_demo_dataset.py writes
DEMO_SEED = 0

MX_OUTPUT = path.join(_HOME, "rec")
(TRAIN_MX_LIST, VAL_MX_LIST, TEST_MX_LIST, TRAIN_MX_REC, VAL_MX_REC, TEST_MX_REC,
 DATASET_MEAN, _) = dataset_files(
    MX_OUTPUT, MX_OUTPUT, "photos_mean.json")
RESIZE = 32
RECORD_ENCODING = "jpeg"
ENCODING_QUALITY = 95
BUILD_SCRIPT = "build_imagenet.py"

# --- training -----------------------------------------------------------------------
MODEL = "cifar_resnet"
MODEL_PARAMS = {"depth": 8, "shortcut": "A", "variant": "original"}
INPUT_SIZE = 32
BATCH_SIZE = 32
DECODE_THREADS = 1
AUGMENTATION = {"pad": 4, "fill_value": 127, "rand_crop": True, "rand_mirror": True}
INITIALIZER = "msra"
RECIPE = {"base": "paper-cifar-resnet", "name": "demo-folder-resnet", "num_epochs": 6,
          "schedule": {"kind": "multi_step", "factor": 0.1, "at_epochs": [4]}}
LOG_INTERVAL = 5
SEED = 1
