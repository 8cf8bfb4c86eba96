"""Everything a checkpoint needs to be used outside training: config, preprocessing, class names.

They come from the config the checkpoint's manifest records (or the one given) and its dataset,
checked to be the dataset the checkpoint trained on as far as using the network depends on it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from pyimagesearch.config import ConfigError, Settings
from pyimagesearch.data.dataset import (
    SCOPE_PREPROCESSING,
    DatasetInfo,
    check_checkpoint_dataset,
    check_dataset,
)
from pyimagesearch.inference.preprocess import ClassName, Preprocessing, classes_from_manifest
from pyimagesearch.run.checkpoints import read_manifest, recorded_config, resolve_epoch
from pyimagesearch.run.paths import checkpoint_name

logger = logging.getLogger(__name__)


@dataclass
class CheckpointSource:
    """A checkpoint and what it takes to use it."""

    checkpoints: str
    prefix: str
    epoch: int
    manifest: dict[str, Any]
    config: Settings
    dataset: DatasetInfo
    preprocessing: Preprocessing
    classes: list[ClassName]
    # Differences from the training dataset accepted with --override (or "cannot check").
    notes: list[str]

    @property
    def model(self) -> str:
        return str(self.manifest.get("identity", {}).get("model", self.config.MODEL))

    @property
    def label_order(self) -> str:
        return str(self.dataset.manifest["label_order"])

    @property
    def classes_source(self) -> str:
        return self.dataset.manifest_file


def check_fits(manifest: dict[str, Any], config: Settings) -> None:
    """Refuse a config whose crop size or network differs from the checkpoint's."""
    identity = manifest.get("identity", {})
    for key, field in (("input_size", "INPUT_SIZE"), ("model", "MODEL")):
        if key in identity and getattr(config, field) is not None \
                and identity[key] != getattr(config, field):
            raise ConfigError(f"the checkpoint was trained with {field} {identity[key]!r}, "
                              f"the config {config.source} says {getattr(config, field)!r}")


def describe_checkpoint(checkpoints: str, prefix: str, epoch: int | str,
                        config: str | Settings | None = None,
                        override: bool = False) -> CheckpointSource:
    """Resolve ``epoch`` ("last" allowed), verify its files, find config, dataset, classes.

    A dataset whose label order, classes, stored size or mean differ from the checkpoint's
    is refused (``DatasetError``) unless ``override``: then the differences are logged and
    kept in ``notes``.
    """
    epoch = resolve_epoch(checkpoints, prefix, epoch)
    manifest = read_manifest(checkpoints, prefix, epoch)
    settings = recorded_config(manifest, config)
    check_fits(manifest, settings)
    dataset = check_dataset(settings, ())
    notes = check_checkpoint_dataset(manifest, dataset,
                                     f"checkpoint {checkpoint_name(prefix, epoch)}",
                                     SCOPE_PREPROCESSING, override)
    for note in notes:
        logger.warning("%s", note)
    return CheckpointSource(checkpoints, prefix, epoch, manifest, settings, dataset,
                            Preprocessing.of_dataset(dataset, settings.INPUT_SIZE),
                            classes_from_manifest(dataset.manifest), notes)
