"""Build a dataset from a raw tree: lists -> records -> means -> manifest, committed at once.

:func:`build_dataset` reads the lists from the source ``DATASET_LAYOUT`` names (the ILSVRC
devkit or an image-folder tree); :func:`commit_dataset` and :func:`format_summary` serve the
CIFAR builder too. What a build guarantees, and how it fails: docs/data.md and
docs/faults_data.md.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from pyimagesearch.config import ConfigError, Settings
from pyimagesearch.data.build.packing import PackResult, pack_records
from pyimagesearch.data.build.staging import Staging, remove_stale_partials, staged
from pyimagesearch.data.build.workers import BuildError, ImageWorkers
from pyimagesearch.data.dataset import (
    SPLIT_SETTINGS,
    SPLITS,
    DatasetError,
    idx_path,
    manifest_checksum,
    manifest_path,
    new_manifest,
    rgb_text,
    split_entry,
    split_records,
    write_mean,
    write_mean_image,
)
from pyimagesearch.data.records.format import RecordError, naming_errors
from pyimagesearch.data.records.lists import ListEntry, write_list
from pyimagesearch.data.records.verify import verify_split
from pyimagesearch.data.sources.layouts import SplitSource, make_split_lists, split_source
from pyimagesearch.errors import EXIT_FAILED
from pyimagesearch.files import sha256_file
from pyimagesearch.locks import build_lock

logger = logging.getLogger(__name__)

# What every build needs; the source of the lists adds its own (SplitSource.required_fields).
BUILD_FIELDS = (
    "NUM_CLASSES", "TRAIN_MX_LIST", "VAL_MX_LIST", "TEST_MX_LIST", "TRAIN_MX_REC",
    "VAL_MX_REC", "TEST_MX_REC", "DATASET_MEAN", "RESIZE", "ENCODING_QUALITY",
    "BUILD_THREADS", "INPUT_SIZE",
)

__all__ = ["BuildError", "StrictBuildError", "build_dataset", "check_build_config",
           "commit_dataset", "format_summary", "make_split_lists", "remove_stale_partials"]


class StrictBuildError(DatasetError):
    """``--strict`` and at least one listed file could not be read: ``skipped`` maps each
    split to its ``{"path", "reason"}`` entries."""

    exit_status = EXIT_FAILED
    label = ""

    def __init__(self, skipped: dict[str, list[dict[str, str]]]) -> None:
        self.skipped = skipped
        total = sum(len(items) for items in skipped.values())
        lines = [f"--strict: {total} listed file(s) cannot be read; nothing was written"]
        lines += [f"  {split}: {item['path']}: {item['reason']}"
                  for split, items in skipped.items() for item in items]
        super().__init__("\n".join(lines))


def mean_files(config: Settings) -> list[Path]:
    """The mean file, and the per-pixel mean image when the config names one."""
    return [Path(path) for path in (config.DATASET_MEAN, config.MEAN_IMAGE) if path]


def _split_files(config: Settings) -> dict[str, dict[str, Path]]:
    """The final ``.lst``, ``.rec`` and ``.idx`` of every split."""
    files = {}
    for name, (lst, _) in SPLIT_SETTINGS.items():
        rec = split_records(config, name)
        files[name] = {"lst": Path(getattr(config, lst)), "rec": rec, "idx": idx_path(rec)}
    return files


def check_outputs(config: Settings, outputs: list[Path], differ: str) -> None:
    """Refuse outputs that are not all different paths (``differ`` says so), and records
    that do not end in ``.rec``."""
    resolved = {path.resolve() for path in outputs}
    if len(resolved) != len(outputs):
        raise ConfigError(f"{config.source}: {differ}")
    if any(split_records(config, split).suffix != ".rec" for split in SPLITS):
        raise ConfigError(f"{config.source}: TRAIN_MX_REC, VAL_MX_REC and TEST_MX_REC must "
                          f"end in .rec (the .idx goes beside them)")


def check_build_config(config: Settings) -> None:
    """Refuse a config that cannot give a usable dataset, before any work starts."""
    config.require(*BUILD_FIELDS)
    name = config.source
    if config.RESIZE < config.INPUT_SIZE:
        raise ConfigError(
            f"{name}: RESIZE={config.RESIZE} is smaller than INPUT_SIZE={config.INPUT_SIZE}; "
            f"every stored image must be at least as large as the training crop")
    check_outputs(config, [path for files in _split_files(config).values()
                           for path in files.values()] + mean_files(config),
                  "the list, record and mean paths must all differ")
    if config.PACKER == "im2rec" and (config.RECORD_ENCODING != "jpeg" or config.MEAN_IMAGE):
        raise ConfigError(f"{name}: PACKER='im2rec' stores JPEG with a channel mean; "
                          f"RECORD_ENCODING='png' and MEAN_IMAGE need PACKER='project'")


def _missing_files(entries: dict[str, list[ListEntry]],
                   image_root: str) -> dict[str, list[dict[str, str]]]:
    """Cheap stat-only pass so ``--strict`` fails in seconds on absent or empty files."""
    found: dict[str, list[dict[str, str]]] = {}
    for split, items in entries.items():
        for entry in items:
            try:
                info = os.stat(os.path.join(image_root, entry.path))
                reason = ("not a regular file" if not stat.S_ISREG(info.st_mode)
                          else "empty file" if info.st_size == 0 else None)
            except FileNotFoundError:
                reason = "file not found"
            except OSError as exc:
                reason = f"cannot be read ({exc.strerror or exc})"
            if reason:
                found.setdefault(split, []).append({"path": entry.path, "reason": reason})
    return found


def build_dataset(config: Settings, strict: bool = False) -> dict[str, Any]:
    """Raw tree -> three ``.lst`` -> three ``.rec``/``.idx`` + means + manifest; returns the
    manifest as written.

    ``config`` has :data:`BUILD_FIELDS` and the fields of its ``DATASET_LAYOUT``'s source;
    ``strict``: fail (:class:`StrictBuildError`) instead of skipping unreadable files, with
    nothing final-named written. Raises ``BuildError`` (a worker died or hung, a write
    failed, the records just written do not read back; the message says whether the
    previous dataset is untouched), ``DatasetError`` (devkit files, folder tree or lists
    that are bad, an empty split or class) or ``LockError`` (another build writes to an
    output folder, ``FolderBusy`` names it).
    """
    check_build_config(config)
    files = _split_files(config)
    finals = [path for split in files.values() for path in split.values()]
    finals += mean_files(config)
    # One build per output folder at a time; its leftovers are removed under the lock.
    with build_lock([*finals, manifest_path(config)]), \
            staged(manifest_path(config), finals) as staging:
        source = split_source(config)
        entries = source.split_lists()
        for name, items in entries.items():
            logger.info("%s: %d images listed", name, len(items))
        if strict and (absent := _missing_files(entries, source.image_root)):
            raise StrictBuildError(absent)
        splits, results = {}, {}
        with ImageWorkers(int(config.BUILD_THREADS), config.BUILD_WORKER_TIMEOUT) as workers:
            for name in SPLITS:
                temporary = {kind: staging.path(path) for kind, path in files[name].items()}
                results[name], splits[name] = _pack_split(config, name, source, entries[name],
                                                          temporary, workers, strict)
        train = results["train"]
        return commit_dataset(
            config, staging, mean=train.mean,
            pixel_mean=train.pixel_mean if config.MEAN_IMAGE is not None else None,
            splits=splits, builder=source.builder, label_order=source.label_order,
            classes=source.classes, resize=config.RESIZE, encoding=config.RECORD_ENCODING,
            quality=config.ENCODING_QUALITY if config.RECORD_ENCODING == "jpeg" else None,
            build=_build_parameters(config, source), sources=source.fingerprints())


def _pack_split(config: Settings, name: str, source: SplitSource, entries: list[ListEntry],
                temporary: dict[str, Path], workers: ImageWorkers,
                strict: bool) -> tuple[PackResult, dict[str, Any]]:
    """One split's list and records under their ``temporary`` names, checked; returns what
    the packer did and the split's manifest entry."""
    with naming_errors(temporary["lst"]):
        write_list(temporary["lst"], entries)
    result = pack_records(
        entries, source.image_root, temporary["rec"], temporary["idx"],
        resize=int(config.RESIZE), quality=int(config.ENCODING_QUALITY), workers=workers,
        compute_mean=(name == "train"), description=name,
        max_aspect_ratio=config.BUILD_MAX_ASPECT_RATIO, packer=config.PACKER,
        encoding=config.RECORD_ENCODING,
        compute_pixel_mean=(name == "train" and config.MEAN_IMAGE is not None))
    if strict and result.skipped:
        raise StrictBuildError({name: result.skipped})
    _check_not_empty(name, result, source.classes)
    num_classes = len(source.classes)
    try:
        # Cheap (header walk), and it catches what no exception reports: a write that the
        # filesystem accepted but did not keep.
        verify_split(temporary["rec"], temporary["idx"], result.written, num_classes)
    except RecordError as exc:
        raise BuildError(f"the {name} records just written do not read back: {exc}") from exc
    return result, split_entry(config, name, temporary, listed=result.listed,
                               written=result.written, skipped=result.skipped,
                               seconds=round(result.seconds, 3),
                               class_counts=result.written_per_class(num_classes))


def _check_not_empty(name: str, result: PackResult, classes: list[dict[str, Any]]) -> None:
    """No split without records; no class without a training record."""
    if result.written == 0:
        raise DatasetError(f"no image of the {name} split could be read ({result.listed} "
                           f"listed, all skipped: see the reasons above), so there is no "
                           f"dataset")
    if name != "train":
        return
    empty = [(info, result.per_label.get(info["label"], [0, 0])[0]) for info in classes
             if result.per_label.get(info["label"], [0, 0])[1] == 0]
    if empty:
        # Folders have no WordNet id: n01440764 (label 0, 'tench': 3 listed, all skipped).
        shown = ", ".join(
            (f"{info['wnid']} (label {info['label']}, {info['name']!r}: " if "wnid" in info
             else f"{info['name']!r} (label {info['label']}: ")
            + (f"{listed} listed, all skipped)" if listed else "none listed)")
            for info, listed in empty[:10])
        more = f" and {len(empty) - 10} more" if len(empty) > 10 else ""
        raise DatasetError(f"{len(empty)} class(es) would have no training record: "
                           f"{shown}{more}; a class cannot be learned without examples "
                           f"(see the skipped files above)")


def _build_parameters(config: Settings, source: SplitSource) -> dict[str, Any]:
    return {
        "image_root": str(Path(source.image_root).resolve()),
        **source.description(),
        "build_threads": config.BUILD_THREADS,
        "packer": config.PACKER,  # what wrote the records: "project" or "im2rec"
        # Images more elongated than this were skipped (see images.prepare_image).
        "max_aspect_ratio": config.BUILD_MAX_ASPECT_RATIO,
    }


def commit_dataset(config: Settings, staging: Staging, *, mean: dict[str, float],
                   pixel_mean: np.ndarray | None, **fields: Any) -> dict[str, Any]:
    """The last step of every build: the mean (and ``pixel_mean`` when the config names a
    ``MEAN_IMAGE``) under temporary names, the manifest (``fields``: the rest of
    :func:`~pyimagesearch.data.dataset.new_manifest`'s), the commit. Returns the manifest."""
    hashes = {}
    for setting, write, value in (("DATASET_MEAN", write_mean, mean),
                                  ("MEAN_IMAGE", write_mean_image, pixel_mean)):
        if getattr(config, setting) is not None:
            temporary = staging.path(getattr(config, setting))
            with naming_errors(temporary):
                write(temporary, value)
            hashes[setting] = sha256_file(temporary)
    manifest = new_manifest(config=config,
                            created=staging.started_at.isoformat(timespec="seconds"),
                            mean=mean, mean_sha256=hashes["DATASET_MEAN"],
                            mean_image_sha256=hashes.get("MEAN_IMAGE"), **fields)
    manifest["build_seconds"] = round(time.monotonic() - staging.started, 3)
    manifest["checksum"] = manifest_checksum(manifest)
    staging.commit(manifest)
    return manifest


def format_summary(manifest: dict[str, Any], max_reasons: int = 20) -> str:
    """People's summary of a build: per split ``listed N = written W + skipped S`` and the
    skipped files (CIFAR: the images and their official split), where validation comes
    from, the mean."""
    build, cifar = manifest["build"], manifest["builder"] == "cifar"
    lines = []
    if cifar:
        lines.append(f"{build['dataset']}{' (FAKE data)' if build.get('fake') else ''}: "
                     f"{manifest['num_classes']} classes, PNG records of 32x32 images")
    for name in SPLITS:
        entry = manifest["splits"][name]
        lines.append(f"{name + ':':<6} " + (
            f"{entry['written']} images (from the official {entry['source']} split)" if cifar
            else f"listed {entry['listed']} = written {entry['written']} + skipped "
                 f"{len(entry['skipped'])}"))
    for name in SPLITS:
        skipped = manifest["splits"][name]["skipped"]
        if skipped:
            # "truncated JPEG (image file is truncated ...)" counts as "truncated JPEG".
            tally = Counter(item["reason"].split(" (")[0] for item in skipped)
            lines.append(f"skipped in {name}: " + ", ".join(
                f"{count} {reason}" for reason, count in tally.most_common()))
            lines += [f"  {item['path']}: {item['reason']}" for item in skipped[:max_reasons]]
            if len(skipped) > max_reasons:
                lines.append(f"  ... and {len(skipped) - max_reasons} more (see the manifest)")
    for name, ignored in build.get("folders", {}).get("ignored", {}).items():
        if ignored["count"]:
            lines.append(f"ignored in {name}/ (not listed: not image files): "
                         f"{ignored['count']}, e.g. {ignored['files'][0]['path']}: "
                         f"{ignored['files'][0]['reason']}")
    validation = build.get("validation")
    if validation:
        lines.append({"val": f"validation: the tree's val/ folder ({validation['size']} images)",
                      "test": f"note: {validation.get('note', '')}",
                      "train": f"validation: {validation['size']} training images held "
                               f"out, stratified, seed {validation.get('seed')}"
                      }[validation["source"]])
    mean, image = f"mean {rgb_text(manifest['mean'])}", manifest["mean_image_file"]
    built = f"built in {manifest['build_seconds']:.1f} s"
    if cifar:
        lines.append(f"{mean}; per-pixel mean image {image}; {built}")
        return "\n".join(lines)
    lines.append(f"{mean} (training set, {manifest['resize']}px shorter side)"
                 + (f"; per-pixel mean image {image}" if image else ""))
    lines.append(f"labels: {manifest['label_order']} order, {manifest['num_classes']} classes; "
                 f"{built}")
    return "\n".join(lines)
