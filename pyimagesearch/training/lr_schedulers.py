"""MXNet ``lr_scheduler`` objects for the schedules of :mod:`pyimagesearch.settings.schedules`,
each a pure function of the update count, so a resumed run gets the uninterrupted rate.
"""

from __future__ import annotations

import bisect

import mxnet as mx

from pyimagesearch.settings.schedules import (
    Constant,
    EpochTable,
    MultiStep,
    ScheduleSpec,
    StepDecay,
    Warmup,
)


class EpochTableScheduler(mx.lr_scheduler.LRScheduler):
    """A pure function of the update count: the rate of the epoch that update falls in."""

    def __init__(self, table: dict[int, float], updates_per_epoch: int) -> None:
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
    # The schedules check themselves when built (schedules.py): here they are valid.
    if isinstance(schedule, EpochTable):
        scheduler: mx.lr_scheduler.LRScheduler = EpochTableScheduler(dict(schedule.table),
                                                                     updates_per_epoch)
    elif isinstance(schedule, StepDecay):
        step = schedule.every_updates or round(schedule.every_epochs * updates_per_epoch)
        scheduler = StepDecayScheduler(spec.base_lr, max(int(step), 1), schedule.factor)
    elif isinstance(schedule, MultiStep):
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



def lr_at_epoch_start(spec: ScheduleSpec, updates_per_epoch: int, epoch: int) -> float:
    """The rate the first update of ``epoch`` uses (what the log reports per epoch)."""
    return build_lr_scheduler(spec, updates_per_epoch)(epoch * updates_per_epoch + 1)
