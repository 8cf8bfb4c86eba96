"""Helpers of the tests that use a trained model (export, classification, report).

Runs are trained with the real training core (``experiment.train``) on the tiny record
datasets of ``conftest.py``, a config ``.py`` per variant written by ``conftest.config_with``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from conftest import TINY, TREE_COLOURS, make_ilsvrc_tree, tree_image, write_config

# conftest.TINY (small batches, one decode thread, a fixed seed), the health monitor off.
FAST = {**TINY, "HEALTH": None}


def train_run(config: str | Path, folder: str | Path, prefix: str, end_epoch: int,
              start_epoch: int = 0, lr: float | None = None) -> Path:
    """Train (or resume) a run with the real training core; return its folder."""
    from pyimagesearch.config import load_config
    from pyimagesearch.training.experiment import RunRequest, train

    train(load_config(str(config)),
          RunRequest(str(folder), prefix, start_epoch=start_epoch, end_epoch=end_epoch, lr=lr),
          console=False)
    return Path(folder)


def build_large_dataset(root: Path, **fields: Any) -> Path:
    """A tiny dataset stored at 80 px (Inception-ResNet-v2 needs at least 75 px crops)."""
    from pyimagesearch.config import load_config
    from pyimagesearch.data.build.builder import build_dataset

    tree = make_ilsvrc_tree(root / "ILSVRC2015", classes=2, train_per_class=4,
                            val_per_class=1, blacklist=(), image_size=(96, 84))
    config = write_config(root / "large_config.py", tree.base, root / "out", NUM_CLASSES=2,
                          NUM_TEST_IMAGES=2, RESIZE=80, INPUT_SIZE=75, **{**FAST, **fields})
    build_dataset(load_config(str(config)))
    return config


def class_image(label: int, width: int, height: int, seed: int = 0) -> np.ndarray:
    """A new RGB image of the tiny tree's class ``label`` (its colour, gradient and noise)."""
    return tree_image(TREE_COLOURS[label], width, height, np.random.RandomState(seed))
