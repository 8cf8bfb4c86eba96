"""Run an exported ONNX file: onnxruntime when installed, else ONNX's reference evaluator.

onnxruntime 1.15.1 (the last of the opset-18 era) works with numpy 1.23.5 although its
metadata asks for 1.24.2, so it is an optional extra (``requirements-export.txt``,
installed with ``--no-deps``). Without it, ``onnx.reference.ReferenceEvaluator`` (part of
onnx 1.13) runs the graph in numpy, with the vectorized convolution of
:mod:`pyimagesearch.export.reference_ops`: slower, but an independent implementation of
every operator's ONNX semantics, which is what a parity check needs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx

from pyimagesearch.errors import ProjectError
from pyimagesearch.export import RUNTIMES


class OnnxModelError(ProjectError, RuntimeError):
    """An ONNX file cannot be read or run."""


def onnxruntime_version() -> str | None:
    """The installed onnxruntime's version, or None."""
    try:
        import onnxruntime
    except ImportError:
        return None
    return onnxruntime.__version__


class OnnxModel:
    """An ONNX classifier: ``run(batch)`` maps ``(N, 3, S, S)`` float32 to ``(N, classes)``.

    Parameters
    ----------
    model : path or ModelProto
        The exported file (or the loaded model).
    runtime : {"auto", "onnxruntime", "reference"}
        ``auto`` takes onnxruntime when it is installed.
    """

    def __init__(self, model: str | Path | onnx.ModelProto, runtime: str = "auto") -> None:
        if runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {RUNTIMES}, got {runtime!r}")
        if isinstance(model, onnx.ModelProto):
            self.proto, self.path = model, None
        else:
            self.path = Path(model)
            try:
                self.proto = onnx.load(str(self.path))
            except FileNotFoundError:
                raise OnnxModelError(f"ONNX file {self.path} not found") from None
            except Exception as exc:  # protobuf raises DecodeError and others
                raise OnnxModelError(f"{self.path}: not a readable ONNX file ({exc})") from None
        self.metadata = {prop.key: prop.value for prop in self.proto.metadata_props}
        initializers = {tensor.name for tensor in self.proto.graph.initializer}
        inputs = [i.name for i in self.proto.graph.input if i.name not in initializers]
        if len(inputs) != 1:
            raise OnnxModelError(f"expected one image input, the graph has {inputs}")
        self.input_name = inputs[0]
        version = onnxruntime_version()
        if runtime == "onnxruntime" and version is None:
            raise OnnxModelError("onnxruntime is not installed (pip install --no-deps -r "
                                 "requirements-export.txt)")
        if runtime == "auto":
            runtime = "onnxruntime" if version is not None else "reference"
        self.runtime = runtime
        if runtime == "onnxruntime":
            import onnxruntime

            options = onnxruntime.SessionOptions()
            options.log_severity_level = 3  # errors only
            self._session = onnxruntime.InferenceSession(
                self.proto.SerializeToString(), options, providers=["CPUExecutionProvider"])
            self.runtime_name = f"onnxruntime {version}"
        else:
            from onnx.reference import ReferenceEvaluator

            # onnx's reference operators load only where onnxruntime is missing
            from pyimagesearch.export.reference_ops import NEW_OPS

            self._evaluator = ReferenceEvaluator(self.proto, new_ops=NEW_OPS)
            self.runtime_name = f"onnx {onnx.__version__} reference evaluator"

    def run(self, batch: np.ndarray) -> np.ndarray:
        """The network's outputs (logits) for a float32 NCHW batch."""
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if self.runtime == "onnxruntime":
            return self._session.run(None, {self.input_name: batch})[0]
        return np.asarray(self._evaluator.run(None, {self.input_name: batch})[0])

    def operators(self) -> dict[str, int]:
        """How often each operator type occurs in the graph."""
        counts: dict[str, int] = {}
        for node in self.proto.graph.node:
            counts[node.op_type] = counts.get(node.op_type, 0) + 1
        return dict(sorted(counts.items()))
