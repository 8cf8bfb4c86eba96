"""The health monitor: every ``interval`` updates the loss, the gradient norm and the
zero fraction of the last feature map; warns when the network is dying (Szegedy et al.
2016, section 3.3), stops on a non-finite loss. Its log lines are written and parsed here.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import NamedTuple

import mxnet as mx
from mxnet import autograd, gluon
from mxnet.gluon import nn

from pyimagesearch.config import Settings
from pyimagesearch.nn.layers import GlobalAvgPool
from pyimagesearch.run.logs import NUMBER
from pyimagesearch.settings.declared import HealthSettings, describe_watcher
from pyimagesearch.training.loop import StepContext, StepObserver, TrainingDiverged


def health_settings(config: Settings) -> HealthSettings | None:
    """The config's ``HEALTH`` over the defaults; ``None`` when ``HEALTH = None``."""
    return None if config.HEALTH is None else HealthSettings(**config.HEALTH)


# Starts the line describe_health writes; the run report finds the line by it.
MONITOR_LINE = "Health monitor:"


def describe_health(settings: HealthSettings | None) -> str:
    return describe_watcher(MONITOR_LINE, "HEALTH", settings)


def observers_from_config(config: Settings) -> list[StepObserver]:
    """The step observers a config asks for: the health monitor unless ``HEALTH = None``."""
    settings = health_settings(config)
    return [] if settings is None else [HealthMonitor(settings)]


def last_feature_map(net: gluon.Block) -> nn.HybridSequential | None:
    """``net.features`` up to (not including) its last global pooling, or None.

    Every network here ends ``features`` with global average pooling; what goes in is the
    map whose dead units the paper describes. The children are shared with ``net`` (and
    hybridized with it), so no weight is copied.
    """
    features = getattr(net, "features", None)
    if not isinstance(features, nn.HybridSequential):
        return None
    layers = [features[i] for i in range(len(features))]
    pools = [i for i, layer in enumerate(layers)
             if isinstance(layer, (GlobalAvgPool, nn.GlobalAvgPool2D, nn.GlobalMaxPool2D))]
    if not pools or pools[-1] == 0:
        return None
    trunk = nn.HybridSequential(prefix=features.prefix)
    for layer in layers[:pools[-1]]:
        trunk.register_child(layer)
    return trunk


def gradient_norm(trainer: gluon.Trainer, params: list[gluon.Parameter]) -> mx.nd.NDArray:
    """L2 norm of the gradient the optimizer applied, on the first device (a 1-element array).

    After ``Trainer.step`` every device holds the summed gradient; the optimizer scales it by
    ``rescale_grad`` (1 / batch size), so this is the norm of the batch-mean loss's gradient.
    """
    grads = [p.list_grad()[0] for p in params]
    squares = mx.nd.multi_sum_sq(*grads, num_arrays=len(grads)).sum()
    return squares.sqrt() * float(trainer.optimizer.rescale_grad)


class HealthMonitor:
    """A ``StepObserver`` (see ``loop.py``) logging loss, gradient norm and dead units."""

    def __init__(self, settings: HealthSettings | None = None) -> None:
        self.settings = settings or HealthSettings()
        self.interval = self.settings.interval
        self.streak: list[float] = []  # zero fractions of the current run of dead checks
        self._trunk: tuple[int, nn.HybridSequential | None] | None = None
        self._params: tuple[int, list[gluon.Parameter]] | None = None

    def _trunk_of(self, net: gluon.Block) -> nn.HybridSequential | None:
        if self._trunk is None or self._trunk[0] != id(net):
            self._trunk = (id(net), last_feature_map(net))
        return self._trunk[1]

    def _params_of(self, net: gluon.Block) -> list[gluon.Parameter]:
        if self._params is None or self._params[0] != id(net):
            self._params = (id(net), [p for p in net.collect_params().values()
                                      if p.grad_req != "null"])
        return self._params[1]

    def measure(self, step: StepContext) -> tuple[float, float, float]:
        """(loss, grad-norm, zero-fraction) of a step; zero-fraction is NaN without features."""
        rows = sum(loss.shape[0] for loss in step.losses)
        loss_sum = mx.nd.add_n(*[loss.sum().as_in_context(step.losses[0].context)
                                 for loss in step.losses])
        norm = gradient_norm(step.trainer, self._params_of(step.net))
        trunk = self._trunk_of(step.net)
        if trunk is not None:
            # Not recording, so BN normalizes with (and does not update) its running
            # statistics and dropout is the identity: the check leaves the run untouched.
            with autograd.pause(train_mode=False):
                feature_map = trunk(step.data[0])
            zero = (feature_map == 0).mean()
            values = mx.nd.concat(loss_sum.reshape((1,)), norm.reshape((1,)),
                                  zero.as_in_context(loss_sum.context).reshape((1,)), dim=0)
        else:
            values = mx.nd.concat(loss_sum.reshape((1,)), norm.reshape((1,)), dim=0)
        numbers = values.asnumpy().tolist()
        zero_fraction = numbers[2] if trunk is not None else math.nan
        return numbers[0] / max(rows, 1), numbers[1], zero_fraction

    def observe(self, step: StepContext) -> None:
        loss, norm, zero_fraction = self.measure(step)
        step.log.info(format_health_line(step.epoch, step.batch, loss, norm, zero_fraction))
        if not math.isfinite(loss):
            raise TrainingDiverged(step.epoch, step.batch, loss, None)
        if zero_fraction > self.settings.dead_fraction:
            self.streak.append(zero_fraction)
        else:
            self.streak = []
        # Once at `patience` dead checks in a row, then again every `patience` more.
        if self.streak and len(self.streak) % self.settings.patience == 0:
            recent = ", ".join(f"{z:.4f}" for z in self.streak[-self.settings.patience:])
            step.log.warning(format_dying_line(
                step.epoch, step.batch,
                f"{100 * zero_fraction:.2f}% of the last feature map before global pooling "
                f"is exactly zero, above {100 * self.settings.dead_fraction:g}% for "
                f"{len(self.streak)} checks in a row ({recent}); the Inception-v4 paper "
                f"found that a lower learning rate did not prevent this and scaling the "
                f"residuals by 0.1-0.3 did (Inception-ResNet-v2: MODEL_PARAMS \"scales\")"))


# --- the log lines, both ways -----------------------------------------------------------

_HEALTH = re.compile(r"Epoch\[(\d+)\] Batch \[(\d+)\]\tHealth: loss=" + NUMBER
                     + r"\tgrad-norm=" + NUMBER + r"\tzero-fraction=" + NUMBER)
_DYING = re.compile(r"Epoch\[(\d+)\] Batch \[(\d+)\]\tWarning: network is dying: (.*)$")


def format_health_line(epoch: int, batch: int, loss: float, grad_norm: float,
                       zero_fraction: float) -> str:
    return (f"Epoch[{epoch}] Batch [{batch}]\tHealth: loss={loss:f}\tgrad-norm={grad_norm:f}"
            f"\tzero-fraction={zero_fraction:f}")


def format_dying_line(epoch: int, batch: int, details: str) -> str:
    return f"Epoch[{epoch}] Batch [{batch}]\tWarning: network is dying: {details}"


class HealthCheck(NamedTuple):
    epoch: int
    batch: int
    loss: float
    grad_norm: float
    zero_fraction: float


class DyingWarning(NamedTuple):
    epoch: int
    batch: int
    details: str


class HealthLog(NamedTuple):
    checks: list[HealthCheck]
    warnings: list[DyingWarning]


def parse_health_lines(path: str | Path) -> HealthLog:
    """The health checks and dying warnings of one ``training_*.log``, in file order."""
    checks, warnings = [], []
    with open(path, errors="replace") as handle:
        for line in handle.read().splitlines():
            if (match := _HEALTH.search(line)) is not None:
                checks.append(HealthCheck(int(match.group(1)), int(match.group(2)),
                                          *(float(match.group(i)) for i in (3, 4, 5))))
            elif (match := _DYING.search(line)) is not None:
                warnings.append(DyingWarning(int(match.group(1)), int(match.group(2)),
                                             match.group(3)))
    return HealthLog(checks, warnings)
