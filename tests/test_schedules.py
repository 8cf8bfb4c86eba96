"""Learning-rate schedules: the rate is a function of the update count, so resume is exact."""

import mxnet as mx
import pytest

from pyimagesearch.settings import recipes
from pyimagesearch.settings.schedules import (
    Constant,
    EpochTable,
    LROverride,
    MultiStep,
    ScheduleSpec,
    StepDecay,
    Warmup,
)
from pyimagesearch.training.lr_schedulers import build_lr_scheduler, lr_at_epoch_start

PER_EPOCH = 10


def rates(spec, updates, per_epoch=PER_EPOCH):
    scheduler = build_lr_scheduler(spec, per_epoch)
    return [scheduler(k) for k in updates]


def test_book_adam_table_drops_at_epochs_30_and_45():
    spec = recipes.BOOK_GOOGLENET_ADAM.schedule_spec()
    assert lr_at_epoch_start(spec, PER_EPOCH, 0) == 1e-3
    assert lr_at_epoch_start(spec, PER_EPOCH, 29) == 1e-3
    assert lr_at_epoch_start(spec, PER_EPOCH, 30) == 1e-4
    assert lr_at_epoch_start(spec, PER_EPOCH, 44) == 1e-4
    assert lr_at_epoch_start(spec, PER_EPOCH, 45) == 1e-5
    # The last update of epoch 29 still uses the old rate.
    assert rates(spec, [30 * PER_EPOCH, 30 * PER_EPOCH + 1]) == [1e-3, 1e-4]


@pytest.mark.parametrize("spec", [
    ScheduleSpec(0.1, EpochTable({0: 0.1, 3: 0.01, 7: 0.001})),
    ScheduleSpec(0.045, StepDecay(factor=0.94, every_epochs=2)),
    ScheduleSpec(0.045, StepDecay(factor=0.96, every_updates=7)),
    ScheduleSpec(0.1, MultiStep(factor=0.1, at_updates=(32, 48)), Warmup(4, 0.001)),
    ScheduleSpec(0.1, MultiStep(factor=0.1, at_epochs=(3, 6)), Warmup(5, 0.0, "linear")),
    ScheduleSpec(0.01, Constant(), overrides=(LROverride(4, 1e-3), LROverride(6, 1e-4))),
])
def test_a_fresh_scheduler_at_update_n_gives_the_uninterrupted_rate(spec):
    continuous = rates(spec, range(1, 100))
    for start in (1, 17, 40, 61, 99):
        resumed = build_lr_scheduler(spec, PER_EPOCH)
        assert [resumed(k) for k in range(start, 100)] == continuous[start - 1:]


def test_step_decay_every_two_epochs():
    spec = ScheduleSpec(0.045, StepDecay(factor=0.94, every_epochs=2))
    assert lr_at_epoch_start(spec, PER_EPOCH, 1) == pytest.approx(0.045)
    assert lr_at_epoch_start(spec, PER_EPOCH, 2) == pytest.approx(0.045 * 0.94)
    assert lr_at_epoch_start(spec, PER_EPOCH, 10) == pytest.approx(0.045 * 0.94**5)


def test_multistep_with_constant_warmup_as_for_resnet_110():
    spec = ScheduleSpec(0.1, MultiStep(factor=0.1, at_updates=(32000, 48000)), Warmup(400, 0.01))
    scheduler = build_lr_scheduler(spec, 391)
    assert scheduler(1) == pytest.approx(0.01)
    assert scheduler(400) == pytest.approx(0.01)
    assert scheduler(401) == pytest.approx(0.1)
    assert scheduler(32001) == pytest.approx(0.01)
    assert scheduler(48001) == pytest.approx(0.001)


def test_manual_override_applies_from_its_epoch_and_a_later_one_replaces_it():
    spec = ScheduleSpec(0.01, Constant(), overrides=(LROverride(3, 1e-3), LROverride(5, 1e-4)))
    assert [lr_at_epoch_start(spec, PER_EPOCH, e) for e in range(7)] == \
        [0.01, 0.01, 0.01, 1e-3, 1e-3, 1e-4, 1e-4]


def test_bad_schedules_are_refused():
    with pytest.raises(ValueError, match="epoch 0"):
        build_lr_scheduler(ScheduleSpec(0.1, EpochTable({5: 0.1})), PER_EPOCH)
    with pytest.raises(ValueError, match="base_lr"):
        build_lr_scheduler(ScheduleSpec(0.1, EpochTable({0: 0.2})), PER_EPOCH)
    with pytest.raises(ValueError, match="exactly one"):
        build_lr_scheduler(ScheduleSpec(0.1, StepDecay(0.9)), PER_EPOCH)
    with pytest.raises(ValueError, match="exactly one"):
        build_lr_scheduler(ScheduleSpec(0.1, MultiStep(0.1)), PER_EPOCH)


def test_pure_step_schedules_agree_with_mxnets_stateful_ones():
    factor = mx.lr_scheduler.FactorScheduler(step=7, factor=0.9, base_lr=0.05, stop_factor_lr=0)
    multi = mx.lr_scheduler.MultiFactorScheduler(step=[10, 25, 40], factor=0.1, base_lr=0.1)
    ours_factor = build_lr_scheduler(ScheduleSpec(0.05, StepDecay(0.9, every_updates=7)), 10)
    ours_multi = build_lr_scheduler(ScheduleSpec(0.1, MultiStep(0.1, at_updates=(10, 25, 40))),
                                    10)
    for k in range(1, 60):
        assert ours_factor(k) == pytest.approx(factor(k), rel=1e-12)
        assert ours_multi(k) == pytest.approx(multi(k), rel=1e-12)
