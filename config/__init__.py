"""One module per experiment, in the book's upper-case constants.

``ilsvrc_tree`` and ``dataset_files`` spell out once where an ILSVRC2015 download keeps its
devkit files and where a dataset keeps its lists, records and means; every config still
names each path it sets (``config/imagenet_googlenet_config.py`` writes them out as the book
does).
"""

from os import path


def ilsvrc_tree(root: str) -> tuple[str, ...]:
    """BASE_PATH, IMAGES_PATH, IMAGE_SETS_PATH, DEVKIT_PATH, WORD_IDS, TRAIN_LIST, VAL_LIST,
    VAL_LABELS, VAL_BLACKLIST of the ``ILSVRC2015`` folder in ``root``."""
    base = path.join(root, "ILSVRC2015")
    sets, devkit = path.join(base, "ImageSets", "CLS-LOC"), path.join(base, "devkit", "data")
    return (base, path.join(base, "Data", "CLS-LOC"), sets, devkit,
            path.join(devkit, "map_clsloc.txt"), path.join(sets, "train_cls.txt"),
            path.join(sets, "val.txt"),
            path.join(devkit, "ILSVRC2015_clsloc_validation_ground_truth.txt"),
            path.join(devkit, "ILSVRC2015_clsloc_validation_blacklist.txt"))


def dataset_files(lists: str, records: str, mean: str) -> tuple[str, ...]:
    """TRAIN/VAL/TEST_MX_LIST in ``lists``, TRAIN/VAL/TEST_MX_REC and the mean file ``mean``
    (``.json``: DATASET_MEAN; its ``.nd`` twin: MEAN_IMAGE) in ``records``."""
    return (*(path.join(lists, f"{split}.lst") for split in ("train", "val", "test")),
            *(path.join(records, f"{split}.rec") for split in ("train", "val", "test")),
            path.join(records, mean), path.join(records, mean.replace(".json", ".nd")))
