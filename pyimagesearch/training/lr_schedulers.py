"""The MXNet ``lr_scheduler`` of a schedule: each update's rate is the schedule's pure
function of the update count (:meth:`ScheduleSpec.rate`), so a resumed run gets the rate an
uninterrupted one had (MXNet's own schedulers keep running state)."""

from __future__ import annotations

import mxnet as mx

from pyimagesearch.settings.schedules import ScheduleSpec


class SpecScheduler(mx.lr_scheduler.LRScheduler):
    def __init__(self, spec: ScheduleSpec, updates_per_epoch: int) -> None:
        spec.rate(1, updates_per_epoch)  # refuses an impossible epoch length at once
        super().__init__(base_lr=spec.base_lr)
        self.spec, self.updates_per_epoch = spec, updates_per_epoch

    def __call__(self, num_update: int) -> float:
        return self.spec.rate(num_update, self.updates_per_epoch)


def build_lr_scheduler(spec: ScheduleSpec, updates_per_epoch: int) -> mx.lr_scheduler.LRScheduler:
    """The MXNet scheduler for a spec, given the number of updates an epoch takes."""
    return SpecScheduler(spec, updates_per_epoch)


def lr_at_epoch_start(spec: ScheduleSpec, updates_per_epoch: int, epoch: int) -> float:
    """The rate the first update of ``epoch`` uses (what the log reports per epoch)."""
    return spec.rate(epoch * updates_per_epoch + 1, updates_per_epoch)
