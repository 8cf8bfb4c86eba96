"""Classify image files with a checkpoint or its ONNX export: top-k names and probabilities.

``python classify_image.py --checkpoints DIR --prefix NAME --epoch N photo.jpg ...`` loads the
checkpoint as evaluation does (``gluon.SymbolBlock.imports``), prepares each file with
evaluation's preprocessing (:mod:`pyimagesearch.inference.preprocess`), and prints the
``--top`` classes by softmax probability with the names from the dataset manifest the run
trained on (so the label order is training's). ``--onnx FILE`` runs an ``export_onnx.py``
file instead; its metadata carries the preprocessing and the class names, so no config or
checkpoint is needed. A file that cannot be read is reported by name and the others are
still classified; the command then exits non-zero. The limits that protect the build
protect this command too: an image above Pillow's decompression-bomb size or more
elongated than ``BUILD_MAX_ASPECT_RATIO`` (the run's config; the default for an ONNX
file) is refused in one line naming the file, before its pixels are decoded.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from pyimagesearch.config import ConfigError
from pyimagesearch.data.images import DEFAULT_MAX_ASPECT_RATIO, UnreadableImage
from pyimagesearch.exit_codes import EXIT_ERROR, EXIT_UNREADABLE
from pyimagesearch.inference.preprocess import (
    ClassName,
    Preprocessing,
    PreprocessingError,
    classes_from_metadata,
)
from pyimagesearch.run.checkpoints import CheckpointError, checkpoint_name, load_network

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


class Classifier:
    """A network (any ``batch -> logits`` function), its preprocessing and its class names."""

    def __init__(self, predict: Callable[[np.ndarray], np.ndarray],
                 preprocessing: Preprocessing, classes: list[ClassName], description: str,
                 batch_size: int = 8,
                 max_aspect_ratio: float = DEFAULT_MAX_ASPECT_RATIO) -> None:
        self.predict = predict
        self.preprocessing = preprocessing
        self.classes = classes
        self.description = description
        self.batch_size = batch_size
        self.max_aspect_ratio = max_aspect_ratio

    @classmethod
    def from_checkpoint(cls, checkpoints: str, prefix: str, epoch: int | str,
                        config: str | None = None, override: bool = False) -> Classifier:
        import mxnet as mx

        from pyimagesearch.inference.source import describe_checkpoint

        source = describe_checkpoint(checkpoints, prefix, epoch, config, override)
        net = load_network(checkpoints, prefix, source.epoch, [mx.cpu()], source.config)

        def predict(batch: np.ndarray) -> np.ndarray:
            return net(mx.nd.array(batch)).asnumpy()

        description = (f"{source.model} {checkpoint_name(prefix, source.epoch)} (MXNet), "
                       f"{len(source.classes)} classes in {source.label_order} order from "
                       f"{source.classes_source}")
        return cls(predict, source.preprocessing, source.classes, description,
                   max_aspect_ratio=float(source.config.BUILD_MAX_ASPECT_RATIO))

    @classmethod
    def from_onnx(cls, path: str | Path, runtime: str = "auto") -> Classifier:
        from pyimagesearch.export.runtime import OnnxModel

        model = OnnxModel(path, runtime)
        preprocessing = Preprocessing.from_metadata(model.metadata)
        classes = classes_from_metadata(model.metadata)
        if classes is None:
            classes = []  # named by number below, once the output width is known
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


def format_result(result: ImageResult) -> str:
    if result.error is not None:
        return f"{result.path}: cannot be classified: {result.error}"
    lines = [result.path]
    for rank, p in enumerate(result.predictions or [], 1):
        wnid = f"{p.wnid}, " if p.wnid else ""
        lines.append(f"  {rank}. {100 * p.probability:6.2f}%  {p.name} ({wnid}label {p.label})")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Classify images with a checkpoint (or its ONNX export): top classes "
                    "with names and probabilities, preprocessed as evaluation does.")
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files")
    parser.add_argument("-c", "--checkpoints", help="folder of the checkpoints")
    parser.add_argument("-p", "--prefix", help="name prefix of the checkpoints")
    parser.add_argument("-e", "--epoch", help="checkpoint epoch, or 'last' for the newest")
    parser.add_argument("--config", default=None,
                        help="config module or .py path (default: the one the run recorded)")
    parser.add_argument("--override", action="store_true",
                        help="use the config's dataset even though its label order, classes, "
                             "stored size or mean differ from the checkpoint's (printed)")
    parser.add_argument("--onnx", metavar="FILE",
                        help="classify with this export_onnx.py file instead of a checkpoint")
    parser.add_argument("--runtime", choices=("auto", "onnxruntime", "reference"),
                        default="auto", help="with --onnx: which runtime runs it")
    parser.add_argument("-k", "--top", type=int, default=DEFAULT_TOP,
                        help="how many classes to show per image (default 5)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    return parser


def classify_main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.onnx and not (args.checkpoints and args.prefix and args.epoch):
        parser.error("give --checkpoints, --prefix and --epoch, or --onnx FILE")
    if args.top < 1:
        parser.error("--top must be at least 1")
    from pyimagesearch.data.dataset import DatasetError

    errors: tuple[type[Exception], ...] = (ConfigError, CheckpointError, DatasetError,
                                           PreprocessingError)
    try:
        if args.onnx:
            try:
                from pyimagesearch.export.runtime import OnnxModelError
            except ImportError as exc:
                print(f"[ERROR] --onnx needs the onnx package ({exc}); install "
                      f"requirements.txt", file=sys.stderr)
                return EXIT_ERROR
            errors += (OnnxModelError,)
            classifier = Classifier.from_onnx(args.onnx, args.runtime)
        else:
            classifier = Classifier.from_checkpoint(args.checkpoints, args.prefix, args.epoch,
                                                    args.config, args.override)
        results = classifier.classify(args.images, args.top)
    except errors as exc:
        print(f"[ERROR] {exc}", file=sys.stderr)
        return EXIT_ERROR
    failed = [r for r in results if r.error is not None]
    if args.json:
        print(json.dumps([asdict(r) for r in results], indent=2))
    else:
        print(f"[INFO] {classifier.description}")
        print(f"[INFO] preprocessing: {classifier.preprocessing.describe()}")
        for result in results:
            if result.error is None:
                print(format_result(result))
    for result in failed:
        print(f"[ERROR] {format_result(result)}", file=sys.stderr)
    if failed:
        print(f"[ERROR] {len(failed)} of {len(results)} images could not be read",
              file=sys.stderr)
        return EXIT_UNREADABLE
    return 0
