"""Where a build's split lists come from: the ILSVRC devkit or an image-folder tree.

The build packs, averages and writes the manifest the same way whatever the raw dataset
looks like; a :class:`SplitSource` gives what differs (the lists, the classes, their
provenance), and ``DATASET_LAYOUT`` picks one: ``"ilsvrc"`` or ``"folders"``.
"""

from __future__ import annotations

from typing import Any, Protocol

from pyimagesearch.config import ConfigError, Settings
from pyimagesearch.data.records.lists import ListEntry, split_entries
from pyimagesearch.data.sources.folders import ImageFolderSource
from pyimagesearch.data.sources.imagenethelper import ImageNetHelper


class SplitSource(Protocol):
    """What a raw dataset gives a build."""

    builder: str  # the manifest's "builder": "ilsvrc" or "folders"
    classes: list[dict[str, Any]]  # by label, each with at least "label" and "name"
    label_order: str  # how labels were numbered (recorded in the manifest)
    image_root: str  # the folder the lists' paths are relative to
    required_fields: tuple[str, ...]  # settings it reads, checked before any work

    def split_lists(self) -> dict[str, list[ListEntry]]:
        """The train, val and test lists, the training list in a shuffled order."""

    def description(self) -> dict[str, Any]:
        """What says how the splits were made (the manifest's ``build`` section)."""

    def fingerprints(self) -> dict[str, Any]:
        """What the lists were read from, with checksums (the manifest's ``sources``)."""


class IlsvrcSource:
    """The raw ILSVRC2015 tree, read by the book's :class:`ImageNetHelper`."""

    builder = "ilsvrc"
    required_fields = ("BASE_PATH", "IMAGES_PATH", "WORD_IDS", "TRAIN_LIST", "VAL_LIST",
                       "VAL_LABELS", "VAL_BLACKLIST", "NUM_TEST_IMAGES")

    def __init__(self, config: Settings) -> None:
        self.config = config
        self.helper = ImageNetHelper(config)
        self.classes = [info.as_dict() for info in self.helper.classes]
        self.label_order = self.helper.label_order
        self.image_root = str(config.IMAGES_PATH)

    def split_lists(self) -> dict[str, list[ListEntry]]:
        return make_split_lists(self.helper)

    def description(self) -> dict[str, Any]:
        # The training list's order is drawn with the same seed.
        return {"test_split": {"num_test_images": int(self.config.NUM_TEST_IMAGES),
                               "seed": int(self.config.TEST_SPLIT_SEED)}}

    def fingerprints(self) -> dict[str, Any]:
        return self.helper.fingerprints()


def make_split_lists(helper: ImageNetHelper) -> dict[str, list[ListEntry]]:
    """The book's train, val and test lists: test carved out of train, and train shuffled,
    both with ``TEST_SPLIT_SEED``."""
    seed = int(helper.config.TEST_SPLIT_SEED)
    train_paths, train_labels = helper.build_training_set()
    val_paths, val_labels = helper.build_validation_set()
    split = helper.split_test_set(train_paths, train_labels, seed=seed)
    if not split.test_paths:
        raise ConfigError(f"{helper.config.source}: NUM_TEST_IMAGES is 0, so the "
                          f"test split would be empty (the book carves 50 per class)")
    return split_entries((split.train_paths, split.train_labels), (val_paths, val_labels),
                         (split.test_paths, split.test_labels), seed)


def split_source(config: Settings) -> SplitSource:
    """The source ``DATASET_LAYOUT`` names, its settings checked."""
    if config.DATASET_LAYOUT == "folders":
        config.require(*ImageFolderSource.required_fields)
        return ImageFolderSource(config)
    config.require(*IlsvrcSource.required_fields)
    return IlsvrcSource(config)
