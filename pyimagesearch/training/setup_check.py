"""Is this machine ready to train a config? MXNet's build, the GPUs, one training step per
device against the CPU, the dataset, the disk: one :class:`Check` each, and a verdict.
"""

from __future__ import annotations

import math
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon

from pyimagesearch.config import ConfigError, Settings
from pyimagesearch.data.dataset import DatasetError, check_dataset
from pyimagesearch.nn.build import build_network
from pyimagesearch.training.devices import select_contexts, visible_gpus

OK, WARN, FAIL = "ok", "warn", "fail"
# Relative to the largest reference value. cuDNN may compute float32 convolutions in TF32
# on Ampere and newer GPUs (10-bit mantissa), which moves results by about 1e-3; a broken
# device path moves them by the whole value or to NaN.
DEFAULT_TOLERANCE = 1e-2
GIB = 1024**3
# Arrays of optimizer state per trainable weight, for the size of a checkpoint's .states.
STATE_ARRAYS = {"sgd": 1, "nag": 1, "adam": 2, "rmsprop": 1, "adagrad": 1, "adadelta": 2,
                "signum": 1, "ftml": 3}


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # OK, WARN or FAIL
    details: str

    def line(self) -> str:
        return f"[{self.status.upper():>4}] {self.name}: {self.details}"


# --- MXNet and the GPUs ----------------------------------------------------------------------
def nvidia_smi_gpus() -> list[str]:
    """The GPUs the NVIDIA driver lists (``nvidia-smi -L``), or none without the tool."""
    tool = shutil.which("nvidia-smi")
    if tool is None:
        return []
    try:
        listing = subprocess.run([tool, "-L"], capture_output=True, text=True, timeout=30,
                                 check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line for line in listing.splitlines() if line.startswith("GPU ")]


def build_check(driver_gpus: Sequence[str] | None = None) -> Check:
    features = mx.runtime.Features()
    flags = {"CUDA": "CUDA", "cuDNN": "CUDNN", "NCCL": "NCCL", "oneDNN": "MKLDNN"}
    enabled = {label: name in features and features.is_enabled(name)
               for label, name in flags.items()}
    text = f"MXNet {mx.__version__}: " + ", ".join(
        f"{label} {'yes' if on else 'no'}" for label, on in enabled.items())
    driver_gpus = nvidia_smi_gpus() if driver_gpus is None else driver_gpus
    if not enabled["CUDA"] and driver_gpus:
        return Check("MXNet build", WARN,
                     f"{text}; but nvidia-smi lists {len(driver_gpus)} GPU(s): this MXNet is "
                     f"a CPU build, so training would run on the CPU (install the GPU build: "
                     f"pip install -r requirements-gpu.txt)")
    return Check("MXNet build", OK, text)


def gpu_check(config: Settings, visible: int) -> Check:
    if visible == 0:
        if config.NUM_DEVICES > 1:
            return Check("GPUs", WARN, f"none visible to MXNet, while {config.source} asks "
                                       f"for NUM_DEVICES = {config.NUM_DEVICES}: training "
                                       f"would run on the CPU")
        return Check("GPUs", OK, "none visible to MXNet; training runs on the CPU")
    memory = []
    for i in range(visible):
        try:
            free, total = mx.context.gpu_memory_info(i)
        except mx.base.MXNetError as exc:
            memory.append(f"gpu({i}) memory unknown ({str(exc).strip().splitlines()[-1]})")
            continue
        memory.append(f"gpu({i}) {free / GIB:.1f} of {total / GIB:.1f} GiB free")
    return Check("GPUs", OK, f"{visible} visible: " + "; ".join(memory))


# --- one step of the network, on every device against the CPU ----------------------------
def _relative(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """(max |a - b|, that divided by max |b|); NaN or inf anywhere is an infinite difference."""
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return math.inf, math.inf
    difference = float(np.abs(a - b).max()) if a.size else 0.0
    scale = float(np.abs(b).max()) if b.size else 0.0
    return difference, difference / max(scale, 1e-12)


def network_without_dropout(config: Settings, contexts: list[mx.Context]) -> gluon.HybridBlock:
    """The config's network, initialized alike on every context, its dropout rates at 0."""
    net = build_network(config, contexts, int(config.SEED))

    def no_dropout(block: gluon.Block) -> None:
        if isinstance(block, gluon.nn.Dropout):
            block._rate = 0.0  # read by Dropout.hybrid_forward when the graph is first built

    net.apply(no_dropout)
    return net


def step_outputs(net: gluon.HybridBlock, data: mx.nd.NDArray, labels: mx.nd.NDArray,
                 context: mx.Context) -> tuple[np.ndarray, np.ndarray]:
    """Logits and all trainable gradients (one flat vector) of one training step on
    ``context`` (the weights are not updated)."""
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    with autograd.record(train_mode=True):
        logits = net(data.as_in_context(context))
        loss = loss_fn(logits, labels.as_in_context(context))
    loss.backward()
    grads = [p.grad(context).asnumpy().ravel() for p in net.collect_params().values()
             if p.grad_req != "null"]
    return logits.asnumpy(), np.concatenate(grads)


@dataclass(frozen=True)
class StepDifference:
    """How far one device's step is from the reference device's."""

    context: mx.Context
    logits: float            # max |logit difference|
    logits_relative: float   # ... over max |reference logit|
    grads: float             # max |gradient difference| over every trainable weight
    grads_relative: float    # ... over max |reference gradient|

    @property
    def worst(self) -> float:
        return max(self.logits_relative, self.grads_relative)

    def describe(self) -> str:
        return (f"{self.context}: max |logit diff| {self.logits:.3g} (relative "
                f"{self.logits_relative:.3g}), max |grad diff| {self.grads:.3g} (relative "
                f"{self.grads_relative:.3g})")


def compare_devices(net: gluon.HybridBlock, data: mx.nd.NDArray, labels: mx.nd.NDArray,
                    reference: mx.Context, contexts: list[mx.Context]) -> list[StepDifference]:
    """One step on ``reference`` and on each context; their differences."""
    expected = step_outputs(net, data, labels, reference)
    differences = []
    for context in contexts:
        actual = step_outputs(net, data, labels, context)
        (logits, logits_rel), (grads, grads_rel) = (_relative(a, e)
                                                    for a, e in zip(actual, expected))
        differences.append(StepDifference(context, logits, logits_rel, grads, grads_rel))
    return differences


def network_check(config: Settings, contexts: list[mx.Context], batch: int = 2,
                  tolerance: float = DEFAULT_TOLERANCE) -> Check:
    """One forward/backward of the config's network on each context against ``mx.cpu()``."""
    reference = mx.cpu()
    name = f"{config.MODEL} step"
    size = int(config.INPUT_SIZE)
    try:
        net = network_without_dropout(config,
                                      [reference] + [c for c in contexts if c != reference])
        rng = np.random.RandomState(0)
        data = mx.nd.array(rng.uniform(-120, 120, (batch, 3, size, size)))
        labels = mx.nd.array(rng.randint(0, int(config.NUM_CLASSES), batch))
        differences = compare_devices(net, data, labels, reference, contexts)
    except (mx.base.MXNetError, ValueError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return Check(name, FAIL, f"one forward/backward step failed: {first}")
    details = (f"{len(contexts)} device(s) against {reference} at {size} px, batch {batch}: "
               + "; ".join(d.describe() for d in differences)
               + f"; tolerance {tolerance:g} relative")
    worst = max(d.worst for d in differences)
    return Check(name, OK if worst <= tolerance else FAIL, details)


# --- the dataset and the disk --------------------------------------------------------------
def dataset_check(config: Settings) -> Check:
    splits = tuple(split for split, field in (("train", "TRAIN_MX_REC"), ("val", "VAL_MX_REC"),
                                              ("test", "TEST_MX_REC"))
                   if getattr(config, field) is not None)
    try:
        info = check_dataset(config, splits)
    except (DatasetError, ConfigError) as exc:
        return Check("dataset", FAIL, str(exc))
    counts = ", ".join(f"{split} {info.splits[split].count:,}" for split in splits)
    return Check("dataset", OK, f"{info.manifest_file}: {counts} records, consistent with the "
                                f"manifest and the config; stored at {info.image_size} px")


def checkpoint_bytes(config: Settings) -> int:
    """The size of one checkpoint of the config's network: weights and optimizer state."""
    net = build_network(config, [mx.cpu()], int(config.SEED))
    weights = sum(int(np.prod(p.shape)) for p in net.collect_params().values())
    trainable = sum(int(np.prod(p.shape)) for p in net.collect_params().values()
                    if p.grad_req != "null")
    recipe = config.RECIPE
    state = STATE_ARRAYS.get(recipe.optimizer, 1)
    if recipe.optimizer == "sgd" and not recipe.momentum:
        state = 0
    return 4 * (weights + state * trainable)


def _existing_parent(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def disk_check(config: Settings, checkpoints: str | Path) -> Check:
    where = _existing_parent(Path(checkpoints))
    free = shutil.disk_usage(where).free
    one = checkpoint_bytes(config)
    epochs = config.RECIPE.num_epochs
    details = (f"{free / GIB:.1f} GiB free at {where} (for {checkpoints}); one checkpoint "
               f"about {one / 2**20:.0f} MiB, {epochs} epochs {epochs * one / GIB:.2f} GiB")
    if free < 2 * one:
        return Check("disk", FAIL, details + ": not enough for two checkpoints")
    if free < epochs * one:
        return Check("disk", WARN, details + ": not enough to keep every epoch's checkpoint")
    return Check("disk", OK, details)


# --- all of it ---------------------------------------------------------------------------------
def run_checks(config: Settings, checkpoints: str | Path = "output",
               gpus: Sequence[int] | None = None, cpu_contexts: int = 1,
               tolerance: float = DEFAULT_TOLERANCE, visible: int | None = None,
               driver_gpus: Sequence[str] | None = None) -> list[Check]:
    """Every check, in order. ``visible`` and ``driver_gpus`` stand in for what MXNet and
    nvidia-smi report (to check the messages on a machine without GPUs)."""
    config.require("MODEL", "INPUT_SIZE", "NUM_CLASSES", "RECIPE", "TRAIN_MX_REC")
    visible = visible_gpus() if visible is None else visible
    checks = [build_check(driver_gpus), gpu_check(config, visible)]
    try:
        contexts = select_contexts(config.NUM_DEVICES, cpu_contexts, gpus, config.source,
                                   visible)
    except ConfigError as exc:
        checks.append(Check("devices", FAIL, str(exc)))
        checks.append(Check(f"{config.MODEL} step", FAIL, "not run: no devices selected"))
    else:
        checks.append(Check("devices", OK, ", ".join(str(c) for c in contexts)))
        checks.append(network_check(config, contexts, tolerance=tolerance))
    checks.append(dataset_check(config))
    checks.append(disk_check(config, checkpoints))
    return checks


def verdict(checks: Sequence[Check]) -> tuple[str, int]:
    """The verdict line and the exit status: 1 when any check failed."""
    failed = [c.name for c in checks if c.status == FAIL]
    warned = [c.name for c in checks if c.status == WARN]
    if failed:
        return (f"Verdict: NOT READY: {len(failed)} check(s) failed ({', '.join(failed)})"
                + (f"; warnings: {', '.join(warned)}" if warned else ""), 1)
    return ("Verdict: READY to train" + (f" ({len(warned)} warning(s): {', '.join(warned)})"
                                         if warned else ""), 0)
