"""Checkpoints: saved atomically (the manifest last), listed, verified by checksum, loaded.

A checkpoint MXNet's symbolic API wrote (the book's own) is accepted through
:mod:`pyimagesearch.run.mxnet_checkpoints`. Why it is written this way: docs/design.md.
"""

from __future__ import annotations

import json
import logging
import os
import re
import reprlib
import time
import warnings
from pathlib import Path
from typing import Any

import mxnet as mx
import numpy as np
from mxnet import gluon

from pyimagesearch.config import load_config
from pyimagesearch.errors import CheckpointError, ConfigError
from pyimagesearch.files import atomic_write_text, commit_file, fsync_path, sha256_file
from pyimagesearch.run.array_files import load_arrays, unprefixed
from pyimagesearch.run.mxnet_checkpoints import (
    build_from_mxnet_checkpoint,
    is_mxnet_checkpoint,
    mxnet_checkpoint_epochs,
    stand_in_manifest,
)
from pyimagesearch.run.optimizer_state import save_optimizer_state
from pyimagesearch.run.paths import (
    CHECKPOINT_FILES,
    checkpoint_name,
    checkpoint_paths,
    epoch_of,
    manifest_glob,
    save_leftover,
    save_stem,
)
from pyimagesearch.settings import Settings

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1


def _file_entry(path: Path) -> dict[str, Any]:
    return {"file": path.name, "bytes": path.stat().st_size, "sha256": sha256_file(path)}


def nonfinite_weights(net: gluon.Block) -> list[str]:
    """Names of parameters holding NaN or infinity, on the first device's copy.

    One fused reduction answers the common case; names are looked up only when it fails.
    """
    arrays = [p.list_data()[0] for p in net.collect_params().values()]
    total = mx.nd.multi_sum_sq(*arrays, num_arrays=len(arrays)).sum().asscalar()
    if np.isfinite(total):
        return []
    return [name for name, param in net.collect_params().items()
            if not np.isfinite(param.list_data()[0].asnumpy()).all()]


def save_checkpoint(net: gluon.HybridBlock, trainer: gluon.Trainer, folder: str | Path,
                    prefix: str, epoch: int, info: dict[str, Any]) -> Path:
    """Write checkpoint ``epoch`` atomically; return its manifest path.

    ``net`` must be hybridized and have run forward once (``export`` needs the graph).
    Refuses to save non-finite weights: a broken checkpoint would poison every resume.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    broken = nonfinite_weights(net)
    if broken:
        raise CheckpointError(f"not saving epoch {epoch}: non-finite values in "
                              f"{', '.join(broken[:5])}")
    final = checkpoint_paths(folder, prefix, epoch)
    stem = save_stem(folder, prefix, os.getpid())
    temporary = checkpoint_paths(stem.parent, stem.name, epoch)
    try:
        _write_checkpoint(net, trainer, folder, prefix, epoch, info, final, stem, temporary)
    except (OSError, mx.base.MXNetError) as exc:
        raise CheckpointError(
            f"could not write checkpoint {epoch} of {prefix!r} in {folder} ({exc}); it is not "
            f"marked complete and the earlier checkpoints are untouched -- is the disk full?"
        ) from exc
    finally:
        for path in temporary.values():
            path.unlink(missing_ok=True)
    return final["manifest"]


def _write_checkpoint(net: gluon.HybridBlock, trainer: gluon.Trainer, folder: Path, prefix: str,
                      epoch: int, info: dict[str, Any], final: dict[str, Path], stem: Path,
                      temporary: dict[str, Path]) -> None:
    net.export(str(stem), epoch=epoch)
    counters = save_optimizer_state(trainer, str(temporary["states"]))
    # An older checkpoint of this epoch stops counting before its files are replaced, so
    # a save cut short never leaves a manifest beside files it does not describe.
    final["manifest"].unlink(missing_ok=True)
    for kind in ("symbol", "params", "states"):
        commit_file(temporary[kind], final[kind])
    manifest = {
        "format": FORMAT_VERSION,
        "epoch": epoch,
        "prefix": prefix,
        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "optimizer_state": counters,
        "files": {kind: _file_entry(final[kind]) for kind in ("symbol", "params", "states")},
        **info,
    }
    fsync_path(folder)
    # Last: the manifest is what makes the checkpoint count as complete.
    atomic_write_text(final["manifest"], json.dumps(manifest, indent=2, sort_keys=True))


def remove_save_leftovers(folder: str | Path, prefix: str) -> list[Path]:
    """Delete what interrupted saves of ``prefix`` left in ``folder``; return those files.

    Call it holding the run's lock: no other process can be saving then, so every
    temporary file of a save is a leftover (whatever its pid, which may have been reused).
    """
    folder = Path(folder)
    pattern = save_leftover(prefix)
    removed = []
    interrupted = set()
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        if pattern.fullmatch(path.name) and path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
            logger.info("removed %s, left by an interrupted checkpoint save", path)
            interrupted.update(int(e) for e in re.findall(r"-(\d{4})\.", path.name))
    # What that save had already renamed into place, its manifest missing: without the
    # temporary files it would pass for a checkpoint of MXNet's own (mxnet_checkpoints).
    for epoch in sorted(interrupted):
        paths = checkpoint_paths(folder, prefix, epoch)
        if not paths["manifest"].exists():
            for kind in ("params", "states"):
                if paths[kind].is_file():
                    paths[kind].unlink()
                    removed.append(paths[kind])
                    logger.info("removed %s, written by an interrupted checkpoint save",
                                paths[kind])
    return removed


def list_checkpoints(folder: str | Path, prefix: str) -> list[int]:
    """Epochs with a complete checkpoint (a manifest and every file it names)."""
    folder = Path(folder)
    epochs = []
    for manifest in folder.glob(manifest_glob(prefix)):
        epoch = epoch_of(manifest)
        if all(path.exists() for path in checkpoint_paths(folder, prefix, epoch).values()):
            epochs.append(epoch)
    return sorted(epochs)


def checkpoint_epochs(folder: str | Path, prefix: str) -> list[int]:
    """Every complete checkpoint, the project's and MXNet's own (unverified)."""
    return sorted({*list_checkpoints(folder, prefix), *mxnet_checkpoint_epochs(folder, prefix)})


def latest_checkpoint(folder: str | Path, prefix: str) -> int | None:
    """The newest complete checkpoint (all its files present), unverified."""
    epochs = list_checkpoints(folder, prefix)
    return epochs[-1] if epochs else None


def resolve_epoch(folder: str | Path, prefix: str, epoch: int | str) -> int:
    """``epoch`` as a number; ``"last"`` is the newest checkpoint whose files verify.

    A newer checkpoint whose files do not match their checksums (damaged, or replaced
    by hand) is passed over with a warning naming it and what is wrong.
    """
    if str(epoch) != "last":
        return int(epoch)
    newest_mxnet = max(mxnet_checkpoint_epochs(folder, prefix), default=None)
    for candidate in reversed(list_checkpoints(folder, prefix)):
        if newest_mxnet is not None and newest_mxnet > candidate:
            return newest_mxnet
        try:
            read_manifest(folder, prefix, candidate)
        except CheckpointError as exc:
            logger.warning("skipping checkpoint %s: %s", checkpoint_name(prefix, candidate),
                           exc)
            continue
        return candidate
    if newest_mxnet is not None:
        return newest_mxnet
    raise CheckpointError(f"no complete checkpoint of {prefix!r} in {folder} verifies")


def read_manifest(folder: str | Path, prefix: str, epoch: int, verify: bool = True,
                  skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """The manifest of checkpoint ``epoch``, its files (but ``skip``) checked by SHA-256.

    For an epoch MXNet's symbolic API wrote, a stand-in with ``"format": "mxnet"`` and its
    two files (``mxnet_checkpoints.stand_in_manifest``).
    """
    folder = Path(folder)
    paths = checkpoint_paths(folder, prefix, epoch)
    if not paths["manifest"].exists():
        if is_mxnet_checkpoint(folder, prefix, epoch):
            return stand_in_manifest(folder, prefix, epoch)
        existing = list_checkpoints(folder, prefix)
        listing = ", ".join(str(e) for e in existing) if existing else "none"
        raise CheckpointError(f"no checkpoint {paths['manifest'].name} in {folder}; "
                              f"complete checkpoints of {prefix!r} there: {listing}")
    manifest = _read_json(paths, epoch)
    if verify:
        for kind, entry in manifest["files"].items():
            if kind in skip:
                continue
            path = folder / entry["file"]
            if not path.exists():
                raise CheckpointError(f"{paths['manifest']}: {kind} file {path} is missing")
            if path.stat().st_size != entry["bytes"] or sha256_file(path) != entry["sha256"]:
                raise CheckpointError(f"{path} does not match its checksum in "
                                      f"{paths['manifest'].name}: the file changed or is "
                                      f"damaged")
    return manifest


_SHA256 = re.compile(r"[0-9a-f]{64}")
_INDEX = re.compile(r"[0-9]{1,9}")  # a parameter's index, as the optimizer's counters key it


def _read_json(paths: dict[str, Path], epoch: int) -> dict[str, Any]:
    """A checkpoint manifest, its fields checked against each other and the file's name: a
    reader trusts nothing in a file that may have been edited or damaged."""
    path = paths["manifest"]
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        # ValueError: not UTF-8, not JSON, or an integer of over 4,300 digits.
        reason = "nested too deep" if isinstance(exc, RecursionError) else exc
        raise CheckpointError(f"{path}: unreadable manifest ({reason})") from None
    problem = _manifest_problem(manifest, epoch, {kind: p.name for kind, p in paths.items()})
    if problem:
        raise CheckpointError(f"{path}: {problem}; the manifest was edited or is damaged")
    return manifest


def _manifest_problem(manifest: Any, epoch: int, names: dict[str, str]) -> str | None:
    """What disagrees in a manifest of checkpoint ``epoch`` whose files are ``names``."""
    if not isinstance(manifest, dict):
        return "not a JSON object"
    if type(manifest.get("epoch")) is not int or manifest["epoch"] != epoch:
        return f"epoch {reprlib.repr(manifest.get('epoch'))} where its name says {epoch}"
    files = manifest.get("files")
    if not isinstance(files, dict) or not {"symbol", "params"} <= set(files) \
            or not set(files) <= set(CHECKPOINT_FILES):
        return "'files' does not list the checkpoint's symbol, params (and states)"
    for kind, entry in files.items():
        name = entry.get("file") if isinstance(entry, dict) else None
        if not (isinstance(name, str) and name == Path(name).name and name not in ("", "..")
                and type(entry.get("bytes")) is int and entry["bytes"] >= 0
                and isinstance(entry.get("sha256"), str) and _SHA256.fullmatch(entry["sha256"])):
            return f"the {kind} entry of 'files' is not a file name, size and SHA-256"
        if name != names[kind]:
            # The file checked would not be the file loaded.
            return f"the {kind} entry of 'files' names {reprlib.repr(name)}, not {names[kind]}"
    updates, state = manifest.get("num_update"), manifest.get("optimizer_state")
    if updates is None and state is None:
        return None  # no optimizer: a checkpoint written by other code
    if type(updates) is not int or updates < 0:
        return f"num_update {updates!r} is not a count"
    if not isinstance(state, dict) or not isinstance(state.get("index_update_count"), dict):
        return "optimizer_state lacks its counters"
    if not state.get("on_servers") and state.get("num_update") != updates:
        return (f"num_update {updates} disagrees with the optimizer state's "
                f"{state.get('num_update')!r}")
    counts = state["index_update_count"]
    if not all(_INDEX.fullmatch(k) and type(c) is int and 0 <= c <= updates
               for k, c in counts.items()):
        return f"optimizer_state's update counts do not fit num_update {updates}"
    return None


def recorded_config(manifest: dict[str, Any], config: str | Settings | None = None
                    ) -> Settings:
    """``config`` if given (a module name, a path or settings), else the config the run
    recorded in its checkpoint."""
    if config:
        return load_config(config)
    source = manifest.get("config", {}).get("__source__")
    if isinstance(source, str) and (Path(source).is_file() if source.endswith(".py")
                                    else "/" not in source):
        return load_config(source)
    raise ConfigError(f"the checkpoint's config {source or '(not recorded)'} is not there; "
                      f"pass --config")


def load_exported_params(net: gluon.Block, path: str | Path) -> None:
    """Load an ``export``-ed ``.params`` file (``arg:``/``aux:`` names) into a Gluon block."""
    saved = load_arrays(path, "parameter file", CheckpointError)
    arrays = unprefixed(saved, path, CheckpointError)
    params = net.collect_params()
    missing = sorted(set(params.keys()) - set(arrays))
    extra = sorted(set(arrays) - set(params.keys()))
    if missing or extra:
        raise CheckpointError(
            f"{path} does not fit this network: missing {missing[:3]}, unexpected {extra[:3]} "
            f"(was it written for another model or NUM_CLASSES?)")
    for name, param in params.items():
        if param.shape != arrays[name].shape:
            raise CheckpointError(f"{path}: {name} has shape {arrays[name].shape}, "
                                  f"the network needs {param.shape}")
        param.set_data(arrays[name])


def load_network(folder: str | Path, prefix: str, epoch: int, contexts: list[mx.Context],
                 config: Settings | None = None) -> gluon.HybridBlock:
    """Checkpoint ``epoch`` as a hybridized ``SymbolBlock`` on ``contexts``, its files
    verified against the manifest first.

    An epoch MXNet's symbolic API wrote is loaded into ``config``'s network instead, its
    arrays mapped by structure (``mxnet_checkpoints``); without a config it is refused.
    """
    if is_mxnet_checkpoint(folder, prefix, epoch):
        if config is None:
            raise CheckpointError(f"{checkpoint_name(prefix, epoch)} in {folder} was written by "
                                  f"MXNet's symbolic API and records no network; give the "
                                  f"config that builds it")
        return build_from_mxnet_checkpoint(config, folder, prefix, epoch, contexts)
    read_manifest(folder, prefix, epoch)
    paths = checkpoint_paths(folder, prefix, epoch)
    with warnings.catch_warnings():
        # The exported graph leaves the input's dtype open; float32 is what it gets.
        warnings.filterwarnings("ignore", message="Cannot decide type")
        net = gluon.SymbolBlock.imports(str(paths["symbol"]), ["data"], str(paths["params"]),
                                        ctx=contexts)
    net.hybridize(static_alloc=True, static_shape=True)
    return net
