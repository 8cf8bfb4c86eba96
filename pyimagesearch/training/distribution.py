"""Where gradients meet: the run's kvstore, this process's rank among the workers, and the
learning rate scaled with them (Goyal et al. 2017).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import mxnet as mx

from pyimagesearch.config import ConfigError, Settings
from pyimagesearch.settings import KVSTORE_TYPES
from pyimagesearch.settings.schedules import ScheduleSpec, scale_schedule


@dataclass(frozen=True)
class Cluster:
    """The kvstore a Trainer gets, and this process's place among the workers."""

    kvstore: str | mx.kv.KVStore
    kind: str
    rank: int = 0
    num_workers: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.kind.startswith("dist")

    @property
    def updates_on_servers(self) -> bool:
        """dist_async applies updates on the servers; the others update on the workers."""
        return self.kind == "dist_async"


def refuse_local_kvstore_in_a_job(kind: str, where: str) -> None:
    """A worker started by ``launch_distributed.py`` with a local kvstore would train a model
    of its own into the shared folder: refused at once (the launcher sees only the command
    line; the config is known here). ``where`` names the flag or the config."""
    if not kind.startswith("dist") and os.environ.get("DMLC_ROLE") == "worker":
        raise ConfigError(f"{where}, but this process is a worker of a parameter-server job "
                          f"(DMLC_ROLE=worker): each worker would train a model of its own, "
                          f"all of them into one checkpoint folder; add --kvstore dist_sync "
                          f"to the train command")


def create_cluster(kind: str, contexts: list[mx.Context]) -> Cluster:
    """Create the kvstore (for ``dist_*`` this joins the parameter-server cluster)."""
    if kind not in KVSTORE_TYPES:
        raise ConfigError(f"unknown kvstore {kind!r}; choose one of {', '.join(KVSTORE_TYPES)}")
    if kind == "nccl":
        features = mx.runtime.Features()
        if not features.is_enabled("NCCL") or contexts[0].device_type != "gpu":
            raise ConfigError("kvstore 'nccl' needs GPUs and an MXNet build with NCCL "
                              "(mxnet-cu112 has it); use 'device' here")
    if not kind.startswith("dist"):
        return Cluster(kvstore=kind, kind=kind)
    if "DMLC_ROLE" not in os.environ:
        raise ConfigError(f"kvstore {kind!r} needs the processes of a parameter-server "
                          f"cluster: start the run with launch_distributed.py")
    kvstore = mx.kv.create(kind)
    return Cluster(kvstore=kvstore, kind=kind, rank=kvstore.rank,
                   num_workers=kvstore.num_workers)


def scaled_schedule(config: Settings, spec: ScheduleSpec, cluster: Cluster,
                    updates_per_epoch: int) -> ScheduleSpec:
    """The schedule for ``cluster``: as the recipe says, or scaled with the number of workers.

    Config: ``DIST_LR_SCALING = "linear"`` multiplies every rate by the number of workers
    (the global batch grows by that factor); ``DIST_WARMUP_EPOCHS`` reaches the scaled
    rate by a linear ramp from the recipe's.
    """
    if config.DIST_LR_SCALING == "none" or cluster.num_workers == 1:
        return spec
    warmup_epochs = config.DIST_WARMUP_EPOCHS
    return scale_schedule(spec, cluster.num_workers,
                          warmup_updates=round(warmup_epochs * updates_per_epoch))
