"""One training run from a config: :func:`train` is the table of contents every
``train_*.py`` script reaches; networks differ only in their config."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mxnet as mx
from mxnet import gluon
from mxnet.contrib import amp

from pyimagesearch.config import ConfigError, Settings
from pyimagesearch.data.dataset import DatasetInfo, check_dataset, check_unchanged, run_record
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
from pyimagesearch.run.paths import checkpoint_paths, log_path, metrics_jsonl_path, run_lock
from pyimagesearch.runtime import return_large_blocks
from pyimagesearch.settings import to_json
from pyimagesearch.settings.recipes import Recipe
from pyimagesearch.settings.schedules import LROverride, ScheduleSpec
from pyimagesearch.training.devices import (
    BatchSizes,
    batch_sizes,
    describe_contexts,
    select_contexts,
)
from pyimagesearch.training.distribution import (
    Cluster,
    create_cluster,
    refuse_local_kvstore_in_a_job,
    scaled_schedule,
)
from pyimagesearch.training.health import describe_health, health_settings, observers_from_config
from pyimagesearch.training.loop import StopFlag, TrainingSetup, fit, stop_on_ctrl_c
from pyimagesearch.training.lr_schedulers import lr_at_epoch_start
from pyimagesearch.training.optimizers import create_optimizer
from pyimagesearch.training.plateau import (
    PlateauDetector,
    PlateauObserver,
    ResumeCommand,
    describe_plateau,
    plateau_settings,
)
from pyimagesearch.training.resume import check_start, restore, run_differences

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


@dataclass(frozen=True)
class RunPlan:
    """What a run is, worked out before anything is built: where, on what, how long, how fast."""

    recipe: Recipe
    end_epoch: int
    resumed: dict[str, Any] | None  # the manifest of the checkpoint resumed from
    contexts: list[mx.Context]
    info: DatasetInfo
    dtype: str
    cluster: Cluster
    batches: BatchSizes
    per_epoch: int  # updates per epoch
    seed: int
    overrides: tuple[LROverride, ...]
    schedule: ScheduleSpec


def train(config: Settings, request: RunRequest, contexts: list[mx.Context] | None = None,
          console: bool = True) -> dict[str, Any]:
    """Train (or resume) a run as the config and the request say; return the last epoch's
    record. The run holds its folder's lock throughout (in a distributed run, worker 0)."""
    with ExitStack() as held:
        stop = held.enter_context(stop_on_ctrl_c())  # the run's one flag, from start-up to close
        config.require(*REQUIRED_FIELDS)
        plan = plan_run(config, request, contexts, held)
        net, trainer = build_trainer(config, request, plan)
        description = describe_run(config, request, plan)
        restored, differences = restore_run(config, request, plan, net, trainer, description)
        log = held.enter_context(open_log(config, request, plan, console))
        log_start(log, config, request, plan, net, restored, differences)
        setup = training_setup(config, request, plan, net, trainer, log)
        with epoch_decoders(config, request, plan, stop) as decoders:
            return fit(setup, request.start_epoch, plan.end_epoch,
                       make_train_iter=decoders.train, make_val_iter=decoders.validation,
                       val_images=plan.info.splits["val"].count,
                       lr_at=lambda epoch: lr_at_epoch_start(plan.schedule, plan.per_epoch,
                                                             epoch),
                       checkpoint=description,
                       metrics_path=str(metrics_jsonl_path(request.checkpoints,
                                                           request.prefix)),
                       checkpoints=request.checkpoints, prefix=request.prefix, stop=stop)


def plan_run(config: Settings, request: RunRequest, contexts: list[mx.Context] | None,
             held: ExitStack) -> RunPlan:
    """The checks that hold before any work, then the run's devices, data and schedule."""
    recipe = request.recipe or config.RECIPE
    end_epoch = request.end_epoch if request.end_epoch is not None else recipe.num_epochs
    kvstore = request.kvstore or config.KVSTORE
    refuse_local_kvstore_in_a_job(kvstore, f"--kvstore {kvstore}" if request.kvstore
                                  else f"{config.source}: KVSTORE = {kvstore!r}")
    if not kvstore.startswith("dist"):
        held.enter_context(claim_run_folder(request))
    resumed = check_start(request.checkpoints, request.prefix, request.start_epoch,
                          request.reset_optimizer)
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
    batches = batch_sizes(config.BATCH_SIZE, len(contexts), cluster.num_workers)
    streams, _ = decode_streams(config.DECODE_THREADS)
    per_epoch = batches_per_epoch(info.splits["train"].count, batches.per_process,
                                  cluster.num_workers, streams)
    overrides = tuple(LROverride(**o) for o in (resumed or {}).get("lr_overrides", []))
    if request.lr is not None:
        overrides = (*[o for o in overrides if o.epoch < request.start_epoch],
                     LROverride(request.start_epoch, request.lr))
    schedule = scaled_schedule(config, recipe.schedule_spec(overrides), cluster, per_epoch)
    seed = request.seed if request.seed is not None else config.SEED
    return RunPlan(recipe, end_epoch, resumed, contexts, info, dtype, cluster, batches,
                   per_epoch, seed, overrides, schedule)


def build_trainer(config: Settings, request: RunRequest, plan: RunPlan
                  ) -> tuple[gluon.HybridBlock, gluon.Trainer]:
    """The network, initialized on the run's devices, and its optimizer in a Trainer."""
    if plan.dtype == "float16":
        amp.init()  # before the network is built: AMP rewrites the operators it creates
    net = build_network(config, plan.contexts, plan.seed, request.model_params)
    optimizer = create_optimizer(plan.recipe, plan.per_epoch, plan.schedule)
    trainer = gluon.Trainer(net.collect_params(), optimizer, kvstore=plan.cluster.kvstore,
                            update_on_kvstore=plan.cluster.updates_on_servers)
    if plan.dtype == "float16":
        amp.init_trainer(trainer)
    return net, trainer


def describe_run(config: Settings, request: RunRequest, plan: RunPlan) -> dict[str, Any]:
    """What every checkpoint records of its run; ``identity`` must not change on a resume."""
    identity = {"model": config.MODEL, "model_params": model_params(config, request.model_params),
                "input_size": config.INPUT_SIZE, "batch_size": plan.batches.total,
                "updates_per_epoch": plan.per_epoch, "optimizer": plan.recipe.optimizer}
    return {"identity": identity, "config": config.snapshot(), "seed": plan.seed,
            "recipe": to_json(plan.recipe), "contexts": [str(c) for c in plan.contexts],
            "kvstore": plan.cluster.kind, "workers": plan.cluster.num_workers,
            "lr_overrides": [{"epoch": o.epoch, "lr": o.lr} for o in plan.overrides],
            "dataset": run_record(plan.info)}


def restore_run(config: Settings, request: RunRequest, plan: RunPlan, net: gluon.HybridBlock,
                trainer: gluon.Trainer, description: dict[str, Any]
                ) -> tuple[str | None, list[str]]:
    """Weights and optimizer state of the checkpoint resumed from (the line saying what was
    restored), and the differences ``--override`` accepted."""
    resumed, differences, restored = plan.resumed, [], None
    if resumed is not None and resumed.get("format") == MXNET_KIND:
        # MXNet's own checkpoint: weights only, as the book resumes (no optimizer state).
        restored = restore_weights_only(net, trainer, request.checkpoints, request.prefix,
                                        request.start_epoch, plan.per_epoch, config.INPUT_SIZE)
    elif resumed is not None:
        differences = run_differences(resumed, description)
        if differences and not request.override:
            raise CheckpointError(
                f"cannot resume epoch {request.start_epoch} of {request.prefix!r}: the run "
                f"differs from the checkpoint's ({'; '.join(differences[:8])}"
                f"{'; ...' if len(differences) > 8 else ''}); pass --override to resume "
                f"anyway (the schedule is then rebuilt at the restored update count)")
        restored = restore(net, trainer, checkpoint_paths(request.checkpoints, request.prefix,
                                                          request.start_epoch),
                           resumed, request.reset_optimizer)
    if plan.cluster.distributed:
        # Join the kvstore and broadcast worker 0's weights now, not inside the first step:
        # there the engine may send the step's gradient push before the broadcast's pull,
        # and a late worker then starts from summed gradients instead of weights.
        trainer._init_kvstore()
        trainer._init_params()
        mx.nd.waitall()
    return restored, differences


@contextmanager
def open_log(config: Settings, request: RunRequest, plan: RunPlan,
             console: bool) -> Iterator[TrainingLog]:
    """This start's log file (worker 0's is the run's; the others log apart)."""
    Path(request.checkpoints).mkdir(parents=True, exist_ok=True)
    cluster = plan.cluster
    log = TrainingLog(log_path(request.checkpoints, request.start_epoch,
                               worker=None if cluster.is_main else cluster.rank),
                      console=console)
    try:
        log.start(request.start_epoch, f"config={config.source} prefix={request.prefix}")
        yield log
    finally:
        log.close()


def log_start(log: TrainingLog, config: Settings, request: RunRequest, plan: RunPlan,
              net: gluon.HybridBlock, restored: str | None, differences: list[str]) -> None:
    """The head of the log: devices, network, data, recipe, resume, and how it is watched."""
    cluster, info = plan.cluster, plan.info
    log.info(f"Devices: {describe_contexts(plan.contexts)}; batch {plan.batches.total} "
             f"({plan.batches.per_device} per device), {plan.per_epoch} updates per epoch")
    if cluster.distributed or len(plan.contexts) > 1:
        log.info(f"Gradients: kvstore {cluster.kind}, worker {cluster.rank} of "
                 f"{cluster.num_workers}, reading part {cluster.rank + 1} of "
                 f"{cluster.num_workers} of the training records")
    log.info(f"Network: {config.MODEL}, {count_trainable_parameters(net):,} trainable "
             f"parameters, input {config.INPUT_SIZE} px, {config.NUM_CLASSES} classes, "
             f"{plan.dtype}")
    if hasattr(net, "describe"):
        log.info(net.describe(config.INPUT_SIZE))
    log.info(f"Data: {info.splits['train'].count} training and "
             f"{info.splits['val'].count} validation images ({info.manifest_file})")
    log.info(f"Recipe: {plan.recipe.name} ({plan.recipe.optimizer}, base lr "
             f"{plan.schedule.base_lr:g}); epochs {request.start_epoch}..{plan.end_epoch - 1}")
    if restored is not None:
        log.info(f"Resumed from epoch {request.start_epoch}: {restored}")
    for difference in differences:
        log.warning(f"Override (--override): {difference}")
    if request.lr is not None:
        log.info(f"Learning rate set by hand to {request.lr:g} from epoch "
                 f"{request.start_epoch} on (--lr)")
    log.info(describe_health(health_settings(config)))
    log.info(describe_plateau(plateau_settings(config)))


def training_setup(config: Settings, request: RunRequest, plan: RunPlan,
                   net: gluon.HybridBlock, trainer: gluon.Trainer,
                   log: TrainingLog) -> TrainingSetup:
    """What the loop trains, and how it is watched."""
    cluster, info = plan.cluster, plan.info
    return TrainingSetup(
        net=net, trainer=trainer, contexts=plan.contexts,
        normalize=Normalizer(info.mean, info.mean_image),
        check_data=lambda: check_unchanged(info, config),
        # Gradients summed over every worker's batch are normalised by the global batch;
        # dist_async applies each worker's push on its own.
        batch_size=plan.batches.per_process if cluster.updates_on_servers
        else plan.batches.total,
        log=log, log_interval=config.LOG_INTERVAL, seed=plan.seed,
        observers=observers_from_config(config),
        epoch_observers=epoch_observers(config, request) if cluster.is_main else [],
        max_nonfinite_steps=config.MAX_NONFINITE_STEPS,
        weight_check_interval=config.WEIGHT_CHECK_INTERVAL,
        max_batches=plan.per_epoch, is_main=cluster.is_main,
        mixed_precision=plan.dtype == "float16", log_fingerprints=cluster.distributed)


def epoch_decoders(config: Settings, request: RunRequest, plan: RunPlan,
                   stop: StopFlag) -> EpochDecoders:
    """Each epoch's iterators, decoding in a process of their own (see data.decoder)."""
    cluster, batch = plan.cluster, plan.batches.per_process

    def train_params(epoch: int) -> list[dict[str, Any]]:
        return training_iterator_params(config, plan.info, batch, epoch, plan.seed,
                                        num_parts=cluster.num_workers, part_index=cluster.rank)

    # The training split is checked first (a batch it cannot fill is refused naming it),
    # then validation's, before any decoding process starts.
    train_params(request.start_epoch)
    val_params = (evaluation_iterator_params(config, plan.info, "val", batch)
                  if cluster.is_main else None)
    return EpochDecoders(train_params, val_params, range(request.start_epoch, plan.end_epoch),
                         config.DECODE_TIMEOUT, stop.requested)


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
