"""CIFAR-10 ResNets as the Torch reproduction (gcr/torch-residual-networks) trains them.

200 epochs of SGD 0.1, divided by 10 at epochs 80 and 160 (its README says "then to 0.01 at
160 epochs", read here as 0.001; its train-cifar.lua makes that drop at epoch 120), on all
50k training images, validating on the test set (so the per-epoch validation error in the
logs is test error, as in that reproduction's curves); for 110 layers a warm-up at 0.001
for the first 400 updates (the paper uses 0.01; see ``config/cifar10_resnet_config.py``).
Momentum 0.9, weight decay 1e-4 and batch 128 are the paper's: that README states none of
them (its train-cifar.lua uses the same three, with Nesterov momentum; this is plain SGD
momentum). Same data, augmentation and networks as the paper config; only the schedule and
the split differ.
"""

from os import path

from config import dataset_files
from config.cifar10_resnet_config import *  # noqa: F403
from config.cifar10_resnet_config import CIFAR_ROOT

VAL_SIZE = 0            # train on 50k; the val records are a copy of the test records
MX_OUTPUT = path.join(CIFAR_ROOT, "rec", "full_50k")
(_, _, _, TRAIN_MX_REC, VAL_MX_REC, TEST_MX_REC, DATASET_MEAN,
 MEAN_IMAGE) = dataset_files(
    MX_OUTPUT, MX_OUTPUT, "cifar10_mean.json")

RECIPE = {"base": "paper-cifar-resnet", "name": "torch-cifar-resnet",
          "source": "Torch reproduction of He et al. 2016 (gcr/torch-residual-networks): 200 epochs, /10 at 80 and 160",
          "num_epochs": 200, "schedule": {"kind": "multi_step", "factor": 0.1, "at_epochs": [80, 160]}}
_WARMUP_RECIPE = {**RECIPE, "name": "torch-cifar-resnet-warmup",
                  "warmup": {"updates": 400, "begin_lr": 0.001}}
RECIPES_BY_DEPTH = {110: _WARMUP_RECIPE, 1202: _WARMUP_RECIPE}
