"""Checkpoint -> ONNX through MXNet's own exporter, kept only if it computes what MXNet does.

The file carries its preprocessing and class list in ``metadata_props``; the parity check
runs it beside the checkpoint on test records and deletes it past the tolerance. What is
done around the stock exporter, and why: docs/design.md, "ONNX export".
"""

from __future__ import annotations

import json
import warnings
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import mxnet as mx
import numpy as np
import onnx
from onnx import helper, numpy_helper

from pyimagesearch.data.dataset import check_dataset
from pyimagesearch.data.iterators import Normalizer, evaluation_iterator
from pyimagesearch.errors import EXIT_PARITY
from pyimagesearch.export import DEFAULT_PARITY_IMAGES, DEFAULT_TOLERANCE, ExportError
from pyimagesearch.export.runtime import OnnxModel
from pyimagesearch.files import commit_file, fsync_path, partial_path
from pyimagesearch.inference.preprocess import classes_metadata
from pyimagesearch.inference.source import CheckpointSource
from pyimagesearch.run.checkpoints import load_network
from pyimagesearch.run.mxnet_checkpoints import network_graph
from pyimagesearch.run.paths import checkpoint_name, onnx_path

BATCH_DIM = "batch"


class ParityError(ExportError):
    """The exported file does not compute what the checkpoint does."""

    exit_status = EXIT_PARITY


@dataclass(frozen=True)
class Parity:
    """How closely the ONNX file follows the checkpoint on real records."""

    max_abs_diff: float
    images: int
    split: str
    runtime: str
    top1_agreement: float

    def passed(self, tolerance: float) -> bool:
        return bool(np.isfinite(self.max_abs_diff)) and self.max_abs_diff <= tolerance

    def describe(self, tolerance: float) -> str:
        return (f"max |ONNX - MXNet| = {self.max_abs_diff:.3g} over {self.images} "
                f"{self.split} images ({self.runtime}; tolerance {tolerance:g}); top-1 agrees "
                f"on {100 * self.top1_agreement:.0f}%")


def fixed_gamma_params(symbol: mx.sym.Symbol, params: dict[str, mx.nd.NDArray]
                       ) -> dict[str, mx.nd.NDArray]:
    """``params`` with the gamma of every ``fix_gamma`` BatchNorm set to 1, as MXNet uses it."""
    nodes = json.loads(symbol.tojson())["nodes"]
    params = dict(params)
    for node in nodes:
        fix_gamma = node.get("attrs", {}).get("fix_gamma", "true")  # MXNet's default: true
        if node["op"] == "BatchNorm" and fix_gamma.strip().lower() in ("true", "1"):
            gamma = nodes[node["inputs"][1][0]]["name"]
            if gamma in params:
                params[gamma] = mx.nd.ones_like(params[gamma])
    return params


def weights_as_raw_bytes() -> AbstractContextManager:
    """A context in which MXNet's exporter stores weights as raw bytes (docs/design.md, "ONNX
    export"): the exporter takes a translation from the newest opset that registers it, so a
    weight-node (op ``null``) translation at the opset it exports to wins over MXNet's own (at
    12). On exit the registry is as it was."""
    from mxnet.onnx.mx2onnx._export_onnx import MXNetGraph
    from onnx.defs import onnx_opset_version

    registry = MXNetGraph.registry_
    stock = registry[12]["null"]

    def convert_weights_and_inputs(node, **kwargs):
        if kwargs["is_input"]:
            return stock(node, **kwargs)
        name = node["name"]
        array = np.ascontiguousarray(kwargs["weights"][name])
        kwargs["initializer"].append(numpy_helper.from_array(array, name))
        elem_type = helper.np_dtype_to_tensor_dtype(array.dtype)
        return [helper.make_tensor_value_info(name, elem_type, array.shape)], (array.dtype,)

    opset = onnx_opset_version()
    return mock.patch.dict(registry, {opset: {**registry.get(opset, {}),
                                              "null": convert_weights_and_inputs}})


def convert(source: CheckpointSource, path: str | Path) -> onnx.ModelProto:
    """Convert the checkpoint to an ONNX model (not yet written), metadata included."""
    size = int(source.preprocessing.input_size)
    symbol, args, auxs = network_graph(source.config, source.checkpoints, source.prefix,
                                       source.epoch)
    _, (out_shape,), _ = symbol.infer_shape(data=(1, 3, size, size))
    if len(out_shape) != 2 or out_shape[1] != len(source.classes):
        raise ExportError(f"the network outputs shape {tuple(out_shape)} for one image but the "
                          f"class list ({source.classes_source}) has {len(source.classes)} "
                          f"classes")
    params = fixed_gamma_params(symbol, {**args, **auxs})
    path = Path(path)
    with weights_as_raw_bytes(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        mx.onnx.export_model(symbol, params, in_shapes=[(1, 3, size, size)],
                             in_types=[np.float32], onnx_file_path=str(path), dynamic=True,
                             dynamic_input_shapes=[(None, 3, size, size)])
    model = onnx.load(str(path))
    graph = model.graph
    initializers = {tensor.name for tensor in graph.initializer}
    inputs = [value for value in graph.input if value.name not in initializers]
    del graph.input[:]
    graph.input.extend(inputs)
    for value in (*graph.input, *graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims:
            dims[0].ClearField("dim_value")
            dims[0].dim_param = BATCH_DIM
    graph.output[0].type.tensor_type.shape.dim[1].dim_value = int(out_shape[1])
    identity = source.manifest.get("identity", {})
    props = {
        "model": source.model,
        "model_params": json.dumps(identity.get("model_params", {}), sort_keys=True),
        "source_checkpoint": checkpoint_name(source.prefix, source.epoch),
        "source_params_sha256": source.manifest.get("files", {}).get("params", {})
                                              .get("sha256", ""),
        "config": str(source.manifest.get("config", {}).get("__source__", "")),
        "input_name": inputs[0].name if inputs else "",
        "output": "logits, one per class in label order (softmax gives probabilities)",
        "exporter": (f"mxnet {mx.__version__} mx.onnx.export_model, onnx {onnx.__version__}, "
                     f"opset {model.opset_import[0].version}"),
        **source.preprocessing.metadata(),
        **classes_metadata(source.classes, source.label_order, source.classes_source),
    }
    helper.set_model_props(model, props)
    model.model_version = source.epoch
    model.doc_string = (f"{source.model} from checkpoint "
                        f"{checkpoint_name(source.prefix, source.epoch)}: "
                        f"{source.preprocessing.describe()}; output: logits")
    onnx.checker.check_model(model)
    return model


def check_parity(source: CheckpointSource, model: OnnxModel, images: int = DEFAULT_PARITY_IMAGES,
                 split: str = "test") -> Parity:
    """Run the first ``images`` records of ``split`` (decoded and cropped as evaluation does)
    through the checkpoint (loaded as evaluation loads it) and through ``model``."""
    info = check_dataset(source.config, (split,))
    count = min(images, info.splits[split].count)
    batch = next(iter(evaluation_iterator(source.config, info, split, count)))
    valid = count - (batch.pad or 0)
    batch = Normalizer(info.mean, info.mean_image)(batch.data[0]).asnumpy()[:valid]
    net = load_network(source.checkpoints, source.prefix, source.epoch, [mx.cpu()],
                       source.config)
    expected = net(mx.nd.array(batch)).asnumpy()
    if expected.shape[1] != len(source.classes):
        raise ExportError(f"the network has {expected.shape[1]} outputs but the class list "
                          f"({source.classes_source}) has {len(source.classes)} classes")
    got = model.run(batch)
    if got.shape != expected.shape:
        raise ExportError(f"the ONNX model outputs shape {got.shape}, MXNet {expected.shape}")
    diff = float(np.max(np.abs(got.astype(np.float64) - expected))) if got.size else 0.0
    agree = float(np.mean(got.argmax(axis=1) == expected.argmax(axis=1)))
    return Parity(diff if np.isfinite(got).all() else float("inf"), len(batch), split,
                  model.runtime_name, agree)


def default_output(source: CheckpointSource) -> Path:
    return onnx_path(source.checkpoints, source.prefix, source.epoch)


def export_checkpoint(source: CheckpointSource, output: str | Path,
                      tolerance: float = DEFAULT_TOLERANCE,
                      images: int = DEFAULT_PARITY_IMAGES, split: str = "test",
                      runtime: str = "auto") -> Parity:
    """Export, check parity, and only then put the file at ``output`` (atomically).

    Raises ``ParityError`` (the file removed) when parity fails; its message has the figure.
    """
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    temporary = partial_path(output, hidden=True)
    try:
        model = convert(source, temporary)
        onnx.save(model, str(temporary))
        parity = check_parity(source, OnnxModel(model, runtime), images, split)
        if not parity.passed(tolerance):
            raise ParityError(f"parity check failed: {parity.describe(tolerance)}; the ONNX "
                              f"file does not compute what the checkpoint does, not keeping "
                              f"{output}")
        helper.set_model_props(model, {
            **{prop.key: prop.value for prop in model.metadata_props},
            "parity_max_abs_diff": f"{parity.max_abs_diff:.6g}",
            "parity_check": parity.describe(tolerance)})
        onnx.save(model, str(temporary))
        commit_file(temporary, output)
        fsync_path(output.parent)
        return parity
    finally:
        temporary.unlink(missing_ok=True)
