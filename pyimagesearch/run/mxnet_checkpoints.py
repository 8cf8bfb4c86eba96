"""Checkpoints MXNet's symbolic API wrote (the book's own): recognized, given a stand-in
manifest, loaded into the config's network, resumed weights only.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import mxnet as mx
from mxnet import gluon

from pyimagesearch.config import Settings
from pyimagesearch.files import atomic_write_text, sha256_file
from pyimagesearch.nn.build import build_network
from pyimagesearch.run.array_files import LIST_MAGIC
from pyimagesearch.run.optimizer_state import start_optimizer_at
from pyimagesearch.run.paths import (
    checkpoint_name,
    checkpoint_paths,
    epoch_of,
    manifest_glob,
    mxnet_symbol_copy,
    params_glob,
    save_traces,
)
from pyimagesearch.run.symbolic_import import load_symbolic_checkpoint

logger = logging.getLogger(__name__)

KIND = "mxnet"  # the manifest stand-in's "format"


def mxnet_symbol_file(folder: str | Path, prefix: str) -> Path:
    """The graph of the MXNet epochs: the preserved copy if a resumed run made one."""
    preserved = mxnet_symbol_copy(folder, prefix)
    return preserved if preserved.is_file() else checkpoint_paths(folder, prefix, 0)["symbol"]


def is_mxnet_checkpoint(folder: str | Path, prefix: str, epoch: int) -> bool:
    """Epoch ``epoch`` has MXNet's two files and no project manifest.

    A ``.params`` file without its manifest may also be one of the project's own saves cut
    short by a crash, which must never count as a checkpoint. It is taken for one where
    the project's checkpoints of ``prefix`` are (a manifest, and no MXNet symbol kept aside
    by a resume), or where the save left its traces: a temporary file of that epoch, or a
    ``.states`` file in the project's array format (MXNet's ``Module`` pickles its own).
    """
    folder = Path(folder)
    paths = checkpoint_paths(folder, prefix, epoch)
    if not paths["params"].is_file() or paths["manifest"].exists():
        return False
    if mxnet_symbol_copy(folder, prefix).is_file():
        return True
    if not paths["symbol"].is_file() or any(folder.glob(manifest_glob(prefix))):
        return False
    if save_traces(folder, prefix, epoch):
        return False
    return not (paths["states"].is_file() and _array_file(paths["states"]))


def _array_file(path: Path) -> bool:
    """Written by ``mx.nd.save`` (as the project saves optimizer state), not pickled."""
    with open(path, "rb") as handle:
        return handle.read(8) == LIST_MAGIC.to_bytes(8, "little")


def mxnet_checkpoint_epochs(folder: str | Path, prefix: str) -> list[int]:
    """Epochs of ``prefix`` in ``folder`` that are MXNet checkpoints."""
    epochs = []
    for path in Path(folder).glob(params_glob(prefix)):
        epoch = epoch_of(path)
        if is_mxnet_checkpoint(folder, prefix, epoch):
            epochs.append(epoch)
    return sorted(epochs)


def load_mxnet_checkpoint(net: gluon.HybridBlock, folder: str | Path, prefix: str, epoch: int,
                          input_size: int) -> str:
    """Map MXNet checkpoint ``epoch`` onto ``net`` (initialized) by structure; one line back."""
    return load_symbolic_checkpoint(net, folder, prefix, epoch,
                                    data_shape=(1, 3, input_size, input_size),
                                    symbol_file=mxnet_symbol_file(folder, prefix))


def build_from_mxnet_checkpoint(config: Settings, folder: str | Path, prefix: str,
                                epoch: int, contexts: list[mx.Context]) -> gluon.HybridBlock:
    """The config's network with MXNet checkpoint ``epoch``'s weights, hybridized."""
    config.require("MODEL", "NUM_CLASSES", "INPUT_SIZE")
    net = build_network(config, contexts, seed=0)
    logger.info("%s", load_mxnet_checkpoint(net, folder, prefix, epoch, config.INPUT_SIZE))
    return net


def stand_in_manifest(folder: str | Path, prefix: str, epoch: int) -> dict[str, Any]:
    """What stands for the manifest of MXNet checkpoint ``epoch``: its files, nothing more.

    No config, network or dataset is recorded, so commands take them from ``--config``.
    """
    files = {"symbol": mxnet_symbol_file(folder, prefix),
             "params": checkpoint_paths(folder, prefix, epoch)["params"]}
    return {
        "format": KIND,
        "epoch": epoch,
        "prefix": prefix,
        "files": {kind: {"file": path.name, "bytes": path.stat().st_size,
                         "sha256": sha256_file(path)} for kind, path in files.items()},
    }


def restore_weights_only(net: gluon.HybridBlock, trainer: gluon.Trainer, folder: str | Path,
                         prefix: str, epoch: int, updates_per_epoch: int,
                         input_size: int) -> str:
    """Resume from MXNet checkpoint ``epoch`` as the book does: weights only.

    The optimizer's buffers start from zero and its update count at ``epoch x
    updates_per_epoch``, so the schedule (a function of the update count) continues where
    an uninterrupted run of this config would be. The MXNet symbol is preserved first (see
    the module docstring). Returns the line for the training log.
    """
    mapped = load_mxnet_checkpoint(net, folder, prefix, epoch, input_size)
    preserve_mxnet_symbol(folder, prefix)
    num_update = epoch * updates_per_epoch
    start_optimizer_at(trainer, num_update)
    return (f"weights only, from MXNet checkpoint {checkpoint_name(prefix, epoch)}: {mapped}; "
            f"optimizer state starts fresh and the schedule at update {num_update:,} "
            f"({epoch} epochs x {updates_per_epoch} updates)")


def preserve_mxnet_symbol(folder: str | Path, prefix: str) -> None:
    """Copy ``NAME-symbol.json`` to ``NAME-mxnet-symbol.json`` before a run replaces it."""
    preserved = mxnet_symbol_copy(folder, prefix)
    if preserved.is_file():
        return
    original = checkpoint_paths(folder, prefix, 0)["symbol"]
    atomic_write_text(preserved, original.read_text(encoding="utf-8"))
    logger.info("MXNet's %s kept as %s: this run writes its own %s", original.name,
                preserved.name, original.name)


def network_graph(config: Settings, folder: str | Path, prefix: str, epoch: int
                  ) -> tuple[mx.sym.Symbol, dict[str, mx.nd.NDArray], dict[str, mx.nd.NDArray]]:
    """``mx.model.load_checkpoint``'s (symbol, args, auxs), for checkpoints of either kind.

    For an MXNet checkpoint it is the config's network with the mapped weights, so its
    output is the network's logits, whatever head (``SoftmaxOutput``) the saved graph had.
    """
    if not is_mxnet_checkpoint(folder, prefix, epoch):
        return mx.model.load_checkpoint(str(Path(folder) / prefix), epoch)
    net = build_from_mxnet_checkpoint(config, folder, prefix, epoch, [mx.cpu()])
    symbol = net(mx.sym.var("data"))
    values = {p.name: p.data() for p in net.collect_params().values()}
    args = {name: values[name] for name in symbol.list_arguments() if name in values}
    auxs = {name: values[name] for name in symbol.list_auxiliary_states() if name in values}
    return symbol, args, auxs
