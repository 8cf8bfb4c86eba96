"""One training run from a config: data, devices, network, optimizer, resume, then ``fit``.

This is the table of contents every ``train_*.py`` script calls; networks differ only in
their config (``MODEL``, ``MODEL_PARAMS``, ``RECIPE``, sizes).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mxnet as mx
from mxnet import gluon
from mxnet.contrib import amp

from pyimagesearch.config import ConfigError, Settings
from pyimagesearch.data.dataset import check_dataset, check_unchanged, run_record
from pyimagesearch.data.decoder import EpochDecoders, start_server
from pyimagesearch.data.iterators import (
    Normalizer,
    batches_per_epoch,
    decode_streams,
    evaluation_iterator_params,
    training_iterator_params,
)
from pyimagesearch.locks import FolderLock
from pyimagesearch.nn import count_trainable_parameters
from pyimagesearch.nn.build import build_network, model_params
from pyimagesearch.run.checkpoints import CheckpointError, remove_save_leftovers
from pyimagesearch.run.logs import TrainingLog, read_metrics
from pyimagesearch.run.mxnet_checkpoints import KIND as MXNET_KIND
from pyimagesearch.run.mxnet_checkpoints import restore_weights_only
from pyimagesearch.run.paths import log_path, metrics_jsonl_path, run_lock
from pyimagesearch.runtime import return_large_blocks
from pyimagesearch.settings import to_json
from pyimagesearch.settings.recipes import Recipe
from pyimagesearch.settings.schedules import LROverride
from pyimagesearch.training.devices import describe_contexts, select_contexts
from pyimagesearch.training.distribution import (
    create_cluster,
    scaled_schedule,
)
from pyimagesearch.training.health import describe_health, health_settings, observers_from_config
from pyimagesearch.training.loop import TrainingSetup, fit, stop_on_ctrl_c
from pyimagesearch.training.lr_schedulers import lr_at_epoch_start
from pyimagesearch.training.optimizers import create_optimizer
from pyimagesearch.training.plateau import (
    PlateauDetector,
    PlateauObserver,
    ResumeCommand,
    describe_plateau,
    plateau_settings,
)
from pyimagesearch.training.resume import StartRequest, check_start, restore, run_differences

logger = logging.getLogger(__name__)

REQUIRED_FIELDS = ("TRAIN_MX_REC", "VAL_MX_REC", "DATASET_MEAN", "NUM_CLASSES", "INPUT_SIZE",
                   "BATCH_SIZE", "NUM_DEVICES", "MODEL", "RECIPE")


@dataclass(frozen=True)
class RunRequest:
    """The run-specific values of the command line."""

    checkpoints: str
    prefix: str
    start_epoch: int = 0
    end_epoch: int | None = None
    lr: float | None = None
    cpu_contexts: int = 1
    gpus: tuple[int, ...] | None = None  # --gpus: these GPUs instead of the first NUM_DEVICES
    # Run-specific network arguments and seed (CIFAR's --depth/--variant, --seed), merged
    # over the config's MODEL_PARAMS and SEED.
    model_params: dict[str, Any] = field(default_factory=dict)
    seed: int | None = None
    # A recipe chosen for this run (e.g. CIFAR's warm-up for the 110-layer net).
    recipe: Recipe | None = None
    override: bool = False          # resume although the run's description changed
    reset_optimizer: bool = False   # resume with fresh momentum (missing/damaged .states)
    kvstore: str | None = None      # the config's KVSTORE unless given
    # How the plateau warning words the resume command (the CLI gives the script's own).
    resume_command: ResumeCommand | None = None

    @property
    def start(self) -> StartRequest:
        return StartRequest(self.checkpoints, self.prefix, self.start_epoch,
                            self.reset_optimizer)


def _identity(config: Settings, recipe: Recipe, batch_size: int, per_epoch: int,
              params: dict[str, Any]) -> dict[str, Any]:
    """What must not change between a checkpoint and the run resuming from it."""
    return {"model": config.MODEL, "model_params": params,
            "input_size": config.INPUT_SIZE, "batch_size": batch_size,
            "updates_per_epoch": per_epoch, "optimizer": recipe.optimizer}


def epoch_observers(config: Settings, request: RunRequest) -> list[PlateauObserver]:
    """The plateau detector unless ``PLATEAU = None``, knowing the epochs before the start."""
    settings = plateau_settings(config)
    if settings is None:
        return []
    detector = PlateauDetector(settings, request.resume_command)
    path = metrics_jsonl_path(request.checkpoints, request.prefix)
    if request.start_epoch > 0 and path.is_file():
        detector.replay(r for r in read_metrics(path) if int(r["epoch"]) < request.start_epoch)
    return [PlateauObserver(detector)]


def _precision(config: Settings, contexts: list[mx.Context]) -> str:
    """``DTYPE``: float32, or float16 with MXNet's automatic mixed precision on GPUs."""
    if config.DTYPE == "float16" and contexts[0].device_type != "gpu":
        raise ConfigError(
            f"{config.source}: DTYPE = 'float16' trains with mixed precision "
            f"(mx.contrib.amp), which needs GPUs with float16 arithmetic; this run is on "
            f"{contexts[0]}. Set DTYPE = 'float32' for CPU training.")
    return config.DTYPE


@contextmanager
def claim_run_folder(request: RunRequest) -> Iterator[FolderLock]:
    """Hold the run's lock (one writer per checkpoint folder and prefix), after removing
    what an interrupted save left there: holding the lock, nobody else can be saving."""
    with run_lock(request.checkpoints, request.prefix) as lock:
        remove_save_leftovers(request.checkpoints, request.prefix)
        yield lock


def train(config: Settings, request: RunRequest, contexts: list[mx.Context] | None = None,
          console: bool = True) -> dict[str, Any]:
    """Train (or resume) a run as the config and the request say; return the last epoch's record.

    The run holds its folder's lock throughout (:func:`claim_run_folder`): a second
    training of the same folder and prefix is refused at once, naming this one. In a
    distributed run worker 0, which writes the checkpoints and the main log, holds it.
    """
    with ExitStack() as held:
        return _train(config, request, contexts, console, held)


def _train(config: Settings, request: RunRequest, contexts: list[mx.Context] | None,
           console: bool, held: ExitStack) -> dict[str, Any]:
    stop = held.enter_context(stop_on_ctrl_c())  # the run's one flag, from start-up to close
    config.require(*REQUIRED_FIELDS)
    recipe = request.recipe or config.RECIPE
    end_epoch = request.end_epoch if request.end_epoch is not None else recipe.num_epochs
    kvstore = request.kvstore or config.KVSTORE
    if not kvstore.startswith("dist"):
        held.enter_context(claim_run_folder(request))
    resumed = check_start(request.start)
    if request.start_epoch >= end_epoch:
        raise ConfigError(f"--start-epoch {request.start_epoch} is not before the last epoch "
                          f"{end_epoch}; pass a larger --end-epoch")
    contexts = contexts or select_contexts(config.NUM_DEVICES, request.cpu_contexts,
                                           request.gpus, config.source)
    info = check_dataset(config, ("train", "val"))
    return_large_blocks()  # a heap that does not creep over a long run (see runtime)
    start_server()  # imports MXNet for the decoding processes while the network is built
    dtype = _precision(config, contexts)
    cluster = create_cluster(kvstore, contexts)
    if cluster.distributed and cluster.is_main:
        # Only now is the rank known; the other workers write nothing shared.
        held.enter_context(claim_run_folder(request))
    local_batch = config.BATCH_SIZE * len(contexts)
    batch_size = local_batch * cluster.num_workers
    streams, _ = decode_streams(config.DECODE_THREADS)
    per_epoch = batches_per_epoch(info.splits["train"].count, local_batch,
                                  cluster.num_workers, streams)
    params = model_params(config, request.model_params)
    identity = _identity(config, recipe, batch_size, per_epoch, params)
    seed = request.seed if request.seed is not None else config.SEED

    overrides = tuple(LROverride(**o) for o in (resumed or {}).get("lr_overrides", []))
    if request.lr is not None:
        overrides = (*[o for o in overrides if o.epoch < request.start_epoch],
                     LROverride(request.start_epoch, request.lr))
    spec = scaled_schedule(config, recipe.schedule_spec(overrides), cluster, per_epoch)
    if dtype == "float16":
        amp.init()  # before the network is built: AMP rewrites the operators it creates
    net = build_network(config, contexts, seed, request.model_params)
    trainer = gluon.Trainer(net.collect_params(), create_optimizer(recipe, per_epoch, spec),
                            kvstore=cluster.kvstore,
                            update_on_kvstore=cluster.updates_on_servers)
    if dtype == "float16":
        amp.init_trainer(trainer)
    description = {
        "identity": identity,
        "config": config.snapshot(),
        "seed": seed,
        "recipe": to_json(recipe),
        "contexts": [str(c) for c in contexts],
        "kvstore": cluster.kind,
        "workers": cluster.num_workers,
        "lr_overrides": [{"epoch": o.epoch, "lr": o.lr} for o in overrides],
        "dataset": run_record(info),
    }
    differences: list[str] = []
    restored = None
    if resumed is not None and resumed.get("format") == MXNET_KIND:
        # MXNet's own checkpoint: weights only, as the book resumes (no optimizer state).
        restored = restore_weights_only(net, trainer, request.checkpoints, request.prefix,
                                        request.start_epoch, per_epoch, config.INPUT_SIZE)
    elif resumed is not None:
        differences = run_differences(resumed, description)
        if differences and not request.override:
            raise CheckpointError(
                f"cannot resume epoch {request.start_epoch} of {request.prefix!r}: the run "
                f"differs from the checkpoint's ({'; '.join(differences[:8])}"
                f"{'; ...' if len(differences) > 8 else ''}); pass --override to resume "
                f"anyway (the schedule is then rebuilt at the restored update count)")
        restored = restore(net, trainer, request.start, resumed)
    if cluster.distributed:
        # Join the kvstore and broadcast worker 0's weights now, not inside the first step:
        # there the engine may send the step's gradient push before the broadcast's pull,
        # and a late worker then starts from summed gradients instead of weights.
        trainer._init_kvstore()
        trainer._init_params()
        mx.nd.waitall()

    Path(request.checkpoints).mkdir(parents=True, exist_ok=True)
    path = log_path(request.checkpoints, request.start_epoch,
                    worker=None if cluster.is_main else cluster.rank)
    log = TrainingLog(path, console=console)
    try:
        log.start(request.start_epoch, f"config={config.source} prefix={request.prefix}")
        log.info(f"Devices: {describe_contexts(contexts)}; batch {batch_size} "
                 f"({config.BATCH_SIZE} per device), {per_epoch} updates per epoch")
        if cluster.distributed or len(contexts) > 1:
            log.info(f"Gradients: kvstore {cluster.kind}, worker {cluster.rank} of "
                     f"{cluster.num_workers}, reading part {cluster.rank + 1} of "
                     f"{cluster.num_workers} of the training records")
        log.info(f"Network: {config.MODEL}, {count_trainable_parameters(net):,} trainable "
                 f"parameters, input {config.INPUT_SIZE} px, {config.NUM_CLASSES} classes, "
                 f"{dtype}")
        if hasattr(net, "describe"):
            log.info(net.describe(config.INPUT_SIZE))
        log.info(f"Data: {info.splits['train'].count} training and "
                 f"{info.splits['val'].count} validation images ({info.manifest_file})")
        log.info(f"Recipe: {recipe.name} ({recipe.optimizer}, base lr {spec.base_lr:g}); "
                 f"epochs {request.start_epoch}..{end_epoch - 1}")
        if restored is not None:
            log.info(f"Resumed from epoch {request.start_epoch}: {restored}")
        for difference in differences:
            log.warning(f"Override (--override): {difference}")
        if request.lr is not None:
            log.info(f"Learning rate set by hand to {request.lr:g} from epoch "
                     f"{request.start_epoch} on (--lr)")
        log.info(describe_health(health_settings(config)))
        log.info(describe_plateau(plateau_settings(config)))
        setup = TrainingSetup(
            net=net, trainer=trainer, contexts=contexts,
            normalize=Normalizer(info.mean, info.mean_image),
            check_data=lambda: check_unchanged(info, config),
            # Gradients summed over every worker's batch are normalised by the global batch;
            # dist_async applies each worker's push on its own.
            batch_size=local_batch if cluster.updates_on_servers else batch_size,
            log=log, log_interval=config.LOG_INTERVAL, seed=seed,
            observers=observers_from_config(config),
            epoch_observers=epoch_observers(config, request) if cluster.is_main else [],
            max_nonfinite_steps=config.MAX_NONFINITE_STEPS,
            weight_check_interval=config.WEIGHT_CHECK_INTERVAL,
            max_batches=per_epoch,
            is_main=cluster.is_main, mixed_precision=dtype == "float16",
            log_fingerprints=cluster.distributed)
        # Each epoch's iterators run in a process of their own (MXNet's ImageRecordIter
        # leaks every instance; see data.decoder).
        def train_params(epoch: int) -> list[dict[str, Any]]:
            return training_iterator_params(config, info, local_batch, epoch, seed,
                                            num_parts=cluster.num_workers,
                                            part_index=cluster.rank)

        # The training split is checked first (a batch it cannot fill is refused naming it),
        # then validation's, before any decoding process starts.
        train_params(request.start_epoch)
        val_params = (evaluation_iterator_params(config, info, "val", local_batch)
                      if cluster.is_main else None)
        with EpochDecoders(train_params, val_params, range(request.start_epoch, end_epoch),
                           config.DECODE_TIMEOUT, stop.requested) as decoders:
            return fit(
                setup, request.start_epoch, end_epoch,
                make_train_iter=decoders.train, make_val_iter=decoders.validation,
                val_images=info.splits["val"].count,
                lr_at=lambda epoch: lr_at_epoch_start(spec, per_epoch, epoch),
                checkpoint=description,
                metrics_path=str(metrics_jsonl_path(request.checkpoints, request.prefix)),
                checkpoints=request.checkpoints, prefix=request.prefix, stop=stop)
    finally:
        log.close()
