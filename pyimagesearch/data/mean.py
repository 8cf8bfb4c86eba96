"""The book's mean file (``DATASET_MEAN``): ``{"R": ..., "G": ..., "B": ...}`` as JSON.

The mean is that of the training set: the average of per-image channel means of the
images as stored (resized, JPEG-encoded, decoded again), which is what the book computes
and what ``mx.io.ImageRecordIter`` will subtract.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from pyimagesearch.utils.imagenethelper import DatasetError


def write_mean(path: str | Path, mean: dict[str, float]) -> None:
    """Write the book's mean file: ``{"R": ..., "G": ..., "B": ...}``."""
    with open(path, "w", encoding="utf-8") as handle:
        json.dump({key: float(mean[key]) for key in ("R", "G", "B")}, handle, indent=2)
        handle.write("\n")


def load_mean(path: str | Path) -> dict[str, float]:
    """Read a mean file written by :func:`write_mean` (or by the book's build script)."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        raise DatasetError("mean file not found (run build_imagenet.py)", path) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"mean file cannot be read ({exc})", path) from None
    if not isinstance(data, dict):
        raise DatasetError("mean file is not a JSON object", path)
    mean = {}
    for key in ("R", "G", "B"):
        value = data.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value):
            raise DatasetError(f"mean file lacks a finite number for {key!r}", path)
        mean[key] = float(value)
    return mean
