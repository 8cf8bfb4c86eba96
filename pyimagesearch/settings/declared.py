"""Every setting a config may hold, declared once: name, kind, default, meaning, group; and
the kinds of the command-line flags that stand for settings."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import astuple, dataclass
from typing import Any

from pyimagesearch.runtime import usable_cores
from pyimagesearch.settings.kinds import (
    Choice,
    DeviceList,
    Epoch,
    FilePath,
    Flag,
    Integer,
    Items,
    Keywords,
    Kind,
    Number,
    Optional,
    RecipeKind,
    Record,
    Table,
    Text,
)

# A setting without a default: it reads as None, and commands that need it say so
# (Settings.require) when the config does not give it.
REQUIRED = object()


@dataclass(frozen=True)
class Setting:
    name: str
    kind: Kind
    meaning: str
    default: Any = REQUIRED
    # Computed when the config does not set it (the machine's cores, say).
    default_factory: Callable[[], Any] | None = None
    group: str = ""
    # True: changes how a run is fed or watched, not what it computes (a resume may change it).
    operational: bool = False

    def default_value(self) -> Any:
        if self.default_factory is not None:
            return self.default_factory()
        return None if self.default is REQUIRED else self.default

    def describe_default(self) -> str:
        if self.default_factory is not None:
            return self.default_factory.__doc__ or "computed"
        return "required" if self.default is REQUIRED else repr(self.default)

    def describe_kind(self) -> str:
        # A needed setting is "None" only until a config gives it: show what it must be.
        if self.default is REQUIRED and isinstance(self.kind, Optional):
            return self.kind.kind.describe()
        return self.kind.describe()


POSITIVE = Integer(low=1)
NON_NEGATIVE = Integer(low=0)
SEED_KIND = Integer(low=0, high=2**31 - 1)
LEARNING_RATE = Number(low=0, low_open=True)
PATH = Optional(FilePath())
PROBABILITY = Number(low=0, high=1)

# MXNet's ImageRecordIter augmentation parameters that a config may set (AUGMENTATION).
AUGMENTATION_FIELDS: dict[str, Kind] = {
    "rand_crop": Flag(), "rand_mirror": Flag(),
    # max_rotate_angle: a random whole-degree angle in [-a, a] per image. rotate: every image
    # turned by exactly that angle (counter-clockwise), whatever max_rotate_angle says: what
    # the book's rotate=15 does in MXNet 1.9 (tests/test_augmentation_rotate.py); 0 is off.
    "max_rotate_angle": Integer(low=0, high=360), "rotate": Integer(low=0, high=359),
    "max_shear_ratio": Number(low=0, high=1),
    "max_aspect_ratio": Number(low=0), "min_aspect_ratio": Optional(Number(low=0)),
    "random_resized_crop": Flag(), "min_random_area": Number(low=0, high=1),
    "max_random_area": Number(low=0, high=1), "max_random_scale": Number(low=0, low_open=True),
    "min_random_scale": Number(low=0, low_open=True), "brightness": Number(low=0),
    "contrast": Number(low=0), "saturation": Number(low=0), "pca_noise": Number(low=0),
    "random_h": Integer(low=0, high=180), "random_s": Integer(low=0, high=255),
    "random_l": Integer(low=0, high=255), "pad": Integer(low=0),
    "fill_value": Integer(low=0, high=255), "inter_method": Integer(low=0, high=10),
}


@dataclass(frozen=True)
class HealthSettings:
    """The health monitor (``HEALTH`` goes over these): a check every ``interval`` updates;
    a warning after ``patience`` checks in a row whose zero fraction exceeds
    ``dead_fraction``."""

    interval: int = 100
    dead_fraction: float = 0.99
    patience: int = 3

    def describe(self) -> str:
        return (f"every {self.interval} updates (loss, grad-norm, zero-fraction of the last "
                f"feature map); warns when zero-fraction > {self.dead_fraction:g} for "
                f"{self.patience} checks in a row; stops on a non-finite loss")


@dataclass(frozen=True)
class PlateauSettings:
    """The plateau detector (``PLATEAU`` goes over these): a warning after ``patience``
    epochs whose ``metric`` did not beat the best by ``min_delta``."""

    metric: str = "rank1"
    min_delta: float = 0.005
    patience: int = 5

    def describe(self) -> str:
        return (f"warns when validation {self.metric.replace('rank', 'rank-')} has not "
                f"improved by {self.min_delta:g} for {self.patience} epochs at one learning "
                f"rate")


def describe_watcher(line: str, name: str, settings: HealthSettings | PlateauSettings | None
                     ) -> str:
    """The log line saying how a run is watched (the report finds it by ``line``)."""
    return f"{line} off ({name} = None)" if settings is None else f"{line} {settings.describe()}"


HEALTH_FIELDS: dict[str, Kind] = {
    "interval": POSITIVE, "dead_fraction": PROBABILITY, "patience": POSITIVE,
}
PLATEAU_METRICS = ("rank1", "rank5", "loss")
PLATEAU_FIELDS: dict[str, Kind] = {
    "metric": Choice(PLATEAU_METRICS), "min_delta": Number(low=0), "patience": POSITIVE,
}
KVSTORE_TYPES = ("device", "local", "nccl", "dist_sync", "dist_device_sync", "dist_async")


def _all_cores() -> int:
    """the usable cores"""
    return usable_cores()


_ILSVRC = "ILSVRC tree"
_FOLDERS = "image folders"
_RECORDS = "records"
_BUILD = "build"
_DEMO = "demo tree"
_CIFAR = "CIFAR files"
_TRAIN = "training"
_DIST = "distributed"

SETTINGS: tuple[Setting, ...] = (
    # The raw ILSVRC2015 tree (DESIGN.md), read by ImageNetHelper.
    Setting("BASE_PATH", PATH, "the ILSVRC2015 folder of the download", group=_ILSVRC),
    Setting("IMAGES_PATH", PATH, "Data/CLS-LOC: the train/ and val/ image folders",
            group=_ILSVRC),
    Setting("IMAGE_SETS_PATH", PATH, "ImageSets/CLS-LOC", group=_ILSVRC),
    Setting("DEVKIT_PATH", PATH, "devkit/data", group=_ILSVRC),
    Setting("WORD_IDS", PATH, "map_clsloc.txt: WordNet id, class id, name", group=_ILSVRC),
    Setting("TRAIN_LIST", PATH, "train_cls.txt: the training images", group=_ILSVRC),
    Setting("VAL_LIST", PATH, "val.txt: the validation images, in order", group=_ILSVRC),
    Setting("VAL_LABELS", PATH, "the validation ground truth, one class id per line",
            group=_ILSVRC),
    Setting("VAL_BLACKLIST", PATH, "1-based validation indices to drop", group=_ILSVRC),
    Setting("NUM_CLASSES", Optional(POSITIVE), "classes of the dataset and outputs of the "
            "network; must equal the dataset's", group=_ILSVRC),
    Setting("NUM_TEST_IMAGES", Optional(NON_NEGATIVE), "test images carved out of the "
            "training set (stratified), or CIFAR's test images", group=_ILSVRC),
    Setting("TEST_SPLIT_SEED", SEED_KIND, "seed of the test split carved from train",
            default=42, group=_ILSVRC),
    Setting("LABEL_ORDER", Choice(("map_clsloc", "sorted_wnid")), "class numbering: "
            "map_clsloc.txt order (the book) or sorted WordNet ids (model zoos)",
            default="map_clsloc", group=_ILSVRC),
    # An image-folder tree (pyimagesearch/data/sources/folders.py), read instead of the ILSVRC tree.
    Setting("DATASET_LAYOUT", Choice(("ilsvrc", "folders")), "the raw dataset build_imagenet.py "
            "reads: the ILSVRC2015 tree or <FOLDER_ROOT>/<split>/<class>/<image>",
            default="ilsvrc", group=_FOLDERS),
    Setting("FOLDER_ROOT", PATH, "folder holding train/ and test/ (and val/) class folders",
            group=_FOLDERS),
    Setting("FOLDER_CLASSES", Optional(Items(Text(), what="a list of class folder names")),
            "the classes in label order (None: the sorted folder names of train/)",
            default=None, group=_FOLDERS),
    # Lists, records and means.
    Setting("MX_OUTPUT", PATH, "root of the lists and records of this dataset",
            group=_RECORDS),
    Setting("TRAIN_MX_LIST", PATH, "train.lst", group=_RECORDS),
    Setting("VAL_MX_LIST", PATH, "val.lst", group=_RECORDS),
    Setting("TEST_MX_LIST", PATH, "test.lst", group=_RECORDS),
    Setting("TRAIN_MX_REC", PATH, "train.rec (the manifest goes beside it)", group=_RECORDS),
    Setting("VAL_MX_REC", PATH, "val.rec", group=_RECORDS),
    Setting("TEST_MX_REC", PATH, "test.rec", group=_RECORDS),
    Setting("DATASET_MEAN", PATH, "the training set's channel mean, JSON {R, G, B}",
            group=_RECORDS),
    Setting("MEAN_IMAGE", PATH, "a per-pixel mean (MXNet .nd) of the training set, written by "
            "the build, subtracted instead of DATASET_MEAN",
            default=None, group=_RECORDS),
    Setting("RESIZE", Optional(POSITIVE), "shorter side of every stored image, >= "
            "INPUT_SIZE", group=_RECORDS),
    Setting("ENCODING_QUALITY", Integer(low=1, high=100), "JPEG quality of the records",
            default=95, group=_RECORDS),
    Setting("RECORD_ENCODING", Choice(("jpeg", "png")), "how build_imagenet.py stores images: "
            "JPEG (ENCODING_QUALITY) or lossless PNG (small images such as CIFAR's)",
            default="jpeg", group=_RECORDS),
    Setting("BUILD_SCRIPT", Text(), "the command that builds these records, named in "
            "messages", default="build_imagenet.py", group=_RECORDS),
    # The build.
    Setting("BUILD_THREADS", POSITIVE, "image worker processes of the build",
            default_factory=_all_cores, group=_BUILD, operational=True),
    Setting("BUILD_WORKER_TIMEOUT", Optional(Number(low=0, low_open=True)),
            "seconds a build worker may spend on a chunk of 32 images (None: no limit)",
            default=600.0, group=_BUILD, operational=True),
    Setting("BUILD_MAX_ASPECT_RATIO", Number(low=1), "longer / shorter side beyond which an "
            "image is skipped", default=20.0, group=_BUILD),
    Setting("PACKER", Choice(("project", "im2rec")), "what writes the records: the project's "
            "checked writer, or MXNet's tools/im2rec.py over the checked lists (the book's "
            "path)", default="project", group=_BUILD),
    # The demo tree written by build_demo_dataset.py.
    Setting("DEMO_VAL_PER_CLASS", POSITIVE, "validation digits per class", default=30,
            group=_DEMO),
    Setting("DEMO_BLACKLIST_SIZE", NON_NEGATIVE, "validation images the blacklist drops",
            default=12, group=_DEMO),
    Setting("DEMO_IMAGE_SIZE", Integer(low=8), "side of the digit JPEGs", default=64,
            group=_DEMO),
    Setting("DEMO_SEED", SEED_KIND, "seed of the demo tree", default=7, group=_DEMO),
    # CIFAR files (build_cifar.py).
    Setting("CIFAR_ROOT", PATH, "folder holding cifar-10-batches-py/ (or -bin/), or that "
            "folder", group=_CIFAR),
    Setting("CIFAR_DATASET", Choice(("cifar10", "cifar100")), "which CIFAR",
            default="cifar10", group=_CIFAR),
    Setting("CIFAR_LAYOUT", Choice(("auto", "python", "binary")), "file layout to read",
            default="auto", group=_CIFAR),
    Setting("CIFAR_LABELS", Choice(("fine", "coarse")), "CIFAR-100's label set",
            default="fine", group=_CIFAR),
    Setting("VAL_SIZE", NON_NEGATIVE, "validation images held out of the training files, "
            "or of an image-folder tree without val/ (0: validate on test)", default=5000,
            group=_CIFAR),
    Setting("VAL_SPLIT_SEED", SEED_KIND, "seed of that hold-out (image folders: and of the "
            "training records' order)", default=0, group=_CIFAR),
    Setting("FAKE_CIFAR", Optional(Record({"images_per_batch": POSITIVE, "seed": SEED_KIND,
                                           "layout": Choice(("python", "binary"))},
                                          required=("images_per_batch",),
                                          what="a dict (images_per_batch, seed, layout)")),
            "demo only: write fake CIFAR files of this shape first", default=None,
            group=_CIFAR),
    # Training.
    Setting("MODEL", Optional(Text()), "the network's registered name", group=_TRAIN),
    Setting("MODEL_PARAMS", Keywords(), "constructor arguments of the network", default={},
            group=_TRAIN),
    Setting("INPUT_SIZE", Optional(POSITIVE), "training crop and evaluation center crop",
            group=_TRAIN),
    Setting("BATCH_SIZE", Optional(POSITIVE), "images per device per step", group=_TRAIN),
    Setting("NUM_DEVICES", POSITIVE, "GPUs to train on when MXNet sees GPUs (the first "
            "ones; --gpus picks others)", default=1, group=_TRAIN),
    Setting("DECODE_THREADS", POSITIVE, "threads decoding training images", default=2,
            group=_TRAIN, operational=True),
    Setting("DECODE_TIMEOUT", Number(low=0, low_open=True), "seconds per image of a batch "
            "that a decoding process may take to deliver it, its start included (counted for "
            "at least 32 images), before the run stops as stalled", default=2.0, group=_TRAIN,
            operational=True),
    Setting("AUGMENTATION", Record(AUGMENTATION_FIELDS, what="a dict of ImageRecordIter "
                                   "augmentation parameters"),
            "random crop, mirror, rotation, ... as ImageRecordIter names them", default={},
            group=_TRAIN),
    Setting("RECIPE", Optional(RecipeKind()), "optimizer, rate and schedule: a preset name "
            "or a dict", group=_TRAIN),
    Setting("RECIPES_BY_DEPTH", Table(POSITIVE, RecipeKind(), what="a dict depth -> recipe"),
            "CIFAR: the recipe for a --depth (the 110-layer warm-up)", default={},
            group=_TRAIN),
    Setting("INITIALIZER", Choice(("xavier", "msra")), "weight initialization",
            default="xavier", group=_TRAIN),
    Setting("DTYPE", Choice(("float32", "float16")), "float16: mixed precision on GPUs",
            default="float32", group=_TRAIN),
    Setting("SEED", SEED_KIND, "seed of initialization, data order and augmentation",
            default=0, group=_TRAIN),
    Setting("LOG_INTERVAL", POSITIVE, "batches between Speed lines in the log", default=100,
            group=_TRAIN, operational=True),
    Setting("HEALTH", Optional(Record(HEALTH_FIELDS, what="a dict (interval, dead_fraction, "
                                      "patience)")),
            "health monitor settings over its defaults; None turns it off", default={},
            group=_TRAIN, operational=True),
    Setting("PLATEAU", Optional(Record(PLATEAU_FIELDS, what="a dict (metric, min_delta, "
                                       "patience)")),
            f"plateau detector over its defaults ({', '.join(map(str, astuple(PlateauSettings())))}"
            "): warns when the validation "
            "metric has not improved by min_delta for patience epochs; None turns it off",
            default={}, group=_TRAIN, operational=True),
    Setting("MAX_NONFINITE_STEPS", POSITIVE, "non-finite steps in a row that stop the run",
            default=3, group=_TRAIN, operational=True),
    Setting("WEIGHT_CHECK_INTERVAL", POSITIVE, "updates between checks that every weight "
            "is finite", default=100, group=_TRAIN, operational=True),
    # Several processes.
    Setting("KVSTORE", Choice(KVSTORE_TYPES), "how gradients are aggregated",
            default="device", group=_DIST),
    Setting("DIST_LR_SCALING", Choice(("none", "linear")), "rates times the number of "
            "workers (linear) or as the recipe says", default="none", group=_DIST),
    Setting("DIST_WARMUP_EPOCHS", Number(low=0), "epochs of linear warm-up to the scaled "
            "rate", default=0.0, group=_DIST),
)
DECLARED: dict[str, Setting] = {setting.name: setting for setting in SETTINGS}

# Command-line values, checked by the same kinds as the settings they stand for.
ARGUMENT_KINDS: dict[str, Kind] = {
    "--lr": LEARNING_RATE,
    "--start-epoch": NON_NEGATIVE,
    "--epoch": Epoch(),
    "--end-epoch": POSITIVE,
    "--seed": SEED_KIND,
    "--cpu-contexts": POSITIVE,
    "--gpus": DeviceList(),
    "--runs": POSITIVE,
    "--last": POSITIVE,
    "--top": POSITIVE,
    "--parity-images": POSITIVE,
    "--tolerance": Number(low=0, low_open=True),
    "--require-rank1": Number(low=0),
}
