"""Every setting a config may hold, declared once: name, type, default, allowed values, meaning.

Configs stay what the book makes them, plain modules of upper-case constants
(``config/demo_googlenet_config.py``). :func:`pyimagesearch.config.load_config` imports
one and checks it against the declarations below, so a mistake is a one-line error that
names the config file, the field and the value, before any work starts:

- an upper-case name that is not declared: ``BATCH_SZE: unknown setting; did you mean
  BATCH_SIZE?``;
- a value of the wrong type or out of range: ``BATCH_SIZE = 0: must be an integer >= 1``.

Command-line values (``--lr``, ``--end-epoch``, ...) are checked by the same kinds
(:func:`argument_type`). The README's settings table is generated from this table
(``python -m pyimagesearch.settings --write-readme``); a test keeps the two equal.

This module imports neither MXNet nor the training code that needs it: reading a config
is cheap and has no side effects.
"""

from __future__ import annotations

import abc
import argparse
import dataclasses
import difflib
import enum
import math
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyimagesearch.errors import ConfigError
from pyimagesearch.runtime import usable_cores


class SettingError(ValueError):
    """A value does not fit its kind; the message completes "<NAME> = <value>: "."""


# --- kinds: what a value may be ---------------------------------------------------------------
class Kind(abc.ABC):
    """The type and range of a setting's value; ``check`` returns the value as used."""

    @abc.abstractmethod
    def check(self, value: Any) -> Any:
        """``value`` as the setting uses it, or :class:`SettingError`."""

    @abc.abstractmethod
    def describe(self) -> str:
        """What the kind accepts, completing "must be ..."."""

    def parse(self, text: str) -> Any:
        """A command-line string as this kind's value (then ``check``-ed)."""
        return text


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


def _bounds(low: float | None, high: float | None, low_open: bool = False) -> str:
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {_number(low)}")
    if high is not None:
        parts.append(f"<= {_number(high)}")
    return " and ".join(parts)


@dataclass(frozen=True)
class Integer(Kind):
    low: int | None = None
    high: int | None = None

    def check(self, value: Any) -> int:
        if not _is_int(value):
            raise SettingError(f"must be {self.describe()}")
        if (self.low is not None and value < self.low) or \
                (self.high is not None and value > self.high):
            raise SettingError(f"must be {self.describe()}")
        return int(value)

    def describe(self) -> str:
        bounds = _bounds(self.low, self.high)
        return f"an integer {bounds}" if bounds else "an integer"

    def parse(self, text: str) -> Any:
        try:
            return int(text)
        except ValueError:
            return text


@dataclass(frozen=True)
class Number(Kind):
    """A finite real number; integers are accepted (``1`` for ``1.0``)."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False

    def check(self, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value):
            raise SettingError(f"must be {self.describe()}")
        too_low = self.low is not None and (value <= self.low if self.low_open
                                            else value < self.low)
        if too_low or (self.high is not None and value > self.high):
            raise SettingError(f"must be {self.describe()}")
        return float(value)

    def describe(self) -> str:
        bounds = _bounds(self.low, self.high, self.low_open)
        return f"a number {bounds}" if bounds else "a finite number"

    def parse(self, text: str) -> Any:
        try:
            return float(text)
        except ValueError:
            return text


@dataclass(frozen=True)
class Flag(Kind):
    def check(self, value: Any) -> bool:
        if not isinstance(value, bool):
            raise SettingError("must be True or False")
        return value

    def describe(self) -> str:
        return "True or False"


@dataclass(frozen=True)
class Choice(Kind):
    values: tuple[Any, ...]

    def check(self, value: Any) -> Any:
        if isinstance(value, bool) or value not in self.values:
            raise SettingError(f"must be {self.describe()}")
        return value

    def describe(self) -> str:
        return "one of " + ", ".join(repr(v) for v in self.values)


@dataclass(frozen=True)
class Text(Kind):
    def check(self, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise SettingError("must be a non-empty string")
        return value

    def describe(self) -> str:
        return "a string"


@dataclass(frozen=True)
class FilePath(Kind):
    """A file or folder path (``str`` or ``pathlib.Path``), kept as a string."""

    def check(self, value: Any) -> str:
        if isinstance(value, Path):
            value = str(value)
        if not isinstance(value, str) or not value.strip():
            raise SettingError("must be a path (a non-empty string)")
        return value

    def describe(self) -> str:
        return "a path"


@dataclass(frozen=True)
class Optional(Kind):
    """``None`` or a value of ``kind``."""

    kind: Kind

    def check(self, value: Any) -> Any:
        # The inner kind's message says more ("key 'interval' = 0: ...") than "or None".
        return None if value is None else self.kind.check(value)

    def describe(self) -> str:
        return f"None or {self.kind.describe()}"


@dataclass(frozen=True)
class Record(Kind):
    """A dict with known keys, each of its own kind; ``required`` keys must be present."""

    fields: Mapping[str, Kind]
    required: tuple[str, ...] = ()
    what: str = "a dict"

    def check(self, value: Any) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise SettingError(f"must be {self.describe()}")
        unknown = [key for key in value if key not in self.fields]
        if unknown:
            hint = _suggestion(str(unknown[0]), self.fields)
            raise SettingError(f"unknown key {unknown[0]!r}{hint}; known keys: "
                               f"{', '.join(self.fields)}")
        missing = [key for key in self.required if key not in value]
        if missing:
            raise SettingError(f"lacks key {missing[0]!r}")
        checked = {}
        for key, item in value.items():
            try:
                checked[key] = self.fields[key].check(item)
            except SettingError as exc:
                raise SettingError(f"key {key!r} = {item!r}: {exc}") from None
        return checked

    def describe(self) -> str:
        return self.what


@dataclass(frozen=True)
class Table(Kind):
    """A dict from keys of one kind to values of another."""

    keys: Kind
    values: Kind
    what: str = "a dict"

    def check(self, value: Any) -> dict[Any, Any]:
        if not isinstance(value, Mapping):
            raise SettingError(f"must be {self.describe()}")
        checked = {}
        for key, item in value.items():
            try:
                checked[self.keys.check(key)] = self.values.check(item)
            except SettingError as exc:
                raise SettingError(f"entry {key!r}: {exc}") from None
        return checked

    def describe(self) -> str:
        return self.what


@dataclass(frozen=True)
class Items(Kind):
    """A list (or tuple) of distinct values of one kind, kept as a tuple."""

    item: Kind
    what: str = "a list"

    def check(self, value: Any) -> tuple[Any, ...]:
        if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, (list, tuple)) \
                or not value:
            raise SettingError(f"must be {self.describe()}")
        checked = []
        for position, item in enumerate(value):
            try:
                checked.append(self.item.check(item))
            except SettingError as exc:
                raise SettingError(f"item {position} = {item!r}: {exc}") from None
        duplicated = sorted({repr(x) for x in checked if checked.count(x) > 1})
        if duplicated:
            raise SettingError(f"lists {duplicated[0]} more than once")
        return tuple(checked)

    def describe(self) -> str:
        return self.what


@dataclass(frozen=True)
class Keywords(Kind):
    """Keyword arguments (a dict with identifier keys): checked where they are used."""

    what: str = "a dict of keyword arguments"

    def check(self, value: Any) -> dict[str, Any]:
        if not isinstance(value, Mapping) or \
                not all(isinstance(key, str) and key.isidentifier() for key in value):
            raise SettingError(f"must be {self.what}")
        return dict(value)

    def describe(self) -> str:
        return self.what


@dataclass(frozen=True)
class DeviceList(Kind):
    """GPU ordinals, distinct: ``(0, 2)``, or ``"0,2"`` on the command line."""

    def check(self, value: Any) -> tuple[int, ...]:
        if not isinstance(value, (list, tuple)) or not value \
                or not all(_is_int(v) and v >= 0 for v in value):
            raise SettingError(f"must be {self.describe()}")
        if len(set(value)) != len(value):
            raise SettingError("names a GPU twice")
        return tuple(value)

    def describe(self) -> str:
        return "GPU numbers >= 0, separated by commas (0,2)"

    def parse(self, text: str) -> Any:
        try:
            return tuple(int(part) for part in text.split(","))
        except ValueError:
            return text


@dataclass(frozen=True)
class Epoch(Kind):
    """A checkpoint's epoch, or ``"last"``: the newest that verifies."""

    def check(self, value: Any) -> Any:
        if value == "last" or (_is_int(value) and value >= 0):
            return value
        raise SettingError(f"must be {self.describe()}")

    def describe(self) -> str:
        return "an epoch (an integer >= 0) or 'last'"

    def parse(self, text: str) -> Any:
        return Integer().parse(text)


@dataclass(frozen=True)
class RecipeKind(Kind):
    """A recipe preset's name, or a dict of recipe fields over an optional ``base`` preset."""

    def check(self, value: Any) -> Any:
        from pyimagesearch.settings.recipes import RecipeError, recipe_from_data

        try:
            return recipe_from_data(value)
        except RecipeError as exc:
            raise SettingError(str(exc)) from None

    def describe(self) -> str:
        return "a preset name or a dict of recipe fields"


# --- the declarations ---------------------------------------------------------------------------
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
            "plateau detector over its defaults (rank1, 0.005, 5): warns when the validation "
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
}


# --- the validated settings of one config ------------------------------------------------------
class Settings:
    """A config's settings, checked: every declared name is an attribute (its value or default).

    ``config.BATCH_SIZE`` reads as in the book's scripts; ``source`` is the config file.
    Immutable: :meth:`replace` returns a checked copy with some values changed.
    """

    __slots__ = ("_explicit", "_values", "source")

    def __init__(self, values: Mapping[str, Any], source: str,
                 explicit: Iterable[str] = ()) -> None:
        object.__setattr__(self, "_values", dict(values))
        object.__setattr__(self, "_explicit", frozenset(explicit))
        object.__setattr__(self, "source", source)

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(f"{name} is not a declared setting") from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("settings are read-only; use replace()")

    def __repr__(self) -> str:
        return f"Settings({self.source})"

    def is_set(self, name: str) -> bool:
        """Whether the config itself gave ``name`` (rather than its default)."""
        return name in self._explicit

    def require(self, *names: str) -> None:
        """Fail with one message listing every setting a step needs that the config lacks."""
        missing = [name for name in names if self._values.get(name) is None]
        if missing:
            raise ConfigError(f"{self.source}: {', '.join(missing)} must be set for this "
                              f"command")

    def replace(self, **changes: Any) -> Settings:
        values = dict(self._values)
        for name, value in changes.items():
            values[name] = check_value(name, value, self.source)
        return Settings(values, self.source, self._explicit | set(changes))

    def snapshot(self) -> dict[str, Any]:
        """Every setting as JSON-ready data, and the config file (what a checkpoint records)."""
        fields = {name: to_json(value) for name, value in sorted(self._values.items())}
        fields["__source__"] = self.source
        return fields


def to_json(value: Any) -> Any:
    """A setting's value as JSON-ready data (dataclasses become dicts with their type)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {"__type__": type(value).__name__, **to_json(dataclasses.asdict(value))}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(key): to_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(item) for item in value]
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def default(name: str) -> Any:
    """The declared default of setting ``name`` (for library functions that share it)."""
    return DECLARED[name].default_value()


def default_snapshot_value(name: str) -> Any:
    """What a snapshot holds for a setting its config did not give (older checkpoints)."""
    setting = DECLARED.get(name)
    if setting is None or setting.default_factory is not None:
        return None
    return to_json(setting.default_value())


def _suggestion(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def check_value(name: str, value: Any, source: str) -> Any:
    """``value`` as setting ``name`` uses it, or a one-line :class:`ConfigError`."""
    setting = DECLARED.get(name)
    if setting is None:
        raise ConfigError(f"{source}: {name}: unknown setting{_suggestion(name, DECLARED)}")
    try:
        return setting.kind.check(value)
    except SettingError as exc:
        raise ConfigError(f"{source}: {name} = {_short(value)}: {exc}") from None


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def validate(fields: Mapping[str, Any], source: str) -> Settings:
    """Check a config's upper-case fields; defaults fill what it does not set."""
    values = {}
    for name in sorted(fields):
        values[name] = check_value(name, fields[name], source)
    for setting in SETTINGS:
        if setting.name not in values:
            values[setting.name] = setting.default_value()
    return Settings(values, source, explicit=fields)


# --- the command line ----------------------------------------------------------------------------
def argument_type(flag: str) -> Callable[[str], Any]:
    """An ``argparse`` type for ``flag`` that applies the kind of the setting it stands for."""
    kind = ARGUMENT_KINDS[flag]

    def convert(text: str) -> Any:
        try:
            return kind.check(kind.parse(text))
        except SettingError as exc:
            raise argparse.ArgumentTypeError(f"{text}: {exc}") from None

    convert.__name__ = flag.lstrip("-").replace("-", "_")
    return convert


# --- the README table ----------------------------------------------------------------------------
README_START = "<!-- settings table: generated by `python -m pyimagesearch.settings "\
               "--write-readme` -->"
README_END = "<!-- end of settings table -->"


def markdown_table() -> str:
    """Every setting as a Markdown table, grouped as declared."""
    lines = ["| setting | group | value | default | meaning |", "|---|---|---|---|---|"]
    for setting in SETTINGS:
        meaning = setting.meaning + (" (a resume may change it)" if setting.operational else "")
        lines.append(f"| `{setting.name}` | {setting.group} | {setting.describe_kind()} | "
                     f"{setting.describe_default()} | {meaning} |".replace("\n", " "))
    return "\n".join(lines)


def readme_with_table(readme: str) -> str:
    """``readme`` with the text between the table markers replaced by :func:`markdown_table`."""
    start, end = readme.find(README_START), readme.find(README_END)
    if start < 0 or end < start:
        raise ValueError("README.md lacks the settings table markers")
    return readme[:start + len(README_START)] + "\n" + markdown_table() + "\n" + readme[end:]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Print the settings table (Markdown), or "
                                                 "write it into README.md")
    parser.add_argument("--write-readme", metavar="README", nargs="?", const="README.md",
                        help="replace the table between the markers in README (default "
                             "README.md)")
    args = parser.parse_args(argv)
    if args.write_readme is None:
        sys.stdout.write(markdown_table() + "\n")
        return 0
    path = Path(args.write_readme)
    path.write_text(readme_with_table(path.read_text(encoding="utf-8")), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
