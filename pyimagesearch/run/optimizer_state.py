"""The optimizer's state in a checkpoint: plain arrays (``nd.save``), never a pickle.

``gluon.Trainer.save_states`` pickles the optimizer, so loading a ``.states`` file could
run code, and it brings back the pickled learning rate. Here the state is the
per-parameter arrays (momentum, Adam moments, ...) keyed ``<param index>/<position>``,
and the update counts go into the checkpoint's JSON; the optimizer is rebuilt from the
recipe.
"""

from __future__ import annotations

from typing import Any

import mxnet as mx
from mxnet import gluon

from pyimagesearch.errors import ProjectError
from pyimagesearch.run.array_files import load_arrays


class StateError(ProjectError, ValueError):
    """An optimizer-state file does not match the network or optimizer it is loaded into."""


def _flatten(state: Any, key: str, out: dict[str, mx.nd.NDArray]) -> None:
    if state is None:
        return
    if isinstance(state, mx.nd.NDArray):
        out[key] = state
        return
    if isinstance(state, (list, tuple)):
        for position, item in enumerate(state):
            _flatten(item, f"{key}/{position}", out)
        return
    raise StateError(f"unsupported optimizer state element {type(state).__name__} at {key}")


def _fill(template: Any, key: str, arrays: dict[str, mx.nd.NDArray], source: str,
          used: set[str]) -> None:
    """Copy saved arrays into freshly created state arrays of the same structure."""
    if template is None:
        return
    if isinstance(template, mx.nd.NDArray):
        if key not in arrays:
            raise StateError(f"{source}: no optimizer state '{key}'")
        saved = arrays[key]
        if saved.shape != template.shape:
            raise StateError(f"{source}: optimizer state '{key}' has shape {saved.shape}, "
                             f"the network needs {template.shape}")
        saved.astype(template.dtype).copyto(template)
        used.add(key)
        return
    for position, item in enumerate(template):
        _fill(item, f"{key}/{position}", arrays, source, used)


def _updaters(trainer: gluon.Trainer) -> list[mx.optimizer.Updater]:
    if not trainer._kv_initialized:
        trainer._init_kvstore()
    if trainer._params_to_init:
        trainer._init_params()
    return trainer._updaters


def save_optimizer_state(trainer: gluon.Trainer, path: str) -> dict[str, Any]:
    """Write the state arrays to ``path``; return the counters for the checkpoint JSON.

    Every context's updater holds the same state after synchronous updates, so the first
    one is saved and copied to every context on load.
    """
    updaters = _updaters(trainer)
    if trainer._update_on_kvstore:
        # dist_async updates on the parameter servers, which keep the optimizer state.
        mx.nd.save(path, {})
        return {"optimizer": type(trainer._optimizer).__name__.lower(), "on_servers": True,
                "num_update": 0, "index_update_count": {}}
    updater = updaters[0]
    arrays: dict[str, mx.nd.NDArray] = {}
    for index, state in updater.states.items():
        _flatten(state, str(index), arrays)
    mx.nd.save(path, {k: v.as_in_context(mx.cpu()) for k, v in arrays.items()})
    optimizer = trainer._optimizer
    first_device = trainer._params[0].list_ctx()[0].device_id if trainer._params else 0
    counts = optimizer._all_index_update_counts.get(first_device, {})
    return {
        "optimizer": type(optimizer).__name__.lower(),
        "num_update": int(optimizer.num_update),
        "index_update_count": {str(k): int(v) for k, v in counts.items()},
    }


def load_optimizer_state(trainer: gluon.Trainer, path: str, counters: dict[str, Any]) -> None:
    """Restore what :func:`save_optimizer_state` wrote into a freshly built trainer."""
    optimizer = trainer._optimizer
    if counters.get("on_servers"):
        raise StateError(f"{path}: the optimizer state lived on the parameter servers "
                         f"(dist_async) and was not saved; resume with --reset-optimizer")
    expected = type(optimizer).__name__.lower()
    if counters.get("optimizer") != expected:
        raise StateError(f"{path}: saved for optimizer {counters.get('optimizer')!r}, "
                         f"the recipe uses {expected!r}")
    arrays = load_arrays(path, "optimizer-state file", StateError)
    used: set[str] = set()
    params = trainer._params
    for device, updater in enumerate(_updaters(trainer)):
        used.clear()
        for index, param in enumerate(params):
            if param.grad_req == "null":
                continue
            weight = param.list_data()[device]
            template = optimizer.create_state_multi_precision(index, weight)
            _fill(template, str(index), arrays, path, used)
            updater.states[index] = template
            updater.states_synced[index] = True
    unused = sorted(set(arrays) - used)
    if unused:
        raise StateError(f"{path}: holds state for parameters this network lacks: "
                         f"{', '.join(unused[:5])}{' ...' if len(unused) > 5 else ''}")
    counts = {int(k): int(v) for k, v in counters["index_update_count"].items()}
    device_ids = [ctx.device_id for ctx in params[0].list_ctx()] if params else [0]
    for device_id in device_ids:
        optimizer._all_index_update_counts[device_id] = dict(counts)
    optimizer._index_update_count = optimizer._all_index_update_counts[device_ids[0]]
    optimizer.num_update = int(counters["num_update"])


def start_optimizer_at(trainer: gluon.Trainer, num_update: int) -> None:
    """Fresh optimizer state whose update count (and with it the schedule, a function of
    it) continues at ``num_update``: only momentum or moment buffers start from zero."""
    trainer.optimizer.begin_num_update = num_update
    trainer.optimizer.num_update = num_update
