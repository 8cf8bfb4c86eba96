"""Everything a checkpoint needs to be used outside training: config, preprocessing, class names.

A checkpoint manifest (``NAME-%04d.json``) records the config it was trained with
(``config.__source__``) and the dataset manifest it read (``dataset.manifest``); the
dataset manifest lists the classes in label order. :func:`describe_checkpoint` follows
those links, so ``--config`` is needed only when the run's config file has moved.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyimagesearch.config import ConfigError, Settings, load_config
from pyimagesearch.inference.preprocess import (
    ClassName,
    Preprocessing,
    PreprocessingError,
    classes_from_manifest,
)
from pyimagesearch.training.checkpoints import read_manifest, resolve_epoch

logger = logging.getLogger(__name__)


@dataclass
class CheckpointSource:
    """A checkpoint and what it takes to use it."""

    checkpoints: str
    prefix: str
    epoch: int
    manifest: dict[str, Any]
    config: Settings
    preprocessing: Preprocessing
    classes: list[ClassName]
    label_order: str
    classes_source: str

    @property
    def model(self) -> str:
        return str(self.manifest.get("identity", {}).get("model", self.config.MODEL))

    @property
    def symbol_file(self) -> Path:
        return Path(self.checkpoints) / f"{self.prefix}-symbol.json"

    @property
    def params_file(self) -> Path:
        return Path(self.checkpoints) / f"{self.prefix}-{self.epoch:04d}.params"


def run_config(manifest: dict[str, Any], config: str | Settings | None) -> Settings:
    """``config`` if given (name, path or module), else the config file the run recorded."""
    if config:
        return load_config(config)
    source = manifest.get("config", {}).get("__source__")
    if source and source.endswith(".py") and Path(source).is_file():
        return load_config(source)
    raise ConfigError(f"the checkpoint's config {source or '(not recorded)'} is not there; "
                      f"pass --config")


def check_fits(manifest: dict[str, Any], config: Settings) -> None:
    """Refuse a config whose crop size or network differs from the checkpoint's."""
    identity = manifest.get("identity", {})
    for key, field in (("input_size", "INPUT_SIZE"), ("model", "MODEL")):
        if key in identity and getattr(config, field) is not None \
                and identity[key] != getattr(config, field):
            raise ConfigError(f"the checkpoint was trained with {field} {identity[key]!r}, "
                              f"the config says {getattr(config, field)!r}")


def dataset_manifest(manifest: dict[str, Any], config: Settings) -> dict[str, Any] | None:
    """The dataset manifest the run trained on (recorded path first, then the config's)."""
    from pyimagesearch.data.manifest import manifest_path
    from pyimagesearch.data.manifest import read_manifest as read_dataset_manifest
    from pyimagesearch.utils.imagenethelper import DatasetError

    candidates = [manifest.get("dataset", {}).get("manifest")]
    if config.TRAIN_MX_REC is not None:
        candidates.append(str(manifest_path(config)))
    for path in candidates:
        if path and Path(path).is_file():
            try:
                return read_dataset_manifest(path)
            except DatasetError as exc:
                logger.warning("%s", exc)
    return None


def class_names(manifest: dict[str, Any], config: Settings
                ) -> tuple[list[ClassName], str, str]:
    """(classes in label order, label order, where the names came from).

    The dataset manifest is preferred: it records the label order training used. Without
    one, ``map_clsloc.txt`` is read in the config's ``LABEL_ORDER``; without that, the
    outputs are named by number.
    """
    dataset = dataset_manifest(manifest, config)
    if dataset is not None and dataset.get("classes"):
        return (classes_from_manifest(dataset), str(dataset.get("label_order", "?")),
                str(dataset["path"]))
    try:
        from pyimagesearch.utils.imagenethelper import ImageNetHelper

        helper = ImageNetHelper(config)
        return ([ClassName(c.label, c.name, c.wnid) for c in helper.classes],
                helper.label_order, str(config.WORD_IDS))
    except Exception as exc:  # any missing field or file: fall back to numbers
        logger.warning("no class names (%s); outputs are named by label", exc)
    count = config.NUM_CLASSES or 0
    return [ClassName(i, f"class {i}") for i in range(count)], "unknown", "none"


def describe_checkpoint(checkpoints: str, prefix: str, epoch: int | str,
                        config: str | Settings | None = None) -> CheckpointSource:
    """Resolve ``epoch`` ("last" allowed), verify its files, and find config and classes."""
    epoch = resolve_epoch(checkpoints, prefix, epoch)
    manifest = read_manifest(checkpoints, prefix, epoch)
    module = run_config(manifest, config)
    check_fits(manifest, module)
    try:
        preprocessing = Preprocessing.from_config(module)
    except PreprocessingError as exc:
        raise ConfigError(f"cannot preprocess for this checkpoint: {exc}") from None
    classes, order, source = class_names(manifest, module)
    return CheckpointSource(checkpoints, prefix, epoch, manifest, module, preprocessing,
                            classes, order, source)
