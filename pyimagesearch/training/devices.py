"""Which devices a run trains on: NUM_DEVICES GPUs where MXNet sees them, else the CPU."""

from __future__ import annotations

import logging

import mxnet as mx

logger = logging.getLogger(__name__)


def select_contexts(num_devices: int, cpu_contexts: int = 1) -> list[mx.Context]:
    """Contexts for a run: the first ``num_devices`` GPUs, or CPU contexts without GPUs.

    ``cpu_contexts`` > 1 splits each batch over several CPU contexts, which exercises
    the multi-device path (kvstore aggregation) on a machine without GPUs.
    """
    available = mx.context.num_gpus()
    if available > 0:
        if num_devices > available:
            raise RuntimeError(
                f"config asks for NUM_DEVICES = {num_devices} GPUs but MXNet sees {available}; "
                f"lower NUM_DEVICES (the batch is BATCH_SIZE x devices)")
        return [mx.gpu(i) for i in range(num_devices)]
    return [mx.cpu(i) for i in range(max(cpu_contexts, 1))]


def describe_contexts(contexts: list[mx.Context]) -> str:
    kind = "GPU" if contexts[0].device_type == "gpu" else "CPU (no GPU visible to MXNet)"
    return f"{len(contexts)} x {kind}: {', '.join(str(c) for c in contexts)}"
