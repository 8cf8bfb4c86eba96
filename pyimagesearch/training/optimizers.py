"""The optimizer a recipe names, with its learning-rate schedule attached."""

from __future__ import annotations

from typing import Any

import mxnet as mx

from pyimagesearch.errors import ConfigError
from pyimagesearch.settings.recipes import Recipe
from pyimagesearch.settings.schedules import ScheduleSpec
from pyimagesearch.training.lr_schedulers import build_lr_scheduler


def create_optimizer(recipe: Recipe, updates_per_epoch: int,
                     spec: ScheduleSpec | None = None, **extra: Any) -> mx.optimizer.Optimizer:
    """The recipe's optimizer with a learning-rate schedule attached (the recipe's own
    unless ``spec`` is given: manual overrides, scaling with workers)."""
    spec = spec or recipe.schedule_spec()
    params: dict[str, Any] = {
        "learning_rate": spec.base_lr,
        "wd": recipe.weight_decay,
        "lr_scheduler": build_lr_scheduler(spec, updates_per_epoch),
        **extra,
    }
    if recipe.momentum is not None:
        params["momentum"] = recipe.momentum
    params.update(recipe.optimizer_params)
    try:
        return mx.optimizer.create(recipe.optimizer, **params)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"recipe {recipe.name}: cannot create optimizer "
                         f"{recipe.optimizer!r} with {sorted(params)}: {exc}") from exc
