"""A checkpoint of MXNet's symbolic API mapped onto a Gluon network by structure: the
parameters of both graphs matched one by one in order, kind, role and shape, or refused in
one line naming the first mismatch.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mxnet as mx
from mxnet import gluon

from pyimagesearch.errors import CheckpointError
from pyimagesearch.run.array_files import load_arrays, unprefixed
from pyimagesearch.run.paths import checkpoint_paths

# Operators that only rescale or copy a parameter on its way to the operator using it.
PASS_THROUGH = frozenset({"_mul_scalar", "_div_scalar", "_copy", "identity", "Cast",
                          "amp_cast"})

# Settings that change a layer's function but not its parameters' shapes, with MXNet's
# defaults (the symbol JSON of ``mx.sym`` code holds only the arguments given explicitly).
COMPARED_SETTINGS: dict[str, dict[str, Any]] = {
    "Convolution": {"stride": 1, "pad": 0, "dilate": 1, "num_group": 1},
    "Deconvolution": {"stride": 1, "pad": 0, "dilate": 1, "num_group": 1, "adj": 0},
    "BatchNorm": {"eps": 1e-3, "fix_gamma": True, "axis": 1},
    "FullyConnected": {"flatten": True},
}


class StructureMismatch(CheckpointError):
    """A checkpoint's parameters do not fit the network they are loaded into."""


@dataclass(frozen=True)
class Slot:
    """One parameter input of one operator, in a graph's topological order."""

    layer: str                  # the operator node's name
    op: str                     # the operator: Convolution, BatchNorm, FullyConnected, ...
    role: str                   # the operator's name for that input: weight, gamma, ...
    variable: str               # the graph variable holding the parameter
    shape: tuple[int, ...]
    settings: tuple[tuple[str, Any], ...]  # COMPARED_SETTINGS of the operator, normalized

    def describe(self) -> str:
        return f"{self.op} {self.role} {self.shape} of layer {self.layer!r}"


@dataclass(frozen=True)
class SymbolicCheckpoint:
    """The two files of an MXNet symbolic checkpoint, read."""

    symbol_file: Path
    params_file: Path
    graph: dict[str, Any]                # the symbol JSON
    arrays: dict[str, mx.nd.NDArray]     # variable name -> array (arg: and aux: merged)


def read_symbolic_checkpoint(folder: str | Path, prefix: str, epoch: int,
                             symbol_file: str | Path | None = None) -> SymbolicCheckpoint:
    """Read both files; any problem is a one-line :class:`CheckpointError` naming the file.

    ``symbol_file`` replaces ``NAME-symbol.json`` (a copy kept under another name).
    """
    paths = checkpoint_paths(folder, prefix, epoch)
    default_symbol, params_file = paths["symbol"], paths["params"]
    symbol_file = Path(symbol_file) if symbol_file is not None else default_symbol
    for path in (symbol_file, params_file):
        if not path.is_file():
            raise CheckpointError(f"{path}: not found (an MXNet checkpoint is "
                                  f"{symbol_file.name} and {params_file.name})")
    try:
        graph = json.loads(symbol_file.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        reason = "nested too deep" if isinstance(exc, RecursionError) else exc
        raise CheckpointError(f"{symbol_file}: not an MXNet symbol file ({reason})") from None
    problem = _graph_problem(graph)
    if problem is not None:
        raise CheckpointError(f"{symbol_file}: not an MXNet symbol file ({problem})")
    saved = load_arrays(params_file, "parameter file", CheckpointError)
    if not saved:
        raise CheckpointError(f"{params_file}: holds no named arrays (MXNet checkpoints name "
                              f"them arg:<name> and aux:<name>)")
    arrays = unprefixed(saved, params_file, CheckpointError)
    variables = {node["name"] for node in graph["nodes"] if node["op"] == "null"}
    strangers = sorted(set(arrays) - variables)
    if strangers:
        raise CheckpointError(
            f"{params_file}: {len(strangers)} arrays (e.g. {strangers[0]!r}) are not variables "
            f"of {symbol_file.name}; the symbol file belongs to another network (was it "
            f"rewritten by a later run with the same --prefix?)")
    return SymbolicCheckpoint(symbol_file, params_file, graph, arrays)


def _graph_problem(graph: Any) -> str | None:
    """What keeps a symbol JSON from being what :func:`graph_slots` reads: nodes with an
    operator, a name, string attributes, and inputs that are earlier nodes (the topological
    order MXNet writes, which also rules out cycles)."""
    if not isinstance(graph, dict) or not isinstance(graph.get("nodes"), list):
        return "no graph nodes"
    for index, node in enumerate(graph["nodes"]):
        if not (isinstance(node, dict) and isinstance(node.get("op"), str)
                and isinstance(node.get("name"), str) and isinstance(node.get("inputs"), list)):
            return f"node {index} lacks an operator, a name or its inputs"
        if not all(isinstance(source, list) and source and type(source[0]) is int
                   and 0 <= source[0] < index for source in node["inputs"]):
            return f"node {index} ({node['name']!r}) has inputs that are not earlier nodes"
        attrs = _attributes(node)
        if not isinstance(attrs, dict) or not all(isinstance(key, str) and isinstance(value, str)
                                                  for key, value in attrs.items()):
            return f"node {index} ({node['name']!r}) has attributes that are not strings"
    return None


def _attributes(node: dict[str, Any]) -> Any:
    return node.get("attrs", node.get("param", {})) or {}


@functools.lru_cache(maxsize=1)
def _operators() -> frozenset[str]:
    return frozenset(mx.operator.get_all_registered_operators())


@functools.lru_cache(maxsize=256)
def _input_names(op: str, attrs: tuple[tuple[str, str], ...]) -> tuple[str, ...]:
    """The operator's input names in order (``data, weight, bias``), from MXNet itself."""
    if op not in _operators():  # a file's "op" picks a function of MXNet's: operators only
        return ()
    factory = getattr(mx.sym, op, None) or getattr(mx.sym._internal, op, None)
    if factory is None:
        return ()
    try:
        probe = factory(name="slot", **dict(attrs))
    except (mx.base.MXNetError, TypeError, ValueError):
        return ()
    names = probe.list_arguments() + probe.list_auxiliary_states()
    return tuple(name[len("slot_"):] for name in names)


def _value(text: Any) -> Any:
    """An attribute string of the symbol JSON as a number, bool or tuple."""
    if not isinstance(text, str):
        return text
    stripped = text.strip()
    if stripped in ("True", "False"):
        return stripped == "True"
    if stripped.startswith("(") or stripped.startswith("["):
        parts = [p for p in stripped.strip("()[]").split(",") if p.strip()]
        return tuple(_value(p) for p in parts)
    if stripped.lstrip("-").isdigit():
        return int(stripped)
    try:
        return float(stripped)
    except ValueError:
        return stripped


def _settings(op: str, attrs: dict[str, str]) -> tuple[tuple[str, Any], ...]:
    defaults = COMPARED_SETTINGS.get(op)
    if defaults is None:
        return ()
    kernel = _value(attrs.get("kernel", "()"))
    dims = len(kernel) if isinstance(kernel, tuple) and kernel else 2
    normalized = []
    for key, default in defaults.items():
        value = _value(attrs[key]) if key in attrs else default
        if key in ("stride", "pad", "dilate", "adj"):
            value = tuple(value) if isinstance(value, tuple) and value else (default,) * dims
            if len(value) == 1:
                value = value * dims
        if key == "eps" and isinstance(value, (int, float)):
            value = float(f"{float(value):.6g}")  # 1e-3 written as 0.0010000000474974513
        normalized.append((key, value))
    return tuple(normalized)


def graph_slots(graph: dict[str, Any], parameters: set[str],
                shapes: dict[str, tuple[int, ...]]) -> list[Slot]:
    """The parameter slots of a symbol JSON, in its topological (node) order.

    ``graph`` is a network's own or one :func:`read_symbolic_checkpoint` accepted (each input
    an earlier node). ``parameters`` are the variable names that hold parameters (everything
    else, such as ``data`` and ``softmax_label``, is an input); ``shapes`` gives each one's
    shape.
    """
    nodes = graph["nodes"]

    def parameter_behind(index: int) -> str | None:
        node = nodes[index]
        while node["op"] in PASS_THROUGH and len(node["inputs"]) == 1:
            node = nodes[node["inputs"][0][0]]
        return node["name"] if node["op"] == "null" and node["name"] in parameters else None

    slots = []
    for node in nodes:
        if node["op"] == "null" or node["op"] in PASS_THROUGH:
            continue
        attrs = _attributes(node)
        names: tuple[str, ...] | None = None
        for position, (source, *_) in enumerate(node["inputs"]):
            variable = parameter_behind(source)
            if variable is None:
                continue
            if names is None:
                names = _input_names(node["op"], tuple(sorted(attrs.items())))
            role = names[position] if position < len(names) else f"input{position}"
            slots.append(Slot(node["name"], node["op"], role, variable,
                              tuple(int(d) for d in shapes[variable]),
                              _settings(node["op"], attrs)))
    return slots


def network_slots(net: gluon.HybridBlock, data_shape: tuple[int, ...] | None = None
                  ) -> tuple[list[Slot], dict[str, gluon.Parameter]]:
    """The slots of a Gluon network's graph, and its parameters by variable name.

    Shapes are the parameters' own; where some are not known yet (deferred initialization,
    as in GluonCV's networks) they are inferred for an input of ``data_shape``.
    """
    symbol = net(mx.sym.var("data"))
    params = {p.name: p for p in net.collect_params().values()}
    shapes = {name: tuple(p.shape) for name, p in params.items()
              if p.shape is not None and all(d > 0 for d in p.shape)}
    if len(shapes) < len(params):
        if data_shape is None:
            raise CheckpointError("the network's parameter shapes are not known yet; give "
                                  "the input shape to infer them")
        args, _, auxs = symbol.infer_shape_partial(data=data_shape)
        inferred = dict(zip(symbol.list_arguments(), args))
        inferred.update(zip(symbol.list_auxiliary_states(), auxs))
        shapes.update({name: tuple(inferred[name]) for name in params
                       if name not in shapes and name in inferred})
    used = {name for name in symbol.list_arguments() + symbol.list_auxiliary_states()
            if name in params}
    graph = json.loads(symbol.tojson())
    return graph_slots(graph, used, shapes), params


def _differences(expected: Slot, found: Slot) -> str | None:
    """What differs between a network slot and a checkpoint slot, or None."""
    if (expected.op, expected.role, expected.shape) != (found.op, found.role, found.shape):
        return f"expected {expected.describe()}, found {found.describe()}"
    if expected.settings != found.settings:
        ours, theirs = dict(expected.settings), dict(found.settings)
        keys = [k for k in ours if ours[k] != theirs.get(k)]
        return (f"layer {expected.layer!r} has " + ", ".join(f"{k}={ours[k]!r}" for k in keys)
                + f" where the checkpoint's layer {found.layer!r} has "
                + ", ".join(f"{k}={theirs.get(k)!r}" for k in keys))
    return None


def match_slots(expected: list[Slot], found: list[Slot], source: str) -> dict[str, str]:
    """Network variable -> checkpoint variable, slot by slot; the first misfit is refused.

    ``source`` names the checkpoint in the message.
    """
    mapping: dict[str, str] = {}
    for position, (ours, theirs) in enumerate(zip(expected, found), start=1):
        difference = _differences(ours, theirs)
        if difference is not None:
            raise StructureMismatch(
                f"{source} does not fit the network: parameter {position} of "
                f"{len(expected)}: {difference} (do the config's MODEL, MODEL_PARAMS and "
                f"NUM_CLASSES describe the network that wrote it? The book's GoogLeNet is "
                f"MODEL_PARAMS = {{'variant': 'book'}})")
        if mapping.setdefault(ours.variable, theirs.variable) != theirs.variable:
            raise StructureMismatch(
                f"{source} does not fit the network: parameter {position}: the network "
                f"shares {ours.variable!r} where the checkpoint has two arrays")
    if len(expected) != len(found):
        longer, side = (found, "checkpoint") if len(found) > len(expected) \
            else (expected, "network")
        first = longer[min(len(expected), len(found))]
        raise StructureMismatch(
            f"{source} does not fit the network: the network has {len(expected)} parameters, "
            f"the checkpoint {len(found)}; all agree up to parameter "
            f"{min(len(expected), len(found))}, then only the {side} has {first.describe()}")
    return mapping


def map_checkpoint(checkpoint: SymbolicCheckpoint, net: gluon.HybridBlock,
                   data_shape: tuple[int, ...] | None = None) -> dict[str, mx.nd.NDArray]:
    """The checkpoint's arrays keyed by the network's parameter names (nothing is loaded)."""
    expected, _ = network_slots(net, data_shape)
    arrays = checkpoint.arrays
    found = graph_slots(checkpoint.graph, set(arrays),
                        {name: array.shape for name, array in arrays.items()})
    source = f"{checkpoint.params_file} (with {checkpoint.symbol_file.name})"
    mapping = match_slots(expected, found, source)
    unused = sorted(set(arrays) - set(mapping.values()))
    if unused:
        raise StructureMismatch(f"{source} does not fit the network: {len(unused)} of its "
                                f"arrays feed no layer (e.g. {unused[0]!r})")
    return {ours: arrays[theirs] for ours, theirs in mapping.items()}


def load_symbolic_checkpoint(net: gluon.HybridBlock, folder: str | Path, prefix: str,
                             epoch: int, data_shape: tuple[int, ...] | None = None,
                             symbol_file: str | Path | None = None) -> str:
    """Load checkpoint ``epoch`` of an MXNet symbolic checkpoint into ``net`` by structure.

    ``net`` must be initialized (on any contexts); returns one line saying what was loaded.
    """
    checkpoint = read_symbolic_checkpoint(folder, prefix, epoch, symbol_file)
    values = map_checkpoint(checkpoint, net, data_shape)
    params = {p.name: p for p in net.collect_params().values()}
    for name, array in values.items():
        param = params[name]
        if param.shape is None or not all(param.shape):
            param.shape = array.shape  # deferred initialization: set_data then completes it
        param.set_data(array.astype(param.dtype, copy=False))
    count = sum(int(math.prod(array.shape)) for array in values.values())
    return (f"{len(values)} arrays ({count:,} numbers) of {checkpoint.params_file.name} mapped "
            f"by structure onto the network")

