"""The health monitor: its log lines both ways, what it measures, dying and diverging runs."""

from __future__ import annotations

import math

import mxnet as mx
import numpy as np
import pytest
from conftest import config_with
from mxnet import autograd, gluon

import train_googlenet
from pyimagesearch.config import ConfigError, load_config
from pyimagesearch.data.dataset import check_dataset
from pyimagesearch.data.iterators import Normalizer, training_iterator
from pyimagesearch.nn.build import build_network
from pyimagesearch.nn.layers import GlobalAvgPool
from pyimagesearch.run.logs import TrainingLog
from pyimagesearch.settings import validate
from pyimagesearch.training.health import (
    HealthMonitor,
    HealthSettings,
    format_dying_line,
    format_health_line,
    health_settings,
    last_feature_map,
    observers_from_config,
    parse_health_lines,
)
from pyimagesearch.training.loop import (
    EpochProgress,
    StepContext,
    StopFlag,
    TrainingDiverged,
    TrainingSetup,
    train_epoch,
)
from pyimagesearch.training.optimizers import create_optimizer

BATCH = 8  # the tiny dataset's 32 training images make 4 updates per epoch


def make_setup(config, tmp_path, observers=(), name="run"):
    contexts = [mx.cpu()]
    net = build_network(config, contexts, seed=5)
    trainer = gluon.Trainer(net.collect_params(), create_optimizer(config.RECIPE, 4),
                            update_on_kvstore=False)
    log = TrainingLog(tmp_path / f"training_{name}.log", console=False)
    info = check_dataset(config, ("train",))
    return TrainingSetup(net=net, trainer=trainer, contexts=contexts, batch_size=BATCH,
                         log=log, log_interval=100, seed=5, observers=list(observers),
                         normalize=Normalizer(info.mean, info.mean_image))


def run_epochs(setup, config, epochs=1):
    info = check_dataset(config, ("train",))
    try:
        for epoch in range(epochs):
            mx.random.seed(epoch)
            train_epoch(setup, training_iterator(config, info, BATCH, epoch, seed=5), epoch,
                        StopFlag(), EpochProgress(epoch))
    finally:
        setup.log.close()


@pytest.fixture(scope="module")
def config(tiny_dataset_config):
    return load_config(str(tiny_dataset_config))


def test_log_lines_round_trip(tmp_path):
    path = tmp_path / "training_0.log"
    lines = [format_health_line(3, 200, 2.731, 1.234, 0.412),
             "Epoch[3] Batch [200]\tSpeed: 412.37 samples/sec\taccuracy=0.412000",
             format_health_line(3, 300, math.nan, math.inf, math.nan),
             format_dying_line(4, 100, "99.95% of the last feature map is zero"),
             "INFO:root:" + format_health_line(5, 10, 1e-7, 12345.5, 1.0)]
    path.write_text("\n".join(lines) + "\n")
    assert lines[0] == ("Epoch[3] Batch [200]\tHealth: loss=2.731000\tgrad-norm=1.234000"
                        "\tzero-fraction=0.412000")
    assert lines[3] == ("Epoch[4] Batch [100]\tWarning: network is dying: 99.95% of the last "
                        "feature map is zero")
    parsed = parse_health_lines(path)
    assert [(c.epoch, c.batch) for c in parsed.checks] == [(3, 200), (3, 300), (5, 10)]
    assert (parsed.checks[0].loss, parsed.checks[0].grad_norm,
            parsed.checks[0].zero_fraction) == (2.731, 1.234, 0.412)
    assert math.isnan(parsed.checks[1].loss) and math.isinf(parsed.checks[1].grad_norm)
    assert parsed.checks[2].zero_fraction == 1.0
    assert [(w.epoch, w.batch, w.details) for w in parsed.warnings] == \
        [(4, 100, "99.95% of the last feature map is zero")]


def test_settings_come_from_the_config_with_defaults(tmp_path):
    config = validate({}, "test-config")
    assert health_settings(config) == HealthSettings(100, 0.99, 3)
    config = config.replace(HEALTH={"interval": 7})
    assert health_settings(config) == HealthSettings(7, 0.99, 3)
    assert observers_from_config(config)[0].interval == 7
    config = config.replace(HEALTH=None)
    assert health_settings(config) is None and observers_from_config(config) == []
    for bad in ({"intervall": 5}, {"interval": 0}, {"dead_fraction": 1.5}, [100]):
        with pytest.raises(ConfigError, match="HEALTH"):
            config.replace(HEALTH=bad)


def test_a_check_measures_without_touching_weights_or_bn_statistics(config, tmp_path):
    setup = make_setup(config, tmp_path)
    net, trainer = setup.net, setup.trainer
    rng = np.random.RandomState(0)
    data = mx.nd.array(rng.uniform(-60, 60, (BATCH, 3, 28, 28)))
    labels = mx.nd.array(rng.randint(0, 4, BATCH))
    with autograd.record():
        losses = setup.loss_fn(net(data), labels)
    losses.backward()
    trainer.step(BATCH)
    before = {name: p.data().asnumpy().copy() for name, p in net.collect_params().items()}
    assert any(name.endswith("running_mean") for name in before)

    monitor = HealthMonitor(HealthSettings(interval=1))
    loss, norm, zero = monitor.measure(StepContext(0, 0, net, trainer, [data], [losses],
                                                   setup.log))
    setup.log.close()
    for name, param in net.collect_params().items():
        np.testing.assert_array_equal(param.data().asnumpy(), before[name], err_msg=name)

    assert loss == pytest.approx(losses.asnumpy().mean(), rel=1e-5)
    grads = [p.grad().asnumpy() for p in net.collect_params().values() if p.grad_req != "null"]
    assert norm == pytest.approx(math.sqrt(sum(float((g.astype(np.float64) ** 2).sum())
                                               for g in grads)) / BATCH, rel=1e-4)
    # The map that goes into global pooling, computed here the long way, in inference mode.
    x = data
    for layer in [net.features[i] for i in range(len(net.features))][:-1]:
        x = layer(x)
    assert isinstance(net.features[len(net.features) - 1], GlobalAvgPool)
    assert zero == pytest.approx(float((x.asnumpy() == 0).mean()), abs=1e-6)
    assert 0.0 < zero < 1.0
    assert last_feature_map(net)(data).shape == x.shape


def test_checks_change_nothing_the_run_computes(config, tmp_path):
    plain = make_setup(config, tmp_path, name="plain")
    run_epochs(plain, config, epochs=2)
    watched = make_setup(config, tmp_path, [HealthMonitor(HealthSettings(interval=1))],
                         name="watched")
    run_epochs(watched, config, epochs=2)
    for (name, a), b in zip(plain.net.collect_params().items(),
                            watched.net.collect_params().values()):
        np.testing.assert_array_equal(a.data().asnumpy(), b.data().asnumpy(), err_msg=name)


def test_a_healthy_run_logs_checks_and_stays_quiet(tiny_dataset_config, tmp_path):
    config = config_with(tiny_dataset_config, tmp_path / "healthy.py", BATCH_SIZE=4,
                         HEALTH={"interval": 1, "patience": 2})
    # Two CPU contexts, batch 4 each: the multi-device path (slices, summed gradients).
    assert train_googlenet.main(["--config", str(config), "--checkpoints", str(tmp_path),
                                 "--prefix", "net", "--end-epoch", "2",
                                 "--cpu-contexts", "2"]) == 0
    log = tmp_path / "training_0.log"
    assert "Health monitor: every 1 updates" in log.read_text()
    parsed = parse_health_lines(log)
    assert [(c.epoch, c.batch) for c in parsed.checks] == \
        [(e, b) for e in range(2) for b in range(1, 5)]
    assert all(math.isfinite(c.loss) and c.grad_norm > 0 for c in parsed.checks)
    assert all(0.0 <= c.zero_fraction < 0.99 for c in parsed.checks)
    assert parsed.warnings == []


def test_a_dying_network_is_reported(config, tmp_path):
    monitor = HealthMonitor(HealthSettings(interval=1, dead_fraction=0.99, patience=3))
    setup = make_setup(config, tmp_path, [monitor], name="dying")
    # Kill the last block before global pooling: a large negative BN shift puts every
    # unit below ReLU's threshold, where no gradient reaches it again (the paper's
    # "dying" network, provoked in one stroke).
    last_block = setup.net.features[len(setup.net.features) - 2]
    betas = [p for name, p in last_block.collect_params().items() if name.endswith("beta")]
    assert betas
    for beta in betas:
        beta.set_data(mx.nd.full(beta.shape, -50.0))
    run_epochs(setup, config, epochs=2)
    parsed = parse_health_lines(setup.log.path)
    assert [c.zero_fraction for c in parsed.checks] == [1.0] * 8
    # Warned at the third dead check in a row, then every third one after it.
    assert [(w.epoch, w.batch) for w in parsed.warnings] == [(0, 3), (1, 2)]
    assert "100.00% of the last feature map before global pooling is exactly zero" in \
        parsed.warnings[0].details
    assert "for 3 checks in a row" in parsed.warnings[0].details


def test_a_non_finite_loss_stops_the_run_naming_epoch_and_batch(config, tmp_path):
    setup = make_setup(config, tmp_path)
    data = mx.nd.zeros((BATCH, 3, 28, 28))
    with autograd.record():
        losses = setup.loss_fn(setup.net(data), mx.nd.zeros(BATCH))
    losses.backward()
    setup.trainer.step(BATCH)
    broken = losses.copy()
    broken[3] = math.nan
    monitor = HealthMonitor(HealthSettings(interval=1))
    with pytest.raises(TrainingDiverged, match="at epoch 2, batch 7") as caught:
        monitor.observe(StepContext(2, 7, setup.net, setup.trainer, [data], [broken],
                                    setup.log))
    setup.log.close()
    assert (caught.value.epoch, caught.value.batch) == (2, 7)
    (check,) = parse_health_lines(setup.log.path).checks
    assert (check.epoch, check.batch) == (2, 7) and math.isnan(check.loss)
