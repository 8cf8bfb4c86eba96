"""Run an exported ONNX file: onnxruntime when installed (an optional extra), else ONNX's
reference evaluator with the vectorized convolution of :mod:`pyimagesearch.export.reference_ops`
(slower, but an independent implementation of every operator, as a parity check needs).
"""

from __future__ import annotations

from collections import Counter
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

    ``model`` is the exported file or the loaded model; ``runtime`` one of ``RUNTIMES``
    (``auto`` takes onnxruntime when it is installed).
    """

    def __init__(self, model: str | Path | onnx.ModelProto, runtime: str = "auto") -> None:
        if runtime not in RUNTIMES:
            raise ValueError(f"runtime must be one of {RUNTIMES}, got {runtime!r}")
        if isinstance(model, onnx.ModelProto):
            self.proto = model
        else:
            try:
                self.proto = onnx.load(str(model))
            except FileNotFoundError:
                raise OnnxModelError(f"ONNX file {model} not found") from None
            except Exception as exc:  # protobuf raises DecodeError and others
                raise OnnxModelError(f"{model}: not a readable ONNX file ({exc})") from None
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
        if version is not None and runtime != "reference":
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

            self._session = ReferenceEvaluator(self.proto, new_ops=NEW_OPS)
            self.runtime_name = f"onnx {onnx.__version__} reference evaluator"

    def run(self, batch: np.ndarray) -> np.ndarray:
        """The network's outputs (logits) for a float32 NCHW batch."""
        feeds = {self.input_name: np.ascontiguousarray(batch, dtype=np.float32)}
        return np.asarray(self._session.run(None, feeds)[0])

    def operators(self) -> dict[str, int]:
        """How often each operator type occurs in the graph."""
        return dict(sorted(Counter(node.op_type for node in self.proto.graph.node).items()))
