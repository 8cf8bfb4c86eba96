"""The dataset manifest: one JSON file that says a record dataset is complete and how it was made.

``build_imagenet.py`` writes it last, beside the training records
(``<folder of TRAIN_MX_REC>/manifest.json``), so its presence marks a finished build.
Layout (``format`` 1)::

    {
      "format": 1, "config": ..., "created": ISO time, "build_seconds": ...,
      "label_order": "map_clsloc" | "sorted_wnid", "num_classes": N,
      "classes": [{"wnid", "label", "name", "class_id"}, ...],      ordered by label
      "resize": shorter side, "quality": JPEG quality, "input_size": crop size,
      "image_root": IMAGES_PATH, "mean": {"R", "G", "B"}, "mean_file": name,
      "test_split": {"num_test_images", "seed"},
      "splits": {"train" | "val" | "test": {
          "listed", "written", "count", "skipped": [{"path", "reason"}],
          "lst", "rec", "idx": file names relative to the manifest's folder,
          "lst_sha256", "rec_bytes", "rec_sha256", "idx_bytes", "idx_sha256"}},
      "sources": {config field: {"path", "sha256"}}, "tools": {name: version}
    }

:func:`load_manifest` adds ``manifest["path"]`` and, per split, absolute ``lst_path``,
``rec_path`` and ``idx_path`` resolved against where the file is now, so a dataset folder
can be moved or mounted elsewhere.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from pyimagesearch.config import Settings
from pyimagesearch.utils.files import atomic_write_text
from pyimagesearch.utils.imagenethelper import DatasetError

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1
SPLITS = ("train", "val", "test")
_SPLIT_KEYS = ("listed", "written", "skipped", "rec", "idx", "count")
_TOP_KEYS = ("splits", "resize", "label_order", "classes", "mean")


def manifest_path(config: Settings) -> Path:
    """Where the manifest of ``config``'s dataset lives: beside the training records."""
    config.require("TRAIN_MX_REC")
    return Path(config.TRAIN_MX_REC).parent / MANIFEST_NAME


def manifest_text(manifest: dict[str, Any]) -> str:
    return json.dumps(manifest, indent=2) + "\n"


def write_manifest(path: str | Path, manifest: dict[str, Any]) -> None:
    """Write ``manifest`` atomically: a temporary file, flushed, then renamed into place."""
    atomic_write_text(path, manifest_text(manifest))


def read_manifest(path: str | Path) -> dict[str, Any]:
    """Read and check a manifest file; paths inside it are resolved against its folder."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as handle:
            manifest = json.load(handle)
    except FileNotFoundError:
        raise DatasetError("dataset manifest not found; the dataset is missing or its build "
                           "did not finish (run build_imagenet.py)", path) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"dataset manifest cannot be read ({exc})", path) from None
    if not isinstance(manifest, dict):
        raise DatasetError("dataset manifest is not a JSON object", path)
    if manifest.get("format") != MANIFEST_FORMAT:
        raise DatasetError(f"unsupported manifest format {manifest.get('format')!r} "
                           f"(expected {MANIFEST_FORMAT}); rebuild the dataset", path)
    missing = [key for key in _TOP_KEYS if key not in manifest]
    splits = manifest.get("splits", {})
    missing += [f"splits.{split}.{key}" for split in SPLITS for key in _SPLIT_KEYS
                if key not in splits.get(split, {})]
    if missing:
        raise DatasetError(f"dataset manifest lacks {', '.join(missing)}", path)

    folder = path.resolve().parent
    manifest["path"] = str(path)
    for split in SPLITS:
        entry = splits[split]
        for key in ("lst", "rec", "idx"):
            if key in entry:
                entry[f"{key}_path"] = os.path.normpath(folder / entry[key])
    return manifest


def load_manifest(config: Settings) -> dict[str, Any]:
    """The manifest of ``config``'s dataset (a clear :class:`DatasetError` if absent)."""
    try:
        return read_manifest(manifest_path(config))
    except DatasetError as exc:
        raise DatasetError(f"{exc.reason} [config {config.source}]",
                           exc.path, exc.line) from None
