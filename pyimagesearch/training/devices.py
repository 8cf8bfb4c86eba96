"""The devices a run trains on (the GPUs a config or ``--gpus`` asks for, else CPU contexts),
and the batch sizes that follow from them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import mxnet as mx

from pyimagesearch.settings import ConfigError


class DeviceError(ConfigError):
    """The devices asked for are not there."""


def visible_gpus() -> int:
    """GPUs MXNet sees (0 with a CPU-only MXNet build)."""
    return mx.context.num_gpus()


def _seen(count: int) -> str:
    if count == 0:
        return "MXNet sees no GPU (a CPU build of MXNet, or no CUDA driver)"
    names = ", ".join(f"gpu({i})" for i in range(count))
    return f"MXNet sees {count} GPU{'s' if count > 1 else ''} ({names})"


def select_contexts(num_devices: int, cpu_contexts: int = 1, gpus: Sequence[int] | None = None,
                    source: str = "the config", visible: int | None = None) -> list[mx.Context]:
    """Contexts for a run.

    ``gpus`` (``--gpus``) names GPUs explicitly; otherwise the first ``num_devices``
    (``NUM_DEVICES`` of config ``source``) when MXNet sees GPUs, else ``cpu_contexts``
    CPU contexts. ``cpu_contexts`` > 1 splits each batch over several CPU contexts, which
    exercises the multi-device path (kvstore aggregation) on a machine without GPUs.
    ``visible`` overrides the GPU count MXNet reports (for checks of the messages).
    """
    available = visible_gpus() if visible is None else visible
    if gpus is not None:
        missing = [g for g in gpus if g >= available]
        if missing:
            flag = "--gpus " + ",".join(str(g) for g in gpus)
            raise DeviceError(
                f"{flag}: {_seen(available)}; "
                + ("drop --gpus to train on the CPU (--cpu-contexts N splits the batch)"
                   if available == 0 else
                   f"gpu({missing[0]}) is not among them; pick from 0..{available - 1}"))
        return [mx.gpu(g) for g in gpus]
    if available > 0:
        if num_devices > available:
            raise DeviceError(
                f"{source}: NUM_DEVICES = {num_devices}, but {_seen(available)}; lower "
                f"NUM_DEVICES to {available} or less, or pick GPUs with --gpus (the batch "
                f"is BATCH_SIZE x devices)")
        return [mx.gpu(i) for i in range(num_devices)]
    return [mx.cpu(i) for i in range(max(cpu_contexts, 1))]


def describe_contexts(contexts: list[mx.Context]) -> str:
    kind = "GPU" if contexts[0].device_type == "gpu" else "CPU (no GPU visible to MXNet)"
    return f"{len(contexts)} x {kind}: {', '.join(str(c) for c in contexts)}"


@dataclass(frozen=True)
class BatchSizes:
    """``BATCH_SIZE``'s three meanings: images per device (the config's), per process (over
    its devices) and per update over every worker."""

    per_device: int
    per_process: int
    total: int


def batch_sizes(per_device: int, devices: int, workers: int = 1) -> BatchSizes:
    return BatchSizes(per_device, per_device * devices, per_device * devices * workers)
