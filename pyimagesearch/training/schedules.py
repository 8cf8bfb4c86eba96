"""Learning-rate schedules as functions of the update count.

MXNet's optimizer asks its ``lr_scheduler`` for the rate at every update, passing the
number of updates done so far. Because every schedule here depends only on that
number (and the fixed number of updates per epoch), a run resumed at epoch N with
the restored update count gets exactly the rate an uninterrupted run would have had
-- no bookkeeping, as in fb.resnet.torch.
"""

from __future__ import annotations

import bisect
import itertools
from dataclasses import dataclass, field, replace

import mxnet as mx


@dataclass(frozen=True)
class Constant:
    """The base rate throughout (the book's "manual drops" style: change it with ``--lr``)."""


@dataclass(frozen=True)
class EpochTable:
    """Piecewise constant: ``{first_epoch: lr}``, e.g. the book's Adam experiment
    ``{0: 1e-3, 30: 1e-4, 45: 1e-5}``. Epoch 0 must be present."""

    table: dict[int, float]


@dataclass(frozen=True)
class StepDecay:
    """Multiply by ``factor`` every ``every_updates`` updates, or every ``every_epochs``
    epochs (Inception papers: 0.94 every 2 epochs; a Torch reproduction: 0.96 every
    12,800 iterations)."""

    factor: float
    every_updates: int | None = None
    every_epochs: float | None = None


@dataclass(frozen=True)
class MultiStep:
    """Multiply by ``factor`` at each listed update count, or epoch (ResNet: /10 at 32k
    and 48k iterations; the Torch CIFAR reproduction: at epochs 80 and 160)."""

    factor: float
    at_updates: tuple[int, ...] = ()
    at_epochs: tuple[int, ...] = ()


@dataclass(frozen=True)
class Warmup:
    """Before the schedule proper: ``updates`` updates at ``begin_lr`` (``mode='constant'``,
    the ResNet-110 recipe) or rising linearly from it (``mode='linear'``)."""

    updates: int
    begin_lr: float
    mode: str = "constant"


Schedule = Constant | EpochTable | StepDecay | MultiStep


@dataclass(frozen=True)
class LROverride:
    """A learning rate set by hand on resume (the book's ``--lr``), from ``epoch`` on."""

    epoch: int
    lr: float


class EpochTableScheduler(mx.lr_scheduler.LRScheduler):
    """A pure function of the update count: the rate of the epoch that update falls in."""

    def __init__(self, table: dict[int, float], updates_per_epoch: int) -> None:
        if 0 not in table:
            raise ValueError(f"learning-rate table must start at epoch 0: {table}")
        super().__init__(base_lr=table[0])
        self.epochs = sorted(table)
        self.rates = [table[epoch] for epoch in self.epochs]
        self.updates_per_epoch = updates_per_epoch

    def __call__(self, num_update: int) -> float:
        # The optimizer counts updates from 1: update k belongs to epoch (k-1) // n.
        epoch = max(num_update - 1, 0) // self.updates_per_epoch
        return self.rates[bisect.bisect_right(self.epochs, epoch) - 1]


class OverriddenScheduler(mx.lr_scheduler.LRScheduler):
    """A schedule whose rate is replaced from given update counts on (manual overrides)."""

    def __init__(self, base: mx.lr_scheduler.LRScheduler,
                 overrides: list[tuple[int, float]]) -> None:
        super().__init__(base_lr=base.base_lr)
        self.base = base
        self.starts = [start for start, _ in sorted(overrides)]
        self.rates = [lr for _, lr in sorted(overrides)]

    def __call__(self, num_update: int) -> float:
        position = bisect.bisect_right(self.starts, num_update) - 1
        return self.rates[position] if position >= 0 else self.base(num_update)


@dataclass(frozen=True)
class ScheduleSpec:
    """Everything that defines the rate at update k: what a checkpoint must reproduce."""

    base_lr: float
    schedule: Schedule = field(default_factory=Constant)
    warmup: Warmup | None = None
    overrides: tuple[LROverride, ...] = ()


class StepDecayScheduler(mx.lr_scheduler.LRScheduler):
    """``base * factor ** floor((k - 1) / step)``: MXNet's FactorScheduler as a pure
    function (that one keeps a running state and logs every change on the root logger)."""

    def __init__(self, base_lr: float, step: int, factor: float) -> None:
        super().__init__(base_lr=base_lr)
        self.step, self.factor = step, factor

    def __call__(self, num_update: int) -> float:
        return self.base_lr * self.factor ** (max(num_update - 1, 0) // self.step)


class MultiStepScheduler(mx.lr_scheduler.LRScheduler):
    """``base * factor ** (number of steps below k)``: MXNet's MultiFactorScheduler as a
    pure function."""

    def __init__(self, base_lr: float, steps: list[int], factor: float) -> None:
        if any(b <= a for a, b in itertools.pairwise(steps)) or (steps and steps[0] < 1):
            raise ValueError(f"learning-rate steps must be increasing positive counts: {steps}")
        super().__init__(base_lr=base_lr)
        self.steps, self.factor = list(steps), factor

    def __call__(self, num_update: int) -> float:
        return self.base_lr * self.factor ** bisect.bisect_left(self.steps, num_update)


class ConstantScheduler(mx.lr_scheduler.LRScheduler):
    def __call__(self, num_update: int) -> float:
        return self.base_lr


class WarmupScheduler(mx.lr_scheduler.LRScheduler):
    """The first ``updates`` updates at ``begin_lr`` (constant) or rising linearly from it
    to the scheduled rate (linear); the schedule proper afterwards."""

    def __init__(self, base: mx.lr_scheduler.LRScheduler, warmup: Warmup) -> None:
        if warmup.mode not in ("constant", "linear"):
            raise ValueError(f"warm-up mode must be 'constant' or 'linear', not {warmup.mode!r}")
        super().__init__(base_lr=base.base_lr)
        self.base, self.warmup = base, warmup

    def __call__(self, num_update: int) -> float:
        scheduled = self.base(num_update)
        if num_update > self.warmup.updates:
            return scheduled
        if self.warmup.mode == "constant":
            return self.warmup.begin_lr
        fraction = num_update / self.warmup.updates
        return self.warmup.begin_lr + (scheduled - self.warmup.begin_lr) * fraction


def build_lr_scheduler(spec: ScheduleSpec, updates_per_epoch: int) -> mx.lr_scheduler.LRScheduler:
    """The MXNet scheduler for a spec, given the number of updates an epoch takes."""
    if updates_per_epoch < 1:
        raise ValueError(f"updates_per_epoch must be positive, got {updates_per_epoch}")
    schedule = spec.schedule
    if isinstance(schedule, EpochTable):
        table = dict(schedule.table)
        if 0 not in table:
            raise ValueError(f"learning-rate table {table} must start at epoch 0")
        if table[0] != spec.base_lr:
            raise ValueError(f"learning-rate table {table} must start at base_lr {spec.base_lr}")
        scheduler: mx.lr_scheduler.LRScheduler = EpochTableScheduler(table, updates_per_epoch)
    elif isinstance(schedule, StepDecay):
        if (schedule.every_updates is None) == (schedule.every_epochs is None):
            raise ValueError("StepDecay needs exactly one of every_updates, every_epochs")
        step = schedule.every_updates or round(schedule.every_epochs * updates_per_epoch)
        scheduler = StepDecayScheduler(spec.base_lr, max(int(step), 1), schedule.factor)
    elif isinstance(schedule, MultiStep):
        if bool(schedule.at_updates) == bool(schedule.at_epochs):
            raise ValueError("MultiStep needs exactly one of at_updates, at_epochs")
        steps = list(schedule.at_updates) or [e * updates_per_epoch for e in schedule.at_epochs]
        scheduler = MultiStepScheduler(spec.base_lr, steps, schedule.factor)
    elif isinstance(schedule, Constant):
        scheduler = ConstantScheduler(base_lr=spec.base_lr)
    else:
        raise TypeError(f"unknown schedule {schedule!r}")
    if spec.warmup is not None:
        scheduler = WarmupScheduler(scheduler, spec.warmup)
    if spec.overrides:
        scheduler = OverriddenScheduler(
            scheduler, [(o.epoch * updates_per_epoch + 1, o.lr) for o in spec.overrides])
    return scheduler


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


def lr_at_epoch_start(spec: ScheduleSpec, updates_per_epoch: int, epoch: int) -> float:
    """The rate the first update of ``epoch`` uses (what the log reports per epoch)."""
    return build_lr_scheduler(spec, updates_per_epoch)(epoch * updates_per_epoch + 1)
