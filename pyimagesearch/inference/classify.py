"""Classify image files with a checkpoint or its ONNX export: top-k names and probabilities.

A checkpoint is loaded as evaluation loads it, with the class names of the dataset it trained
on; an ``export_onnx.py`` file carries its preprocessing and names itself. A file that cannot
be read (or breaks the build's size limits) is reported by name; the others are classified.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import mxnet as mx
import numpy as np

from pyimagesearch.data.images import DEFAULT_MAX_ASPECT_RATIO, UnreadableImage
from pyimagesearch.errors import ProjectError
from pyimagesearch.inference.preprocess import (
    ClassName,
    Preprocessing,
    PreprocessingError,
    classes_from_metadata,
)
from pyimagesearch.inference.source import describe_checkpoint
from pyimagesearch.run.checkpoints import load_network
from pyimagesearch.run.paths import checkpoint_name

DEFAULT_TOP = 5


@dataclass(frozen=True)
class Prediction:
    label: int
    name: str
    wnid: str | None
    probability: float


@dataclass(frozen=True)
class ImageResult:
    """One file: its top predictions, or why it could not be classified."""

    path: str
    predictions: list[Prediction] | None = None
    error: str | None = None


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, computed in float64 with the maximum subtracted."""
    shifted = logits.astype(np.float64) - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


@dataclass
class Classifier:
    """A network (any ``batch -> logits`` function), its preprocessing and its class names."""

    predict: Callable[[np.ndarray], np.ndarray]
    preprocessing: Preprocessing
    classes: list[ClassName]
    description: str
    batch_size: int = 8
    max_aspect_ratio: float = DEFAULT_MAX_ASPECT_RATIO

    @classmethod
    def from_checkpoint(cls, checkpoints: str, prefix: str, epoch: int | str,
                        config: str | None = None, override: bool = False) -> Classifier:
        source = describe_checkpoint(checkpoints, prefix, epoch, config, override)
        net = load_network(checkpoints, prefix, source.epoch, [mx.cpu()], source.config)
        description = (f"{source.model} {checkpoint_name(prefix, source.epoch)} (MXNet), "
                       f"{len(source.classes)} classes in {source.label_order} order from "
                       f"{source.classes_source}")
        return cls(lambda batch: net(mx.nd.array(batch)).asnumpy(), source.preprocessing,
                   source.classes, description,
                   max_aspect_ratio=float(source.config.BUILD_MAX_ASPECT_RATIO))

    @classmethod
    def from_onnx(cls, path: str | Path, runtime: str = "auto") -> Classifier:
        try:
            # onnx: only a classification by an ONNX file needs it
            from pyimagesearch.export.runtime import OnnxModel
        except ImportError as exc:
            raise ProjectError(f"--onnx needs the onnx package ({exc}); install "
                               f"requirements.txt") from None
        model = OnnxModel(path, runtime)
        preprocessing = Preprocessing.from_metadata(model.metadata)
        # Without a class list the outputs are named by number (``_name``).
        classes = classes_from_metadata(model.metadata) or []
        description = (f"{model.metadata.get('model', 'model')} "
                       f"{model.metadata.get('source_checkpoint', '')} from {path} "
                       f"({model.runtime_name}), {len(classes) or 'unnamed'} classes in "
                       f"{model.metadata.get('label_order', 'unknown')} order")
        return cls(model.run, preprocessing, classes, description)

    def _name(self, label: int) -> ClassName:
        if 0 <= label < len(self.classes):
            return self.classes[label]
        return ClassName(label, f"class {label}")

    def top(self, logits: np.ndarray, k: int) -> list[list[Prediction]]:
        if self.classes and logits.shape[1] != len(self.classes):
            raise PreprocessingError(f"the network has {logits.shape[1]} outputs but "
                                     f"{len(self.classes)} class names")
        probabilities = softmax(logits)
        results = []
        for row in probabilities:
            order = np.argsort(-row, kind="stable")[:k]
            results.append([Prediction(int(i), self._name(int(i)).name, self._name(int(i)).wnid,
                                       float(row[i])) for i in order])
        return results

    def classify(self, paths: Sequence[str | Path], k: int = DEFAULT_TOP) -> list[ImageResult]:
        """Classify every file; unreadable ones get an ``error`` and do not stop the rest."""
        results: dict[int, ImageResult] = {}
        ready: list[tuple[int, np.ndarray]] = []
        for position, path in enumerate(paths):
            try:
                ready.append((position, self.preprocessing.load(path, self.max_aspect_ratio)))
            except UnreadableImage as exc:
                results[position] = ImageResult(str(path), error=str(exc))
        for start in range(0, len(ready), self.batch_size):
            chunk = ready[start:start + self.batch_size]
            logits = self.predict(np.stack([array for _, array in chunk]))
            for (position, _), predictions in zip(chunk, self.top(logits, k)):
                results[position] = ImageResult(str(paths[position]), predictions)
        return [results[i] for i in range(len(paths))]
