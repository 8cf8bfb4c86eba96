"""Build the whole dataset: raw tree -> lists -> records -> mean -> manifest.

The raw tree is the ILSVRC2015 download or an image-folder tree (``DATASET_LAYOUT``); a
:class:`pyimagesearch.data.sources.layouts.SplitSource` turns it into the three lists, and
everything after that is the same for both.

What this does that MXNet's ``im2rec.py`` does not:

* every file that cannot be read is reported by path and reason, so per split
  ``written + skipped == listed``; ``--strict`` (:class:`StrictBuildError`) fails
  instead, before anything final-named is written;
* records, lists, the mean and the manifest are written under temporary names
  (``<name>.partial-<pid>``) and renamed into place only when the whole dataset is done,
  the manifest last, so an interrupted build never leaves a ``.rec`` that looks finished
  and never damages the previous complete dataset; the next build removes what a dead
  one left behind (:func:`remove_stale_partials`), holding the build lock of every output
  folder (``.build.lock``): a second build into the same folder is refused at once;
* the manifest records the config, the sources' checksums, the tool versions and, per
  split, the counts, the skipped files and the checksums of what was written;
* faults fail the build with :class:`BuildError` (exit 3 of ``build_imagenet.py``) and
  the previous dataset untouched: an image worker that dies or hangs
  (``BUILD_WORKER_TIMEOUT`` seconds per chunk of at most 32 images), a full disk or a
  file-size limit (the message names the file), records that do not read back
  (:func:`pyimagesearch.data.records.verify.verify_split` runs on what was just written). Every
  byte, manifest included, is written and flushed before the first final name is touched;
* an empty split, or a class whose training images were all skipped, is an error naming
  it (a class cannot be learned without examples).

See ``docs/faults_data.md`` for the whole fault table.

Images are read by :mod:`pyimagesearch.data.images` from an ILSVRC tree or an image-folder
tree (:mod:`data.sources.layouts`) and packed by :mod:`data.build.packing`
(the project's writer, as JPEG or as lossless PNG with ``RECORD_ENCODING``, or MXNet's
im2rec with ``PACKER = "im2rec"``) in the worker processes of
:mod:`pyimagesearch.data.build.workers`; the means (the channel mean, and the per-pixel
``MEAN_IMAGE`` when the config names one) and the manifest are written by
:mod:`pyimagesearch.data.dataset`.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pyimagesearch.config import ConfigError, Settings
from pyimagesearch.data.build.packing import PackResult, pack_records
from pyimagesearch.data.build.staging import Staging, remove_stale_partials
from pyimagesearch.data.build.workers import BuildError, ImageWorkers, WorkerError
from pyimagesearch.data.dataset import (
    SPLIT_SETTINGS,
    SPLITS,
    DatasetError,
    idx_path,
    manifest_path,
    new_manifest,
    split_files_entry,
    write_mean,
    write_mean_image,
)
from pyimagesearch.data.records.format import RecordError, naming_errors
from pyimagesearch.data.records.lists import ListEntry, write_list
from pyimagesearch.data.records.verify import verify_split
from pyimagesearch.data.sources.layouts import SplitSource, make_split_lists, split_source
from pyimagesearch.errors import EXIT_FAILED
from pyimagesearch.locks import build_lock

logger = logging.getLogger(__name__)

# What every build needs; the source of the lists adds its own (SplitSource.required_fields).
BUILD_FIELDS = (
    "NUM_CLASSES", "TRAIN_MX_LIST", "VAL_MX_LIST", "TEST_MX_LIST", "TRAIN_MX_REC",
    "VAL_MX_REC", "TEST_MX_REC", "DATASET_MEAN", "RESIZE", "ENCODING_QUALITY",
    "BUILD_THREADS", "INPUT_SIZE",
)
# What a write fails with when the disk (or a quota, or `ulimit -f`) says no more.
_FULL_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}

__all__ = ["BuildError", "StrictBuildError", "build_dataset", "check_build_config",
           "format_summary", "make_split_lists", "remove_stale_partials"]


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


# --- the whole build ---------------------------------------------------------------------
def check_build_config(config: Settings) -> None:
    """Refuse a config that cannot give a usable dataset, before any work starts."""
    config.require(*BUILD_FIELDS)
    name = config.source
    if config.RESIZE < config.INPUT_SIZE:
        raise ConfigError(
            f"{name}: RESIZE={config.RESIZE} is smaller than INPUT_SIZE={config.INPUT_SIZE}; "
            f"every stored image must be at least as large as the training crop")
    lists = [Path(getattr(config, lst)).resolve() for lst, _ in SPLIT_SETTINGS.values()]
    records = [Path(getattr(config, rec)).resolve() for _, rec in SPLIT_SETTINGS.values()]
    means = [Path(path).resolve() for path in (config.DATASET_MEAN, config.MEAN_IMAGE) if path]
    outputs = [*lists, *records, *map(idx_path, records), *means]
    if len(set(outputs)) != len(outputs):
        raise ConfigError(f"{name}: the list, record and mean paths must all differ")
    if any(path.suffix != ".rec" for path in records):
        raise ConfigError(f"{name}: TRAIN_MX_REC, VAL_MX_REC and TEST_MX_REC must end "
                          f"in .rec (the .idx goes beside them)")
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
    """Raw tree -> three ``.lst`` -> three ``.rec``/``.idx`` + mean + manifest.

    Parameters
    ----------
    config : Settings
        A config with :data:`BUILD_FIELDS` and the fields of its ``DATASET_LAYOUT``'s
        source (the ILSVRC devkit paths, or ``FOLDER_ROOT``).
    strict : bool
        Fail (:class:`StrictBuildError`) instead of skipping unreadable files; nothing
        final-named is written then.

    Returns
    -------
    dict
        The manifest, as written.

    Raises
    ------
    BuildError
        A worker process died or hung, a file could not be written (disk full, file-size
        limit), or the records just written do not read back. The message says whether
        the previous dataset is untouched (it is, unless the failure came while renaming).
    DatasetError
        Bad devkit files or folder tree, lists, an empty split or class
        (``StrictBuildError`` for ``--strict``).
    LockError
        Another build writes to one of the output folders (``FolderBusy`` names it), or a
        folder cannot be written.
    """
    check_build_config(config)
    outputs = _split_outputs(config)
    # One build per output folder at a time; its leftovers are removed under the lock.
    mean_files = [Path(path) for path in (config.DATASET_MEAN, config.MEAN_IMAGE) if path]
    with build_lock([*(p for files in outputs.values() for p in files.values()),
                     *mean_files, manifest_path(config)]):
        return _build_dataset(config, strict, outputs)


def _split_outputs(config: Settings) -> dict[str, dict[str, Path]]:
    """The final ``.lst``, ``.rec`` and ``.idx`` path of every split."""
    return {name: {"lst": Path(getattr(config, lst)), "rec": Path(getattr(config, rec)),
                   "idx": idx_path(getattr(config, rec))}
            for name, (lst, rec) in SPLIT_SETTINGS.items()}


def _build_dataset(config: Settings, strict: bool,
                   outputs: dict[str, dict[str, Path]]) -> dict[str, Any]:
    started, started_at = time.monotonic(), datetime.now(timezone.utc)
    source = split_source(config)
    entries = source.split_lists()
    for name, items in entries.items():
        logger.info("%s: %d images listed", name, len(items))
    image_root = source.image_root
    if strict and (absent := _missing_files(entries, image_root)):
        raise StrictBuildError(absent)

    mean_file, manifest_file = Path(config.DATASET_MEAN), manifest_path(config)
    mean_image = [Path(config.MEAN_IMAGE)] if config.MEAN_IMAGE else []
    remove_stale_partials([p for files in outputs.values() for p in files.values()]
                          + [mean_file, *mean_image, manifest_file])
    previous = manifest_file.is_file()

    staging = Staging()
    try:
        manifest = _build_staged(config, source, entries, outputs, staging, strict, started,
                                 started_at)
    except (WorkerError, OSError) as exc:
        raise BuildError(_failure_message(exc, staging, manifest_file, previous)) from exc
    except BuildError as exc:  # records that do not read back
        raise BuildError(f"{exc}; {_state_after_failure(staging, manifest_file, previous)}"
                         ) from exc
    finally:
        staging.discard()
    return manifest


def _build_staged(config: Settings, source: SplitSource,
                  entries: dict[str, list[ListEntry]], outputs: dict[str, dict[str, Path]],
                  staging: Staging, strict: bool, started: float,
                  started_at: datetime) -> dict[str, Any]:
    """Everything under temporary names, then the commit (see :class:`Staging`)."""
    image_root = source.image_root
    mean_file, manifest_file = Path(config.DATASET_MEAN), manifest_path(config)
    timeout, max_aspect = config.BUILD_WORKER_TIMEOUT, config.BUILD_MAX_ASPECT_RATIO
    num_classes = len(source.classes)
    temporary: dict[str, dict[str, Path]] = {}
    results: dict[str, PackResult] = {}
    with ImageWorkers(int(config.BUILD_THREADS), timeout) as workers:
        for name in SPLITS:
            temporary[name] = {kind: staging.path(path) for kind, path in outputs[name].items()}
            with naming_errors(temporary[name]["lst"]):
                write_list(temporary[name]["lst"], entries[name])
            results[name] = pack_records(
                entries[name], image_root, temporary[name]["rec"], temporary[name]["idx"],
                resize=int(config.RESIZE), quality=int(config.ENCODING_QUALITY),
                workers=workers, compute_mean=(name == "train"), description=name,
                max_aspect_ratio=max_aspect, packer=config.PACKER,
                encoding=config.RECORD_ENCODING,
                compute_pixel_mean=(name == "train" and config.MEAN_IMAGE is not None))
            if strict and results[name].skipped:
                raise StrictBuildError({name: results[name].skipped})
            _check_not_empty(name, results[name], source.classes)
            try:
                # Cheap (header walk), and it catches what no exception reports: a write
                # that the filesystem accepted but did not keep.
                verify_split(temporary[name]["rec"], temporary[name]["idx"],
                             results[name].written, num_classes)
            except RecordError as exc:
                raise BuildError(f"the {name} records just written do not read back: "
                                 f"{exc}") from exc
    mean_temporary = staging.path(mean_file)
    with naming_errors(mean_temporary):
        write_mean(mean_temporary, results["train"].mean)
    folder = manifest_file.resolve().parent
    mean_image_file = mean_image_temporary = None
    if config.MEAN_IMAGE is not None:
        mean_image_file = Path(config.MEAN_IMAGE)
        mean_image_temporary = staging.path(mean_image_file)
        with naming_errors(mean_image_temporary):
            write_mean_image(mean_image_temporary, results["train"].pixel_mean)
    manifest = new_manifest(
        builder=source.builder, config=config,
        created=started_at.isoformat(timespec="seconds"), label_order=source.label_order,
        classes=source.classes, resize=config.RESIZE, encoding=config.RECORD_ENCODING,
        quality=config.ENCODING_QUALITY if config.RECORD_ENCODING == "jpeg" else None,
        mean=results["train"].mean, mean_file=mean_file, mean_temporary=mean_temporary,
        mean_image_file=mean_image_file, mean_image_temporary=mean_image_temporary,
        splits={name: _split_entry(results[name], outputs[name], temporary[name], folder,
                                   num_classes)
                for name in SPLITS},
        folder=folder, build=_build_parameters(config, source),
        sources=source.fingerprints())
    manifest["build_seconds"] = round(time.monotonic() - started, 3)
    staging.commit(manifest_file, manifest)
    return manifest


def _class_text(info: dict[str, Any], listed: int) -> str:
    """``n01440764 (label 0, 'tench': 3 listed, all skipped)``; folders have no WordNet id."""
    if "wnid" in info:
        return f"{info['wnid']} (label {info['label']}, {info['name']!r}: {listed} listed, "
    return f"{info['name']!r} (label {info['label']}: {listed} listed, "


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
        shown = ", ".join(f"{_class_text(info, listed)}all skipped)"
                          for info, listed in empty[:10])
        more = f" and {len(empty) - 10} more" if len(empty) > 10 else ""
        raise DatasetError(f"{len(empty)} class(es) would have no training record: "
                           f"{shown}{more}; a class cannot be learned without examples "
                           f"(see the skipped files above)")


def _state_after_failure(staging: Staging, manifest_file: Path, previous: bool) -> str:
    folder = manifest_file.parent
    if staging.touched:
        return (f"the failure came while renaming the new files into place, so the dataset "
                f"in {folder} is incomplete (it has no manifest and will not be used); run "
                f"the build again")
    if previous:
        return (f"nothing was replaced: the previous dataset in {folder} is untouched and the "
                f"temporary files were removed")
    return "nothing final-named was written and the temporary files were removed"


def _failure_message(exc: BaseException, staging: Staging, manifest_file: Path,
                     previous: bool) -> str:
    state = _state_after_failure(staging, manifest_file, previous)
    if not isinstance(exc, OSError):
        return f"{exc}; {state}"
    filename = exc.filename
    final = staging.final_of(filename) if filename is not None else None
    if final is not None:
        where = f"writing {final} (as {Path(filename).name})"
    elif filename is not None:
        where = f"writing {filename}"
    else:
        where = "writing the dataset"
    reason = f"[Errno {exc.errno}] {exc.strerror}" if exc.errno else str(exc)
    hint = (": the disk is full, or a quota or a file-size limit (ulimit -f) was reached"
            if exc.errno in _FULL_ERRNOS else "")
    return f"{where} failed: {reason}{hint}; {state}"


def _build_parameters(config: Settings, source: SplitSource) -> dict[str, Any]:
    return {
        "image_root": str(Path(source.image_root).resolve()),
        **source.description(),
        "build_threads": config.BUILD_THREADS,
        "packer": config.PACKER,  # what wrote the records: "project" or "im2rec"
        # Images more elongated than this were skipped (see images.prepare_image).
        "max_aspect_ratio": config.BUILD_MAX_ASPECT_RATIO,
    }


def _split_entry(result: PackResult, finals: dict[str, Path], temporary: dict[str, Path],
                 folder: Path, num_classes: int) -> dict[str, Any]:
    size = temporary["rec"].stat().st_size
    if size >= 1 << 30:  # minutes for ImageNet's train.rec: say so
        logger.info("hashing %s (%.1f GB)", finals["rec"].name, size / 1e9)
    return {"listed": result.listed, "written": result.written, "count": result.written,
            "skipped": result.skipped, "seconds": round(result.seconds, 3),
            "class_counts": [result.per_label.get(label, [0, 0])[1]
                             for label in range(num_classes)],
            **split_files_entry(finals["rec"], temporary, folder, lst=finals["lst"])}


def format_summary(manifest: dict[str, Any], max_reasons: int = 20) -> str:
    """People's summary of a build: per split ``listed N = written W + skipped S``."""
    width = max(len(name) for name in SPLITS)
    lines = []
    for name in SPLITS:
        entry = manifest["splits"][name]
        lines.append(f"{name + ':':<{width + 1}} listed {entry['listed']} = written "
                     f"{entry['written']} + skipped {len(entry['skipped'])}")
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
    build = manifest.get("build", {})
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
    mean = manifest["mean"]
    lines.append(f"mean R={mean['R']:.3f} G={mean['G']:.3f} B={mean['B']:.3f} "
                 f"(training set, {manifest['resize']}px shorter side)"
                 + (f"; per-pixel mean image {manifest['mean_image_file']}"
                    if manifest.get("mean_image_file") else ""))
    lines.append(f"labels: {manifest['label_order']} order, {manifest['num_classes']} classes; "
                 f"built in {manifest['build_seconds']:.1f} s")
    return "\n".join(lines)
