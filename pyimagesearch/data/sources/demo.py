"""The embedded demos: a miniature ILSVRC2015 tree made of scikit-learn's handwritten digits
(:func:`write_demo_dataset`), or for image-folder configs a tree of real photographs
(:mod:`.sample_photos`). Written once, deterministic given ``DEMO_SEED``: docs/data.md.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from pyimagesearch.config import ConfigError, Settings
from pyimagesearch.data.dataset import DatasetError
from pyimagesearch.data.images import encode_jpeg
from pyimagesearch.data.sources.sample_photos import write_photo_demo
from pyimagesearch.files import PARTIAL, partial_path

logger = logging.getLogger(__name__)

# (WordNet id, name as map_clsloc.txt spells names: underscores, no spaces), digit order.
DIGIT_CLASSES = (
    ("n04917363", "digit_zero"), ("n02318491", "digit_one"), ("n08650178", "digit_two"),
    ("n01266305", "digit_three"), ("n06024832", "digit_four"), ("n03497521", "digit_five"),
    ("n09183406", "digit_six"), ("n05762219", "digit_seven"), ("n02649970", "digit_eight"),
    ("n07401558", "digit_nine"),
)
STAMP_NAME = ".demo_dataset.json"
DEMO_FORMAT = 1
DEMO_JPEG_QUALITY = 92
_OLD = ".old-"
_FIELDS = ("BASE_PATH", "IMAGES_PATH", "IMAGE_SETS_PATH", "DEVKIT_PATH", "WORD_IDS",
           "TRAIN_LIST", "VAL_LIST", "VAL_LABELS", "VAL_BLACKLIST", "NUM_CLASSES",
           "DEMO_VAL_PER_CLASS", "DEMO_BLACKLIST_SIZE", "DEMO_IMAGE_SIZE", "DEMO_SEED")

# Mean ground and ink colours (R, G, B); per-image jitter is added around them.
_GROUND = np.array([105.0, 62.0, 30.0])
_INK = np.array([245.0, 212.0, 125.0])


@dataclass(frozen=True)
class DemoResult:
    """What :func:`write_demo_dataset` found or wrote."""

    path: Path
    created: bool
    num_classes: int
    num_train: int
    num_val: int
    num_blacklisted: int

    def summary(self) -> str:
        state = "written" if self.created else "already complete, nothing to do"
        return (f"demo dataset at {self.path}: {state}\n"
                f"  {self.num_classes} classes, {self.num_train} training images, "
                f"{self.num_val} validation images ({self.num_blacklisted} blacklisted)")


def _parameters(config: Settings) -> dict[str, Any]:
    base = Path(config.BASE_PATH)
    layout = {}
    for name in ("IMAGES_PATH", "IMAGE_SETS_PATH", "DEVKIT_PATH", "WORD_IDS", "TRAIN_LIST",
                 "VAL_LIST", "VAL_LABELS", "VAL_BLACKLIST"):
        path = Path(getattr(config, name))
        try:
            layout[name] = path.relative_to(base).as_posix()
        except ValueError:
            raise ConfigError(f"{config.source}: {name}={path} must lie inside "
                              f"BASE_PATH={base} for the demo tree") from None
    return {"format": DEMO_FORMAT, "seed": int(config.DEMO_SEED),
            "val_per_class": int(config.DEMO_VAL_PER_CLASS),
            "blacklist_size": int(config.DEMO_BLACKLIST_SIZE),
            "image_size": int(config.DEMO_IMAGE_SIZE), "quality": DEMO_JPEG_QUALITY,
            "classes": [list(item) for item in DIGIT_CLASSES], "layout": layout}


def render_digit(digit: np.ndarray, size: int, rng: np.random.RandomState) -> np.ndarray:
    """One 8x8 digit (values 0-16) as a ``size`` x ``size`` RGB ``uint8`` image."""
    ink = cv2.resize(digit.astype(np.float32) / 16.0, (size, size),
                     interpolation=cv2.INTER_CUBIC)
    ink = np.clip(ink, 0.0, 1.0)[:, :, None]
    ground = _GROUND + rng.uniform(-25, 25, 3)
    # A gentle light gradient across the ground, in a random direction.
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:size, 0:size] / max(size - 1, 1) - 0.5
    shade = 1.0 + 0.3 * (np.cos(angle) * xs + np.sin(angle) * ys)
    ground_image = ground * shade[:, :, None]
    ink_colour = _INK + rng.uniform(-20, 10, 3)
    image = ground_image * (1.0 - ink) + ink_colour * ink + rng.normal(0, 5, (size, size, 3))
    return np.clip(image + 0.5, 0, 255).astype(np.uint8)


def _plan(config: Settings, targets: np.ndarray) -> tuple[list[int], list[int], list[int]]:
    """Training sample indices, validation sample indices (in val order), blacklist."""
    rng = np.random.RandomState(int(config.DEMO_SEED))
    per_class = int(config.DEMO_VAL_PER_CLASS)
    train: list[int] = []
    val: list[int] = []
    for digit in range(len(DIGIT_CLASSES)):
        members = rng.permutation(np.flatnonzero(targets == digit))
        if not 0 < per_class < len(members):
            raise ConfigError(f"{config.source}: DEMO_VAL_PER_CLASS must lie in "
                              f"1..{len(members) - 1}, not {per_class}")
        val += members[:per_class].tolist()
        train += members[per_class:].tolist()
    val = [val[i] for i in rng.permutation(len(val))]
    size = int(config.DEMO_BLACKLIST_SIZE)
    if not 0 < size < len(val):
        raise ConfigError(f"{config.source}: DEMO_BLACKLIST_SIZE must lie in "
                          f"1..{len(val) - 1}, not {size}")
    blacklist = sorted((rng.choice(len(val), size, replace=False) + 1).tolist())
    return sorted(train), val, blacklist


def _write_tree(root: Path, config: Settings, parameters: dict[str, Any]) -> dict[str, int]:
    """Write the whole tree under ``root``; return {relative path: size} of every file."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images, targets = digits.images, digits.target
    train, val, blacklist = _plan(config, targets)
    layout = {name: root / rel for name, rel in parameters["layout"].items()}
    size = int(config.DEMO_IMAGE_SIZE)
    colour_rng = np.random.RandomState(int(config.DEMO_SEED) + 1)
    # Colours are drawn in sample order, so an image looks the same whichever split it is in.
    rendered = [render_digit(images[i], size, colour_rng) for i in range(len(images))]

    def save(path: Path, rgb: np.ndarray) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(encode_jpeg(rgb, DEMO_JPEG_QUALITY))

    train_lines = []
    for number, sample in enumerate(sorted(train, key=lambda i: (DIGIT_CLASSES[targets[i]][0],
                                                                 i)), start=1):
        wnid = DIGIT_CLASSES[targets[sample]][0]
        save(layout["IMAGES_PATH"] / "train" / wnid / f"{wnid}_{sample}.JPEG", rendered[sample])
        train_lines.append(f"{wnid}/{wnid}_{sample} {number}")
    val_lines, truth_lines = [], []
    for number, sample in enumerate(val, start=1):
        name = f"ILSVRC2012_val_{number:08d}"
        save(layout["IMAGES_PATH"] / "val" / f"{name}.JPEG", rendered[sample])
        val_lines.append(f"{name} {number}")
        truth_lines.append(str(int(targets[sample]) + 1))

    def write_lines(path: Path, lines: list[str]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")

    write_lines(layout["WORD_IDS"], [f"{wnid} {class_id} {name}" for class_id, (wnid, name)
                                     in enumerate(DIGIT_CLASSES, start=1)])
    write_lines(layout["TRAIN_LIST"], train_lines)
    write_lines(layout["VAL_LIST"], val_lines)
    write_lines(layout["VAL_LABELS"], truth_lines)
    write_lines(layout["VAL_BLACKLIST"], [str(index) for index in blacklist])
    return {path.relative_to(root).as_posix(): path.stat().st_size
            for path in sorted(root.rglob("*")) if path.is_file()}


def _read_stamp(base: Path) -> dict[str, Any] | None:
    try:
        return json.loads((base / STAMP_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _is_complete(base: Path, stamp: dict[str, Any] | None, parameters: dict[str, Any]) -> bool:
    if not stamp or stamp.get("parameters") != parameters:
        return False
    files = stamp.get("files", {})
    return bool(files) and all((base / rel).is_file() and (base / rel).stat().st_size == size
                               for rel, size in files.items())


def _counts(base: Path, parameters: dict[str, Any]) -> list[int]:
    """Lines of the training list, the validation list and the blacklist."""
    return [len((base / parameters["layout"][name]).read_text(encoding="utf-8").splitlines())
            for name in ("TRAIN_LIST", "VAL_LIST", "VAL_BLACKLIST")]


def _remove_leftovers(base: Path) -> None:
    """Delete temporary trees of interrupted runs (their process is gone)."""
    for marker in (PARTIAL, _OLD):
        for candidate in base.parent.glob(f".{base.name}{marker}*"):
            pid = candidate.name.rsplit(marker, 1)[1]
            if not pid.isdigit() or int(pid) == os.getpid():
                continue
            try:
                os.kill(int(pid), 0)
            except ProcessLookupError:
                shutil.rmtree(candidate, ignore_errors=True)
                logger.info("removed %s, left by an interrupted run", candidate)
            except PermissionError:
                pass


def write_demo_dataset(config: Settings) -> DemoResult:
    """Write the digits mini-ILSVRC tree at ``config.BASE_PATH`` unless it is already there
    (same seed, same bytes); a ``BASE_PATH`` that this function did not write is refused."""
    config.require(*_FIELDS)
    if int(config.NUM_CLASSES) != len(DIGIT_CLASSES):
        raise ConfigError(f"{config.source}: the digits demo has "
                          f"{len(DIGIT_CLASSES)} classes, NUM_CLASSES is {config.NUM_CLASSES}")
    base = Path(config.BASE_PATH)
    parameters = _parameters(config)
    base.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(base)

    stamp = _read_stamp(base)
    created = not _is_complete(base, stamp, parameters)
    if created and base.exists() and stamp is None:
        raise DatasetError("exists but was not written by build_demo_dataset.py; move it away "
                           "or point the config (DIGITS_HOME) elsewhere", base)
    if created:
        temporary = partial_path(base, hidden=True)
        shutil.rmtree(temporary, ignore_errors=True)
        try:
            files = _write_tree(temporary, config, parameters)
            new_stamp = {"parameters": parameters, "files": files}
            (temporary / STAMP_NAME).write_text(json.dumps(new_stamp, indent=1) + "\n",
                                                encoding="utf-8")
            if base.exists():
                # An older demo tree with other parameters: swap, then delete it.
                logger.info("replacing %s (made with other parameters)", base)
                old = base.parent / f".{base.name}{_OLD}{os.getpid()}"
                os.rename(base, old)
                os.rename(temporary, base)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.rename(temporary, base)
        finally:
            shutil.rmtree(temporary, ignore_errors=True)
    return DemoResult(base, created, len(DIGIT_CLASSES), *_counts(base, parameters))


def write_demo(config: Settings) -> str:
    """The demo tree ``config`` asks for (photographs for ``DATASET_LAYOUT = "folders"``),
    as ``build_demo_dataset.py`` writes it; returns the summary to print."""
    if config.DATASET_LAYOUT == "folders":
        return write_photo_demo(config)
    return write_demo_dataset(config).summary()
