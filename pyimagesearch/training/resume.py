"""Starting and resuming: what must hold before any work, what differs between a checkpoint's
run and this one (refused unless ``--override``), and what a checkpoint restores.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mxnet import gluon

from pyimagesearch.data.dataset import DatasetIdentity, identity_differences, recorded_identity
from pyimagesearch.run.checkpoints import (
    CheckpointError,
    checkpoint_epochs,
    load_exported_params,
    read_manifest,
)
from pyimagesearch.run.mxnet_checkpoints import KIND as MXNET_KIND
from pyimagesearch.run.optimizer_state import load_optimizer_state, start_optimizer_at
from pyimagesearch.run.paths import checkpoint_paths
from pyimagesearch.settings import SETTINGS

# Settings that change how a run is watched or fed, not what it computes; the recipes are
# compared resolved (``recipe``), whatever form the config gave them in.
IGNORED_FIELDS = frozenset({s.name for s in SETTINGS if s.operational}
                           | {"__source__", "RECIPE", "RECIPES_BY_DEPTH"})


def check_start(checkpoints: str, prefix: str, start_epoch: int,
                reset_optimizer: bool = False) -> dict[str, Any] | None:
    """Fail at once on an impossible start; return the manifest to resume from, if any.

    With ``reset_optimizer`` a missing or damaged ``.states`` file is accepted. An epoch
    MXNet's symbolic API wrote gives its stand-in manifest (``"format": "mxnet"``), which
    resumes weights only (``mxnet_checkpoints.restore_weights_only``).
    """
    existing = checkpoint_epochs(checkpoints, prefix)
    if start_epoch == 0:
        if existing:
            raise CheckpointError(
                f"{checkpoints} already holds checkpoints of {prefix!r} "
                f"(epochs {', '.join(map(str, existing))}); resume with --start-epoch "
                f"{existing[-1]}, or pick another --checkpoints folder or --prefix")
        return None
    skip = ("states",) if reset_optimizer else ()
    try:
        manifest = read_manifest(checkpoints, prefix, start_epoch, skip=skip)
    except CheckpointError as exc:
        if "states" in str(exc) and not reset_optimizer:
            raise CheckpointError(f"{exc}; to resume with fresh optimizer state (momentum "
                                  f"from zero) pass --reset-optimizer") from None
        raise
    if manifest.get("format") != MXNET_KIND and "num_update" not in manifest:
        raise CheckpointError(f"{checkpoint_paths(checkpoints, prefix, start_epoch)['manifest']}"
                              f" records no update count, so the schedule cannot continue "
                              f"from it")
    return manifest


def _canonical(value: Any) -> Any:
    """JSON round trip, so values read from a checkpoint compare equal to live ones."""
    return json.loads(json.dumps(value, sort_keys=True))


def _dataset_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    now = DatasetIdentity.from_dict(current["dataset"]["identity"])
    trained = recorded_identity(saved)
    if trained is None:
        return ["dataset: the checkpoint records none"]
    return [f"dataset {d}" for d in identity_differences(trained, now)]


def run_differences(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Human-readable differences between a checkpoint's description of its run and ours."""
    differences = _dataset_differences(saved, current)
    for key in ("identity", "seed", "recipe"):
        old, new = _canonical(saved.get(key)), _canonical(current.get(key))
        if isinstance(old, dict) and isinstance(new, dict):
            for name in sorted(set(old) | set(new)):
                if old.get(name) != new.get(name):
                    differences.append(f"{key}.{name}: checkpoint {old.get(name)!r}, "
                                       f"now {new.get(name)!r}")
        elif old != new:
            differences.append(f"{key}: checkpoint {old!r}, now {new!r}")
    old_config, new_config = _canonical(saved.get("config", {})), _canonical(current["config"])
    for name in sorted((set(old_config) | set(new_config)) - IGNORED_FIELDS):
        old, new = old_config.get(name), new_config.get(name)
        if old != new:
            differences.append(f"config {name}: checkpoint {old!r}, now {new!r}")
    return differences


def restore(net: gluon.Block, trainer: gluon.Trainer, paths: dict[str, Path],
            manifest: dict[str, Any], reset_optimizer: bool = False) -> str:
    """Load checkpoint weights and optimizer state; return a line saying what was restored."""
    load_exported_params(net, paths["params"])
    num_update = int(manifest["num_update"])
    if reset_optimizer:
        start_optimizer_at(trainer, num_update)
        return (f"optimizer state reset (--reset-optimizer): momentum/moment buffers start "
                f"from zero; the learning-rate schedule continues at update {num_update}")
    load_optimizer_state(trainer, str(paths["states"]), manifest["optimizer_state"])
    return f"weights and optimizer state restored at update {num_update}"
