"""The published recipes as data: the rate each gives at chosen epochs and updates."""

from __future__ import annotations

import mxnet as mx
import numpy as np
import pytest

from pyimagesearch.settings import recipes
from pyimagesearch.training.lr_schedulers import build_lr_scheduler, lr_at_epoch_start
from pyimagesearch.training.optimizers import create_optimizer

# ImageNet's 1,281,167 training images less the 50,000 test images carved out of them,
# at the reproductions' batch of 32 x 2.
IMAGENET_UPDATES = -(-(1_281_167 - 50_000) // 64)


def rate(recipe, update, per_epoch=IMAGENET_UPDATES):
    """The rate of update ``update`` (counted from 1) from a fresh scheduler, as on resume."""
    return build_lr_scheduler(recipe.schedule_spec(), per_epoch)(update)


def test_paper_rmsprop_decays_by_0_94_every_two_epochs():
    recipe = recipes.PAPER_IRV2_RMSPROP
    assert (recipe.optimizer, recipe.base_lr) == ("rmsprop", 0.045)
    assert recipe.optimizer_params == {"gamma1": 0.9, "epsilon": 1.0, "centered": False}
    spec = recipe.schedule_spec()
    expected = {0: 0.045, 1: 0.045, 2: 0.045 * 0.94, 3: 0.045 * 0.94, 10: 0.045 * 0.94**5,
                100: 0.045 * 0.94**50, 159: 0.045 * 0.94**79}
    for epoch, lr in expected.items():
        assert lr_at_epoch_start(spec, IMAGENET_UPDATES, epoch) == pytest.approx(lr), epoch
    # The last update of epoch 1 still uses the old rate.
    assert rate(recipe, 2 * IMAGENET_UPDATES) == pytest.approx(0.045)
    assert rate(recipe, 2 * IMAGENET_UPDATES + 1) == pytest.approx(0.045 * 0.94)


def test_caffe_sgd_has_the_papers_schedule_with_momentum():
    recipe = recipes.CAFFE_IRV2_SGD
    assert (recipe.optimizer, recipe.base_lr, recipe.momentum) == ("sgd", 0.045, 0.9)
    assert (recipe.batch_per_device, recipe.num_devices) == (32, 2)
    spec = recipe.schedule_spec()
    for epoch, lr in {0: 0.045, 2: 0.045 * 0.94, 20: 0.045 * 0.94**10,
                      119: 0.045 * 0.94**59}.items():
        assert lr_at_epoch_start(spec, IMAGENET_UPDATES, epoch) == pytest.approx(lr), epoch


def test_torch_sgd_steps_by_0_96_every_12800_updates():
    recipe = recipes.TORCH_IRV2_SGD
    assert (recipe.optimizer, recipe.base_lr, recipe.momentum) == ("sgd", 0.045, 0.9)
    assert (recipe.batch_per_device, recipe.num_devices, recipe.num_epochs) == (32, 2, 90)
    assert rate(recipe, 1) == pytest.approx(0.045)
    assert rate(recipe, 12800) == pytest.approx(0.045)
    assert rate(recipe, 12801) == pytest.approx(0.045 * 0.96)
    assert rate(recipe, 25601) == pytest.approx(0.045 * 0.96**2)
    # In epochs of our ImageNet train split at batch 64 (19,237 updates an epoch): a step
    # every 0.67 epochs, 135 by epoch 90 (the reproduction, on all 1.28M images, logged
    # 1,801,710 updates: 140 steps). Steps taken before epoch N: 19,237 N // 12,800.
    spec = recipe.schedule_spec()
    for epoch, steps in {1: 1, 10: 15, 45: 67, 89: 133, 90: 135}.items():
        assert lr_at_epoch_start(spec, IMAGENET_UPDATES, epoch) == \
            pytest.approx(0.045 * 0.96**steps), epoch


def test_torch_setting1_differs_only_in_momentum():
    one, default = recipes.TORCH_IRV2_SGD_SETTING1, recipes.TORCH_IRV2_SGD
    assert one.momentum == pytest.approx(0.9 / 1.9, abs=1e-4)
    assert (one.base_lr, one.schedule, one.num_epochs) == \
        (default.base_lr, default.schedule, default.num_epochs)


@pytest.mark.parametrize("name", sorted(recipes.RECIPES))
def test_every_recipe_builds_its_mxnet_optimizer(name):
    recipe = recipes.RECIPES[name]
    optimizer = create_optimizer(recipe, 100)
    assert type(optimizer).__name__.lower() == recipe.optimizer
    assert optimizer.lr_scheduler(1) == pytest.approx(
        recipe.warmup.begin_lr if recipe.warmup else recipe.base_lr)
    assert recipe.source and recipe.name == name


def test_mxnet_rmsprop_puts_epsilon_inside_the_square_root_as_tensorflow():
    """What makes the paper's epsilon 1.0 carry over unchanged."""
    weight, grad, n = mx.nd.zeros(1), mx.nd.ones(1), mx.nd.zeros(1)
    mx.nd.rmsprop_update(weight, grad, n, out=weight, lr=1.0, gamma1=0.9, epsilon=1.0)
    np.testing.assert_allclose(weight.asnumpy(), [-1 / np.sqrt(0.1 + 1.0)], rtol=1e-6)


def test_torch_and_mxnet_momentum_agree_at_a_constant_rate_and_differ_at_a_change():
    """docs/inception_resnet_v2.md: Torch v = mu v + g, w -= lr v; MXNet v = mu v - lr g, w += v."""
    mu, grads = 0.9, [0.5, -0.2, 0.3, 0.1, 0.4, -0.1]

    def torch_style(rates):
        w, v = 0.0, 0.0
        for lr, g in zip(rates, grads):
            v = mu * v + g
            w -= lr * v
        return w

    def mxnet_style(rates):
        weight, state = mx.nd.zeros(1), mx.nd.zeros(1)
        for lr, g in zip(rates, grads):
            mx.nd.sgd_mom_update(weight, mx.nd.array([g]), state, out=weight, lr=lr,
                                 momentum=mu, wd=0.0)
        return float(weight.asscalar())

    constant = [0.1] * 6
    assert mxnet_style(constant) == pytest.approx(torch_style(constant), rel=1e-5)
    dropped = [0.1] * 3 + [0.01] * 3
    # After the drop Torch applies the new rate to the whole buffer; MXNet's buffer still
    # carries steps taken at the old rate, so it moves further.
    assert abs(mxnet_style(dropped)) > abs(torch_style(dropped)) * 1.5


@pytest.mark.parametrize("recipe, rates, end", [
    (recipes.BOOK_GOOGLENET_EXP1, {0: 1e-2, 14: 1e-2, 15: 1e-3, 24: 1e-3, 25: 1e-4, 29: 1e-4}, 30),
    (recipes.BOOK_GOOGLENET_EXP2, {0: 1e-3, 69: 1e-3, 70: 1e-4, 79: 1e-4, 80: 1e-5, 84: 1e-5}, 85),
    (recipes.BOOK_GOOGLENET_ADAM, {0: 1e-3, 29: 1e-3, 30: 1e-4, 44: 1e-4, 45: 1e-5, 49: 1e-5}, 50),
])
def test_the_books_experiments_lower_the_rate_where_the_book_stopped(recipe, rates, end):
    # The book's resume at --start-epoch 15 trains epoch 15 (the 16th) at the lower rate:
    # the table's keys are the epochs a new rate starts at, as --start-epoch counts them.
    spec = recipe.schedule_spec()
    for epoch, lr in rates.items():
        assert lr_at_epoch_start(spec, IMAGENET_UPDATES, epoch) == pytest.approx(lr), epoch
    assert recipe.num_epochs == end
    assert (recipe.batch_per_device, recipe.num_devices, recipe.weight_decay) == (128, 3, 2e-4)
    assert recipe.optimizer == ("adam" if recipe is recipes.BOOK_GOOGLENET_ADAM else "sgd")


def test_sgd_by_hand_keeps_one_rate_until_lr_lowers_it():
    recipe = recipes.BOOK_GOOGLENET_SGD
    assert (recipe.optimizer, recipe.base_lr, recipe.momentum) == ("sgd", 1e-2, 0.9)
    spec = recipe.schedule_spec()
    assert {lr_at_epoch_start(spec, IMAGENET_UPDATES, e) for e in (0, 15, 49)} == {1e-2}
