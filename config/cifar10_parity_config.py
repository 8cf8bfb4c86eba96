"""The learning-parity schedule: the paper's CIFAR-10 recipe compressed to 15 epochs.

``benchmarks/bench_parity.py`` trains ResNet-20 (option A) with this config beside an
independent PyTorch implementation of the same recipe on the same images. Everything is
``config.cifar10_folder_config`` (SGD 0.1, momentum 0.9, weight decay 1e-4, batch 128,
pad-4 crop + flip, per-pixel mean, He initialization, 45k/5k) except the schedule: 15
epochs, divided by 10 after epochs 8 and 12 (the peer's ``--epochs 15 --steps 8,12``).
"""

from config.cifar10_folder_config import *  # noqa: F403

RECIPE = {"base": "paper-cifar-resnet", "name": "parity-cifar-resnet-15-epochs",
          "num_epochs": 15, "schedule": {"kind": "multi_step", "factor": 0.1,
                                         "at_epochs": [8, 12]}}
RECIPES_BY_DEPTH = {}
