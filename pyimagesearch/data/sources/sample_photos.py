"""A small image-folder tree of real photographs, from the two that scikit-learn ships.

Each photo gives two classes (its upper and lower half), each image a random square crop of
a half; training and test crops come from alternate vertical stripes, so the splits share no
pixel. No ``val/`` folder. Written once per parameters: docs/data.md.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from pyimagesearch.config import Settings
from pyimagesearch.data.dataset import DatasetError
from pyimagesearch.data.images import encode_jpeg
from pyimagesearch.files import partial_path

STAMP_NAME = ".sample_photos.json"
PHOTOS = ("china", "flower")
HALVES = ("upper", "lower")
JPEG_QUALITY = 92


@dataclass(frozen=True)
class PhotoTree:
    """The parameters of a tree (what its stamp records)."""

    image_size: int = 32
    crop_size: int = 80
    train_per_class: int = 120
    test_per_class: int = 20
    seed: int = 0

    @property
    def classes(self) -> list[str]:
        return sorted(f"{photo}_{half}" for photo in PHOTOS for half in HALVES)


def _photos() -> dict[str, np.ndarray]:
    from sklearn.datasets import load_sample_images

    bunch = load_sample_images()
    return {Path(name).stem: image for name, image in zip(bunch.filenames, bunch.images)}


def _crops(part: np.ndarray, stripes: list[int], count: int, tree: PhotoTree,
           rng: np.random.RandomState) -> list[np.ndarray]:
    """``count`` random crops, each inside one of the vertical ``stripes`` of ``part``."""
    height = part.shape[0]
    side = tree.crop_size
    if height < side:
        raise ValueError(f"crop_size {side} does not fit a half photo of height {height}")
    crops = []
    for number in range(count):
        stripe = stripes[number % len(stripes)]
        top = rng.randint(0, height - side + 1)
        crop = part[top:top + side, stripe * side:(stripe + 1) * side]
        crops.append(cv2.resize(crop, (tree.image_size, tree.image_size),
                                interpolation=cv2.INTER_AREA))
    return crops


def _write_tree(folder: Path, tree: PhotoTree) -> None:
    rng = np.random.RandomState(tree.seed)
    for photo, image in sorted(_photos().items()):
        height, width = image.shape[:2]
        # Vertical stripes one crop wide, taken in turn by train and test: the splits share
        # no pixel but see the same kinds of scenery.
        stripes = list(range(width // tree.crop_size))
        for row, half in enumerate(HALVES):
            part = image[row * height // 2:(row + 1) * height // 2]
            for split, count, mine in (("train", tree.train_per_class, stripes[0::2]),
                                       ("test", tree.test_per_class, stripes[1::2])):
                target = folder / split / f"{photo}_{half}"
                target.mkdir(parents=True, exist_ok=True)
                for number, crop in enumerate(_crops(part, mine, count, tree, rng)):
                    (target / f"{number:04d}.jpg").write_bytes(encode_jpeg(crop, JPEG_QUALITY))
    (folder / STAMP_NAME).write_text(json.dumps(asdict(tree)) + "\n", encoding="utf-8")


def write_photo_folders(root: str | Path, tree: PhotoTree | None = None) -> bool:
    """Write the tree at ``root`` unless it is there with the same parameters.

    Returns True when it was written. A ``root`` that exists without the stamp (someone
    else's folder), or with other parameters, is an error naming it: nothing is deleted.
    """
    tree = tree or PhotoTree()
    root = Path(root)
    stamp = root / STAMP_NAME
    if root.exists():
        try:
            found = json.loads(stamp.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise DatasetError("exists and is not a sample-photo tree (no readable "
                               f"{STAMP_NAME}); choose another folder", root) from None
        if found != asdict(tree):
            raise DatasetError(f"holds a sample-photo tree with other parameters ({found}); "
                               f"remove it or choose another folder", root)
        return False
    root.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(root)
    shutil.rmtree(partial, ignore_errors=True)
    try:
        _write_tree(partial, tree)
        os.replace(partial, root)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return True


def write_photo_demo(config: Settings) -> str:
    """``build_demo_dataset.py`` for an image-folder config: the tree at ``FOLDER_ROOT``,
    crops of ``DEMO_IMAGE_SIZE`` px drawn with ``DEMO_SEED``; returns the summary line."""
    config.require("FOLDER_ROOT")
    tree = PhotoTree(image_size=int(config.DEMO_IMAGE_SIZE), seed=int(config.DEMO_SEED))
    written = write_photo_folders(config.FOLDER_ROOT, tree)
    state = "written" if written else "already complete, nothing to do"
    return (f"sample-photo tree at {config.FOLDER_ROOT}: {state}\n"
            f"  {len(tree.classes)} classes ({', '.join(tree.classes)}), "
            f"{tree.train_per_class} training and {tree.test_per_class} test images each, "
            f"{tree.image_size}x{tree.image_size} px")
