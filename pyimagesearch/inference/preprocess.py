"""What a network expects of an image file: evaluation's preprocessing, written down once.

:class:`Preprocessing` does to a file what the record build and ``ImageRecordIter`` do
before evaluation (resize the shorter side, cut the center square, RGB, subtract the mean),
and writes itself into, and reads itself from, an exported ONNX file's ``metadata_props``,
with the class list. The steps and their one omission: docs/using_the_model.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from pyimagesearch.data.dataset import DatasetInfo, load_mean_image
from pyimagesearch.data.images import (
    DEFAULT_MAX_ASPECT_RATIO,
    read_image_file,
    resize_shorter,
)
from pyimagesearch.errors import ProjectError

# Keys of the ONNX metadata_props written at export and read at inference.
META_PREPROCESSING = "preprocessing"
META_CLASSES = "classes"
PREPROCESSING_FORMAT = 1


class PreprocessingError(ProjectError, ValueError):
    """The preprocessing of a model cannot be determined (config, mean or metadata)."""


@dataclass(frozen=True)
class ClassName:
    """One output of the network: its 0-based label and what it means."""

    label: int
    name: str
    wnid: str | None = None


@dataclass(frozen=True, eq=False)
class Preprocessing:
    """Evaluation's preprocessing of one image: the shorter side resized to ``resize``
    (``RESIZE``), the center ``input_size`` square (``INPUT_SIZE``), then either the
    per-channel ``mean_rgb`` (``DATASET_MEAN``) or the ``(3, input_size, input_size)`` RGB
    ``mean_image`` (``MEAN_IMAGE``, CIFAR) subtracted: a float32 ``(3, S, S)`` RGB array.
    """

    resize: int
    input_size: int
    mean_rgb: tuple[float, float, float] | None = None
    mean_image: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.resize < self.input_size:
            raise PreprocessingError(f"RESIZE {self.resize} is smaller than the "
                                     f"{self.input_size} px crop")
        if (self.mean_rgb is None) == (self.mean_image is None):
            raise PreprocessingError("give exactly one of a per-channel mean and a mean image")
        shape = (3, self.input_size, self.input_size)
        if self.mean_image is not None and tuple(self.mean_image.shape) != shape:
            raise PreprocessingError(f"the mean image has shape {self.mean_image.shape}, "
                                     f"the crop needs {shape}")

    def crop(self, rgb: np.ndarray) -> np.ndarray:
        """Resize the shorter side and cut the center square: ``(size, size, 3)`` uint8."""
        image = resize_shorter(rgb, self.resize)
        height, width = image.shape[:2]
        size = self.input_size
        top, left = (height - size) // 2, (width - size) // 2  # ImageRecordIter's convention
        return image[top:top + size, left:left + size]

    def apply(self, rgb: np.ndarray) -> np.ndarray:
        """An RGB ``uint8`` image (height, width, 3) as the network's float32 (3, S, S) input."""
        chw = self.crop(rgb).astype(np.float32).transpose(2, 0, 1)
        if self.mean_image is not None:
            return chw - self.mean_image.astype(np.float32)
        return chw - np.asarray(self.mean_rgb, np.float32).reshape(3, 1, 1)

    def load(self, path: str | Path,
             max_aspect_ratio: float | None = DEFAULT_MAX_ASPECT_RATIO) -> np.ndarray:
        """Read an image file as the build reads it (Pillow's decompression-bomb size and
        ``max_aspect_ratio`` refused, a large JPEG decoded at reduced size) and preprocess it;
        ``UnreadableImage`` says why it cannot be."""
        return self.apply(read_image_file(path, draft_size=self.resize,
                                          max_aspect_ratio=max_aspect_ratio))

    def describe(self) -> str:
        if self.mean_image is not None:
            mean = "per-pixel mean image subtracted"
        else:
            mean = "mean R={:.2f} G={:.2f} B={:.2f} subtracted".format(*self.mean_rgb)
        return (f"shorter side resized to {self.resize} px, center {self.input_size}x"
                f"{self.input_size} crop, RGB, {mean}")

    @classmethod
    def of_dataset(cls, info: DatasetInfo, input_size: int) -> Preprocessing:
        """Evaluation's preprocessing of a checked dataset: its stored size and mean."""
        if info.mean_image is not None:
            return cls(info.image_size, input_size, mean_image=load_mean_image(info.mean_image))
        mean = info.mean
        return cls(info.image_size, input_size, mean_rgb=(mean["R"], mean["G"], mean["B"]))

    def metadata(self) -> dict[str, str]:
        """The ONNX ``metadata_props`` that describe this preprocessing: ``preprocessing``
        holds it all as JSON (what :meth:`from_metadata` reads), the other keys repeat the
        essentials for people and other tools."""
        spec: dict[str, Any] = {
            "format": PREPROCESSING_FORMAT, "layout": "NCHW", "channel_order": "RGB",
            "dtype": "float32", "pixel_range": [0, 255], "scale": 1.0,
            "resize_shorter_side": self.resize, "crop": "center",
            "crop_offset": "top = (height - size) // 2, left = (width - size) // 2",
            "input_size": self.input_size,
        }
        props = {"input_size": str(self.input_size),
                 "input_shape": f"N,3,{self.input_size},{self.input_size}",
                 "channel_order": "RGB", "resize_shorter_side": str(self.resize)}
        if self.mean_image is not None:
            spec["mean"] = "image"
            spec["mean_image"] = np.round(self.mean_image.astype(np.float64), 4).tolist()
            props["mean_subtraction"] = ("per pixel: input = crop - mean_image (see "
                                         "'preprocessing'), then no scaling")
        else:
            spec["mean"] = "channel"
            spec["mean_rgb"] = [float(v) for v in self.mean_rgb]
            props["mean_subtraction"] = ("per channel: input = crop - [{:.4f}, {:.4f}, {:.4f}] "
                                         "(R, G, B), then no scaling").format(*self.mean_rgb)
        props[META_PREPROCESSING] = json.dumps(spec, sort_keys=True)
        return props

    @classmethod
    def from_metadata(cls, props: dict[str, str]) -> Preprocessing:
        """The preprocessing an exported ONNX file describes in its metadata."""
        try:
            spec = json.loads(props[META_PREPROCESSING])
            if spec.get("format") != PREPROCESSING_FORMAT:
                raise PreprocessingError(f"unknown preprocessing format {spec.get('format')!r}")
            resize, size = int(spec["resize_shorter_side"]), int(spec["input_size"])
            if spec["mean"] == "image":
                return cls(resize, size, mean_image=np.asarray(spec["mean_image"], np.float32))
            return cls(resize, size, mean_rgb=tuple(float(v) for v in spec["mean_rgb"]))
        except (KeyError, TypeError, ValueError, json.JSONDecodeError) as exc:
            raise PreprocessingError(f"the model's metadata does not describe its "
                                     f"preprocessing ({type(exc).__name__}: {exc}); was it "
                                     f"written by export_onnx.py?") from None


def classes_from_manifest(manifest: dict[str, Any]) -> list[ClassName]:
    """The classes of a dataset manifest, ordered by label (the order training used)."""
    entries = sorted(manifest.get("classes", []), key=lambda entry: int(entry["label"]))
    if [int(entry["label"]) for entry in entries] != list(range(len(entries))):
        raise PreprocessingError("the manifest's class labels are not 0..N-1")
    return [ClassName(int(e["label"]), str(e.get("name", e["label"])), e.get("wnid"))
            for e in entries]


def classes_metadata(classes: list[ClassName], label_order: str, source: str) -> dict[str, str]:
    """ONNX ``metadata_props`` naming the outputs: JSON list, label order, where it came from."""
    listing = [{"label": c.label, "name": c.name, **({"wnid": c.wnid} if c.wnid else {})}
               for c in classes]
    return {META_CLASSES: json.dumps(listing), "num_classes": str(len(classes)),
            "label_order": label_order, "class_names_source": source}


def classes_from_metadata(props: dict[str, str]) -> list[ClassName] | None:
    if META_CLASSES not in props:
        return None
    try:
        return classes_from_manifest({"classes": json.loads(props[META_CLASSES])})
    except (KeyError, TypeError, ValueError, json.JSONDecodeError) as exc:
        raise PreprocessingError(f"the model's class list cannot be read ({exc})") from None
