"""An image-folder tree as a build's split lists: ``<root>/<split>/<class>/<image>``.

``train/`` and ``test/`` are required, ``val/`` optional (else validation is held out of the
training images). Labels follow the sorted class folders of ``train/`` or ``FOLDER_CLASSES``;
files that are not images are ignored and reported. The rules in full: docs/data.md.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pyimagesearch.config import ConfigError, Settings
from pyimagesearch.data.dataset import DatasetError
from pyimagesearch.data.records.lists import ListEntry, split_entries, unsafe_path_reason
from pyimagesearch.data.sources.cifar import train_val_indices

logger = logging.getLogger(__name__)

# Suffixes of the formats Pillow decodes that photographs come in (compared lower-case).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".bmp", ".gif", ".tif",
                            ".tiff", ".webp", ".ppm", ".pgm", ".pbm"})
FOLDER_SPLITS = ("train", "val", "test")
# Ignored files named per split in the manifest; the count is always complete.
MAX_IGNORED_LISTED = 100


@dataclass
class ScannedSplit:
    """The images found under one split folder, and what was passed over."""

    paths: list[str] = field(default_factory=list)      # relative to the root, "/"-joined
    labels: list[int] = field(default_factory=list)
    ignored: list[dict[str, str]] = field(default_factory=list)

    def class_counts(self, num_classes: int) -> list[int]:
        return np.bincount(np.asarray(self.labels, dtype=np.int64),
                           minlength=num_classes).tolist()

    def ignore(self, relative: str, reason: str) -> None:
        self.ignored.append({"path": _shown(relative), "reason": reason})


def _listing_sha256(scanned: ScannedSplit, root: Path) -> str:
    """A fingerprint of what was listed: every path with its size (no image is read)."""
    digest = hashlib.sha256()
    for path in scanned.paths:
        try:
            size = os.stat(root / path).st_size
        except OSError:  # a dangling link: the build skips and lists it
            size = -1
        digest.update(f"{path}\t{size}\n".encode())
    return digest.hexdigest()


def _entries(folder: Path) -> list[os.DirEntry]:
    """A folder's entries sorted by name; one that cannot be listed is a clear error."""
    try:
        with os.scandir(folder) as entries:
            return sorted(entries, key=lambda entry: entry.name)
    except OSError as exc:
        raise DatasetError(f"cannot be listed ({exc.strerror or exc})", folder) from None


def _shown(relative: str) -> str:
    """A path as people and UTF-8 text can take it: a byte that is not UTF-8 (a name from an
    old zip archive, read with Python's surrogate escapes) is shown as ``\\xe9``."""
    return os.fsencode(relative).decode("utf-8", "backslashreplace")


def _check_name(relative: str, root: Path) -> None:
    if _shown(relative) != relative:
        raise DatasetError(f"file name '{_shown(relative)}' is not UTF-8 (as in old zip "
                           f"archives), which a .lst file cannot hold; rename it (convmv "
                           f"converts such names)", root)
    for bad, what in (("\t", "a tab"), ("\n", "a newline"), ("\r", "a carriage return")):
        if bad in relative:
            raise DatasetError(f"file name {relative!r} contains {what}, which a .lst line "
                               f"cannot hold; rename it", root)
    reason = unsafe_path_reason(relative)
    if reason:
        raise DatasetError(f"file name {relative!r} {reason}; rename it", root)


class ImageFolderSource:
    """The split lists of ``<FOLDER_ROOT>/<split>/<class>/<image>``.

    Raises :class:`DatasetError` (naming the folder or file) for a tree without ``train/``
    or ``test/``, a class without training images, an unknown class folder, or a file name
    that a list cannot hold; :class:`ConfigError` when ``NUM_CLASSES`` or
    ``FOLDER_CLASSES`` do not fit the tree.
    """

    builder = "folders"
    required_fields = ("FOLDER_ROOT", "NUM_CLASSES")

    def __init__(self, config: Settings) -> None:
        self.config = config
        self.root = Path(config.FOLDER_ROOT)
        self.image_root = str(self.root)
        if not self.root.is_dir():
            raise DatasetError("image-folder root (FOLDER_ROOT) not found or not a folder",
                               self.root)
        missing = [name for name in ("train", "test") if not (self.root / name).is_dir()]
        if missing:
            raise DatasetError(f"has no {' and no '.join(f'{m}/' for m in missing)} folder; "
                               f"an image-folder tree holds train/<class>/<image> and "
                               f"test/<class>/<image> (and optionally val/)", self.root)
        train_folders = self._class_folders("train")
        given = config.FOLDER_CLASSES
        if given is None:
            names = train_folders
            self.label_order = "sorted"
            if not names:
                raise DatasetError("holds no class folders", self.root / "train")
        else:
            names = list(given)
            self.label_order = "config"
            absent = [name for name in names if name not in train_folders]
            if absent:
                raise DatasetError(f"has no folder for {len(absent)} class(es) of "
                                   f"FOLDER_CLASSES: {', '.join(absent[:10])}; a class "
                                   f"without training images cannot be learned",
                                   self.root / "train")
        if len(names) != int(config.NUM_CLASSES):
            raise ConfigError(f"{config.source}: NUM_CLASSES is {config.NUM_CLASSES}, but "
                              f"{self.root / 'train'} holds {len(names)} class folders"
                              f"{' in FOLDER_CLASSES' if given is not None else ''}")
        self.classes: list[dict[str, Any]] = [{"label": label, "name": name}
                                              for label, name in enumerate(names)]
        self._label_of = {name: label for label, name in enumerate(names)}
        self.scanned = {split: self._scan(split) for split in FOLDER_SPLITS
                        if (self.root / split).is_dir()}
        self.validation: dict[str, Any] = {}

    # --- reading the tree ------------------------------------------------------------
    def _class_folders(self, split: str) -> list[str]:
        return [entry.name for entry in _entries(self.root / split)
                if entry.is_dir() and not entry.name.startswith(".")]

    def _scan(self, split: str) -> ScannedSplit:
        scanned = ScannedSplit()
        folder = self.root / split
        for entry in _entries(folder):
            relative = f"{split}/{entry.name}"
            if not entry.is_dir():
                scanned.ignore(relative, "a file beside the class folders (images go in "
                                         "<split>/<class>/)")
                continue
            if entry.name.startswith("."):
                scanned.ignore(relative, "hidden folder")
                continue
            label = self._label_of.get(entry.name)
            if label is None:
                if self.config.FOLDER_CLASSES is not None:
                    scanned.ignore(relative, "class not in FOLDER_CLASSES")
                    continue
                raise DatasetError(f"class folder {entry.name!r} is not a class of train/ "
                                   f"({len(self.classes)} classes); every split must use "
                                   f"the training classes (or list the classes in "
                                   f"FOLDER_CLASSES)", folder)
            self._scan_class(split, entry.name, label, scanned)
        if split == "train":
            counts = scanned.class_counts(len(self.classes))
            empty = [info["name"] for info in self.classes if counts[info["label"]] == 0]
            if empty:
                raise DatasetError(f"{len(empty)} class folder(s) hold no image file: "
                                   f"{', '.join(empty[:10])}; a class cannot be learned "
                                   f"without examples", folder)
        if scanned.ignored:
            logger.info("%s: %d file(s) or folder(s) ignored (not images), e.g. %s: %s",
                        split, len(scanned.ignored), scanned.ignored[0]["path"],
                        scanned.ignored[0]["reason"])
        return scanned

    def _scan_class(self, split: str, name: str, label: int, scanned: ScannedSplit) -> None:
        for entry in _entries(self.root / split / name):
            relative = f"{split}/{name}/{entry.name}"
            suffix = os.path.splitext(entry.name)[1].lower()
            if entry.name.startswith("."):
                reason = "hidden file"
            elif entry.is_dir():
                reason = "a folder inside a class folder (not read)"
            elif suffix not in IMAGE_SUFFIXES:
                reason = f"not an image file name (suffix {suffix or 'none'!r})"
            else:
                _check_name(relative, self.root)
                scanned.paths.append(relative)
                scanned.labels.append(label)
                continue
            scanned.ignore(relative, reason)

    # --- the lists -------------------------------------------------------------------
    def split_lists(self) -> dict[str, list[ListEntry]]:
        train, test = self.scanned["train"], self.scanned["test"]
        val_size, seed = int(self.config.VAL_SIZE), int(self.config.VAL_SPLIT_SEED)
        training = train.paths, train.labels
        if "val" in self.scanned:
            validating = self.scanned["val"].paths, self.scanned["val"].labels
            self.validation = {"source": "val", "size": len(validating[0])}
        elif val_size == 0:
            validating = test.paths, test.labels
            self.validation = {"source": "test", "size": len(test.paths),
                               "note": "VAL_SIZE = 0 and no val/ folder: the validation "
                                       "records are a copy of the test records, so "
                                       "validation error is test error"}
        else:
            if val_size >= len(train.paths):
                raise ConfigError(f"{self.config.source}: VAL_SIZE = {val_size} cannot be held "
                                  f"out of {len(train.paths)} training images")
            train_idx, val_idx = train_val_indices(np.asarray(train.labels, dtype=np.int64),
                                                   val_size, seed)
            self._check_training_kept([train.labels[i] for i in train_idx])
            training = [train.paths[i] for i in train_idx], [train.labels[i] for i in train_idx]
            validating = [train.paths[i] for i in val_idx], [train.labels[i] for i in val_idx]
            self.validation = {
                "source": "train", "size": val_size, "seed": seed,
                "method": "pyimagesearch.data.sources.cifar.train_val_indices (stratified)",
                "val_paths_sha256": hashlib.sha256(
                    "\n".join(validating[0]).encode()).hexdigest()}
        # The training list's order is drawn with the same seed.
        return split_entries(training, validating, (test.paths, test.labels), seed)

    def _check_training_kept(self, kept: list[int]) -> None:
        """Refuse a ``VAL_SIZE`` that holds out every training image of a class."""
        counts, labels = self.scanned["train"].class_counts(len(self.classes)), set(kept)
        emptied = [f"{info['name']} ({counts[info['label']]} image(s))"
                   for info in self.classes if info["label"] not in labels]
        if emptied:
            more = f" and {len(emptied) - 10} more" if len(emptied) > 10 else ""
            raise ConfigError(
                f"{self.config.source}: VAL_SIZE = {self.config.VAL_SIZE} holds out every "
                f"training image of {len(emptied)} class(es): {', '.join(emptied[:10])}{more}; "
                f"a class cannot be learned without examples: lower VAL_SIZE, or give the tree "
                f"a val/ folder")

    def description(self) -> dict[str, Any]:
        if not self.validation:
            self.split_lists()
        ignored = {split: {"count": len(scanned.ignored),
                           "files": scanned.ignored[:MAX_IGNORED_LISTED]}
                   for split, scanned in self.scanned.items()}
        return {"folders": {"root": str(self.root.resolve()),
                            "splits_found": sorted(self.scanned, key=FOLDER_SPLITS.index),
                            "class_counts": {split: scanned.class_counts(len(self.classes))
                                             for split, scanned in self.scanned.items()},
                            "ignored": ignored},
                "validation": dict(self.validation)}

    def fingerprints(self) -> dict[str, Any]:
        return {f"{split}/": {"path": str(self.root / split), "images": len(scanned.paths),
                              "listing_sha256": _listing_sha256(scanned, self.root)}
                for split, scanned in self.scanned.items()}
