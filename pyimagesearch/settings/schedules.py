"""Learning-rate schedules as data: the rate at update k, a pure function of k, so a resume
at epoch N gets what an uninterrupted run had. Configs give them as plain dicts
(``{"kind": "multi_step", "factor": 0.1, "at_epochs": [8, 12]}``; see docs/design.md).
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any


class ScheduleError(ValueError):
    """A schedule (or warm-up) given as data does not describe a valid schedule."""


@dataclass(frozen=True)
class Constant:
    """The base rate throughout (the book's "manual drops" style: change it with ``--lr``)."""

    def rate(self, base_lr: float, update: int, per_epoch: int) -> float:
        return base_lr


@dataclass(frozen=True)
class EpochTable:
    """Piecewise constant: ``{first_epoch: lr}``, e.g. the book's Adam experiment
    ``{0: 1e-3, 30: 1e-4, 45: 1e-5}``. Epoch 0 must be present."""

    table: dict[int, float]

    def __post_init__(self) -> None:
        if not isinstance(self.table, Mapping):
            raise ScheduleError(f"learning-rate table must be a dict {{epoch: lr}}, "
                                f"not {self.table!r}")
        if 0 not in self.table:
            raise ScheduleError(f"learning-rate table {self.table} must start at epoch 0")
        for epoch, lr in self.table.items():
            if isinstance(epoch, bool) or not isinstance(epoch, int) or epoch < 0:
                raise ScheduleError(f"learning-rate table epochs must be integers >= 0, "
                                    f"not {epoch!r}")
            _check_rate(lr, f"learning-rate table entry {epoch}")

    def rate(self, base_lr: float, update: int, per_epoch: int) -> float:
        # The optimizer counts updates from 1: update k belongs to epoch (k - 1) // n.
        epochs = sorted(self.table)
        epoch = max(update - 1, 0) // per_epoch
        return self.table[epochs[bisect.bisect_right(epochs, epoch) - 1]]


@dataclass(frozen=True)
class StepDecay:
    """Multiply by ``factor`` every ``every_updates`` updates, or every ``every_epochs``
    epochs (Inception papers: 0.94 every 2 epochs; a Torch reproduction: 0.96 every
    12,800 iterations)."""

    factor: float
    every_updates: int | None = None
    every_epochs: float | None = None

    def __post_init__(self) -> None:
        _check_factor(self.factor)
        if (self.every_updates is None) == (self.every_epochs is None):
            raise ScheduleError("step_decay needs exactly one of every_updates, every_epochs")
        # Updates are whole (a fraction would be cut off); an infinite period would stop the
        # scheduler at its first update.
        counted = self.every_updates is not None
        period = self.every_updates if counted else self.every_epochs
        if not (finite_number(period) and period > 0
                and (not counted or float(period).is_integer())):
            what = "a whole number" if counted else "a number"
            raise ScheduleError(f"step_decay period must be {what} > 0, not {period!r}")

    def rate(self, base_lr: float, update: int, per_epoch: int) -> float:
        """``base * factor ** floor((k - 1) / step)``: MXNet's FactorScheduler, stateless."""
        step = max(int(self.every_updates or round(self.every_epochs * per_epoch)), 1)
        return base_lr * self.factor ** (max(update - 1, 0) // step)


@dataclass(frozen=True)
class MultiStep:
    """Multiply by ``factor`` at each listed update count, or epoch (ResNet: /10 at 32k
    and 48k iterations; the Torch CIFAR reproduction: at epochs 80 and 160)."""

    factor: float
    at_updates: tuple[int, ...] = ()
    at_epochs: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        _check_factor(self.factor)
        object.__setattr__(self, "at_updates", tuple(self.at_updates))
        object.__setattr__(self, "at_epochs", tuple(self.at_epochs))
        if bool(self.at_updates) == bool(self.at_epochs):
            raise ScheduleError("multi_step needs exactly one of at_updates, at_epochs")
        steps = self.at_updates or self.at_epochs
        if any(isinstance(s, bool) or not isinstance(s, int) for s in steps) or steps[0] < 1 \
                or any(b <= a for a, b in itertools.pairwise(steps)):
            raise ScheduleError(f"multi_step steps must be increasing positive integers: "
                                f"{list(steps)}")

    def rate(self, base_lr: float, update: int, per_epoch: int) -> float:
        """``base * factor ** (steps below k)``: MXNet's MultiFactorScheduler, stateless."""
        steps = self.at_updates or [e * per_epoch for e in self.at_epochs]
        return base_lr * self.factor ** bisect.bisect_left(steps, update)


@dataclass(frozen=True)
class Warmup:
    """Before the schedule proper: ``updates`` updates at ``begin_lr`` (``mode='constant'``,
    the ResNet-110 recipe) or rising linearly from it (``mode='linear'``)."""

    updates: int
    begin_lr: float
    mode: str = "constant"

    def __post_init__(self) -> None:
        if isinstance(self.updates, bool) or not isinstance(self.updates, int) \
                or self.updates < 1:
            raise ScheduleError(f"warm-up updates must be an integer >= 1, "
                                f"not {self.updates!r}")
        # A linear warm-up may start from 0; a constant one at 0 would not train.
        _check_rate(self.begin_lr, "warm-up begin_lr", allow_zero=self.mode == "linear")
        if self.mode not in ("constant", "linear"):
            raise ScheduleError(f"warm-up mode must be 'constant' or 'linear', "
                                f"not {self.mode!r}")


Schedule = Constant | EpochTable | StepDecay | MultiStep


@dataclass(frozen=True)
class LROverride:
    """A rate set by hand on resume (``--lr``, the book's manual drop) from ``epoch`` on."""

    epoch: int
    lr: float

    def __post_init__(self) -> None:
        _check_rate(self.lr, f"learning rate set by hand from epoch {self.epoch}")


@dataclass(frozen=True)
class ScheduleSpec:
    """Everything that defines the rate at update k: what a checkpoint must reproduce."""

    base_lr: float
    schedule: Schedule = field(default_factory=Constant)
    warmup: Warmup | None = None
    overrides: tuple[LROverride, ...] = ()

    def __post_init__(self) -> None:
        _check_rate(self.base_lr, "base_lr")
        if isinstance(self.schedule, EpochTable) and self.schedule.table[0] != self.base_lr:
            raise ScheduleError(f"learning-rate table {self.schedule.table} must start at "
                                f"base_lr {self.base_lr}")

    def rate(self, update: int, per_epoch: int) -> float:
        """The rate of update ``update`` (counted from 1), ``per_epoch`` updates an epoch:
        the schedule, under its warm-up, under the rates set by hand from their epochs on."""
        if per_epoch < 1:
            raise ValueError(f"updates_per_epoch must be positive, got {per_epoch}")
        by_hand = [o.lr for o in sorted(self.overrides, key=lambda o: o.epoch)
                   if update >= o.epoch * per_epoch + 1]
        if by_hand:
            return by_hand[-1]
        scheduled = self.schedule.rate(self.base_lr, update, per_epoch)
        warmup = self.warmup
        if warmup is None or update > warmup.updates:
            return scheduled
        if warmup.mode == "constant":
            return warmup.begin_lr
        return warmup.begin_lr + (scheduled - warmup.begin_lr) * update / warmup.updates


def finite_number(value: Any) -> bool:
    """An int or float (not a bool) that is finite, also as a float (10**400 is not)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _check_rate(value: Any, what: str, allow_zero: bool = False) -> None:
    if not finite_number(value) or value < 0 or (value == 0 and not allow_zero):
        raise ScheduleError(f"{what} must be a number {'>=' if allow_zero else '>'} 0, "
                            f"not {value!r}")


def _check_factor(value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ScheduleError(f"decay factor must lie in (0, 1], not {value!r}")


_KINDS: dict[str, type] = {"constant": Constant, "epoch_table": EpochTable,
                           "step_decay": StepDecay, "multi_step": MultiStep}


def _from_fields(cls: type, data: Mapping[str, Any], what: str) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known, key=str)
    if unknown:
        raise ScheduleError(f"{what}: unknown key {unknown[0]!r}; known keys: "
                            f"{', '.join(sorted(known)) or 'none'}")
    try:
        return cls(**data)
    except TypeError as exc:
        raise ScheduleError(f"{what}: {exc}") from None


def schedule_from_data(data: Any) -> Schedule:
    """A schedule from its plain-data form (module docstring), or an already built one."""
    if isinstance(data, (Constant, EpochTable, StepDecay, MultiStep)):
        return data
    if not isinstance(data, Mapping) or not isinstance(data.get("kind"), str) \
            or data["kind"] not in _KINDS:
        raise ScheduleError(f"a schedule is a dict with 'kind' one of {', '.join(_KINDS)}, "
                            f"not {data!r}")
    rest = {key: value for key, value in data.items() if key != "kind"}
    if data["kind"] == "epoch_table" and isinstance(rest.get("table"), Mapping):
        rest["table"] = dict(rest["table"])
    return _from_fields(_KINDS[data["kind"]], rest, f"schedule {data['kind']}")


def warmup_from_data(data: Any) -> Warmup | None:
    if data is None or isinstance(data, Warmup):
        return data
    if not isinstance(data, Mapping):
        raise ScheduleError(f"a warm-up is a dict (updates, begin_lr, mode), not {data!r}")
    return _from_fields(Warmup, data, "warm-up")


def scale_schedule(spec: ScheduleSpec, factor: float, warmup_updates: int = 0) -> ScheduleSpec:
    """Every scheduled rate times ``factor`` (the linear scaling rule for ``factor`` times the
    batch), optionally reached by a linear warm-up from the unscaled rate (Goyal et al. 2017).

    Rates set by hand (``overrides``) are kept as given.
    """
    schedule = spec.schedule
    if isinstance(schedule, EpochTable):
        schedule = EpochTable({epoch: lr * factor for epoch, lr in schedule.table.items()})
    warmup = spec.warmup
    if warmup_updates > 0:
        warmup = Warmup(updates=warmup_updates, begin_lr=spec.base_lr, mode="linear")
    return replace(spec, base_lr=spec.base_lr * factor, schedule=schedule, warmup=warmup)
