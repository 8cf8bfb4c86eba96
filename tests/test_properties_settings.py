"""Settings from config files and flags, fed generated values (Hypothesis): every declared
setting, every flag of ``ARGUMENT_KINDS``, recipes and schedules given as nested data.

Any value ends in the value the setting uses (of the right type, and checked again to
itself) or in one line naming the config, the setting and the problem; never another
exception. Examples that once failed are pinned with ``@example``.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pyimagesearch.settings import (
    ARGUMENT_KINDS,
    DECLARED,
    ConfigError,
    Settings,
    argument_type,
    to_json,
    validate,
)
from pyimagesearch.settings.kinds import Items, Text
from pyimagesearch.settings.recipes import RECIPES, Recipe, RecipeError, recipe_from_data
from pyimagesearch.settings.schedules import (
    Constant,
    EpochTable,
    MultiStep,
    ScheduleError,
    ScheduleSpec,
    StepDecay,
    schedule_from_data,
)
from pyimagesearch.training.lr_schedulers import build_lr_scheduler

PROPERTY = settings(max_examples=100, deadline=None, database=None)

SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.integers(-3, 300),
    st.sampled_from([10**400, -(10**400), 2**63, 0.0, -0.0, 1e-300, 1e308]),
    st.floats(), st.text(max_size=8), st.sampled_from(["last", "xavier", "sgd", "rank1",
                                                      "float16", "book-googlenet-sgd"]),
    st.binary(max_size=4), st.builds(Path, st.text(max_size=6)),
    st.builds(np.array, st.lists(st.integers(0, 3), min_size=2, max_size=3)),
    st.sampled_from([np.float64(0.5), np.int64(3), np.bool_(True), np.str_("xavier")]))
KEYS = st.one_of(st.text(max_size=6), st.integers(-2, 40),
                 st.sampled_from(["interval", "patience", "metric", "rand_crop", "base",
                                  "name", "kind", "images_per_batch", "table", "0"]))
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.lists(inner, max_size=3).map(tuple),
                            st.dictionaries(KEYS, inner, max_size=4),
                            st.frozensets(st.integers(0, 3), max_size=3)),
    max_leaves=10)


def one_line(message: str) -> None:
    assert message and "\n" not in message and "\r" not in message, message


@PROPERTY
@given(name=st.sampled_from(sorted(DECLARED)), value=VALUES)
@example(name="BUILD_WORKER_TIMEOUT", value=10**400)
@example(name="RECIPE", value={"base": ["book-googlenet-sgd"]})
@example(name="RECIPE", value={1: 2, "a": 3})
@example(name="RECIPE", value={"base": "book-googlenet-sgd", "weight_decay": 10**400})
@example(name="RECIPE", value={"base": "book-googlenet-sgd", "optimizer_params": [1]})
@example(name="RECIPE", value={"base": "book-googlenet-sgd", "name": "a\nb", "num_epochs": 0})
@example(name="RECIPE", value={"base": "book-googlenet-sgd",
                               "schedule": {"kind": "epoch_table", "table": [0, 1]}})
@example(name="RECIPE", value={"base": "book-googlenet-sgd", "schedule": {"kind": ["x"]}})
@example(name="RECIPES_BY_DEPTH", value={20: {"base": "paper-cifar-resnet",
                                              "schedule": {"kind": "step_decay", "factor": 0.5,
                                                           "every_epochs": math.inf}}})
def test_any_value_of_any_setting_is_used_or_refused_in_one_line(name, value):
    try:
        checked = validate({name: value}, "cfg.py")
    except ConfigError as error:
        one_line(str(error))
        assert str(error).startswith(f"cfg.py: {name} = ")
        return
    assert isinstance(checked, Settings)
    used = getattr(checked, name)
    kind = DECLARED[name].kind
    assert kind.check(used) == used  # what a setting holds passes its own check
    json.dumps(to_json(used))        # and goes into a checkpoint's JSON
    if isinstance(used, Recipe):
        check_rates(used.schedule_spec())


def check_rates(spec: ScheduleSpec) -> None:
    """An accepted schedule gives a finite rate at the first updates and far on."""
    for updates_per_epoch in (1, 500):
        scheduler = build_lr_scheduler(spec, updates_per_epoch)
        for update in (1, 2, 10**6):
            assert math.isfinite(scheduler(update)) and scheduler(update) >= 0


@PROPERTY
@given(flag=st.sampled_from(sorted(ARGUMENT_KINDS)),
       text=st.one_of(st.text(max_size=12),
                      st.from_regex(r"-?[0-9]{1,6}(\.[0-9]*)?", fullmatch=True),
                      st.sampled_from(["nan", "inf", "-inf", "1e999", "last", "0,1", "0,0",
                                       "1,-2", "", " 3 ", "1_0", "0x10", "9" * 5000,
                                       "1\n2", "1.5"])))
@example(flag="--lr", text="1\nfast")
@example(flag="--end-epoch", text="9" * 5000)
def test_any_text_of_any_flag_is_a_value_or_one_line(flag, text):
    convert = argument_type(flag)
    try:
        value = convert(text)
    except argparse.ArgumentTypeError as error:
        one_line(str(error))
        return
    assert ARGUMENT_KINDS[flag].check(value) == value


SCHEDULE_KEYS = ("kind", "table", "factor", "every_updates", "every_epochs", "at_updates",
                 "at_epochs")
SCHEDULES = st.one_of(VALUES, st.dictionaries(
    st.sampled_from(SCHEDULE_KEYS),
    st.one_of(VALUES, st.sampled_from(["constant", "epoch_table", "step_decay", "multi_step"]),
              st.floats(0, 1), st.integers(1, 100), st.lists(st.integers(0, 90), max_size=4),
              st.dictionaries(st.integers(0, 40), st.floats(0, 1), max_size=3)),
    max_size=4))


@PROPERTY
@given(data=SCHEDULES)
@example(data={"kind": "epoch_table", "table": "abc"})
@example(data={"kind": {}})
@example(data={"kind": "step_decay", "factor": 0.5, "every_epochs": math.inf})
@example(data={"kind": "step_decay", "factor": 0.5, "every_updates": 2.5})
@example(data={"kind": "epoch_table", "table": {0: 10**400}})
@example(data={"kind": "multi_step", 1: 2, "x": 0.5})
def test_any_schedule_data_is_a_schedule_or_a_schedule_error(data):
    try:
        schedule = schedule_from_data(data)
    except ScheduleError as error:
        one_line(str(error))
        return
    assert isinstance(schedule, (Constant, EpochTable, StepDecay, MultiStep))
    base = schedule.table[0] if isinstance(schedule, EpochTable) else 0.1
    check_rates(ScheduleSpec(base_lr=base, schedule=schedule))


RECIPE_FIELDS = ("base", "name", "source", "optimizer", "base_lr", "num_epochs", "weight_decay",
                 "momentum", "optimizer_params", "schedule", "warmup", "batch_per_device",
                 "num_devices")
RECIPE_DATA = st.one_of(VALUES, st.dictionaries(
    st.sampled_from(RECIPE_FIELDS),
    st.one_of(VALUES, st.sampled_from(sorted(RECIPES)), st.floats(0, 1), st.integers(1, 9),
              SCHEDULES, st.dictionaries(st.sampled_from(["updates", "begin_lr", "mode"]),
                                         VALUES | st.integers(1, 5) | st.floats(0, 1))),
    max_size=5).map(lambda d: {"base": "book-googlenet-sgd", **d}) | st.dictionaries(
    st.sampled_from(RECIPE_FIELDS), VALUES, max_size=6))


@PROPERTY
@given(data=RECIPE_DATA)
@example(data={"base": {}})
@example(data={"base": "paper-cifar-resnet", "batch_per_device": "many"})
@example(data={"base": "paper-cifar-resnet", "source": ["a"]})
def test_any_recipe_data_is_a_recipe_or_a_recipe_error(data):
    try:
        recipe = recipe_from_data(data)
    except RecipeError as error:
        one_line(str(error))
        return
    assert isinstance(recipe, Recipe) and recipe_from_data(recipe) is recipe
    assert isinstance(recipe.name, str) and isinstance(recipe.source, str)
    assert all(isinstance(k, str) for k in recipe.optimizer_params)
    check_rates(recipe.schedule_spec())


def test_a_long_list_of_class_folders_is_checked_in_linear_time():
    """Distinct items were found by counting each in the whole list: minutes for 50,000."""
    names = [f"class{k}" for k in range(50_000)]
    start = time.perf_counter()
    assert Items(Text()).check(names) == tuple(names)
    assert time.perf_counter() - start < 5
