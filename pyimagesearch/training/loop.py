"""The training loop every network shares: ``train_epoch`` returns numbers and decides
nothing; ``fit`` is the one place that logs, validates, checkpoints and stops.
"""

from __future__ import annotations

import hashlib
import math
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import mxnet as mx
import numpy as np
from mxnet import autograd, gluon
from mxnet.contrib import amp

from pyimagesearch.data.dataset import DatasetChanged
from pyimagesearch.data.decoder import DecodingStopped
from pyimagesearch.errors import EXIT_DIVERGED, ProjectError
from pyimagesearch.run.checkpoints import CheckpointError, nonfinite_weights, save_checkpoint
from pyimagesearch.run.logs import LogWriteError, TrainingLog, append_metrics
from pyimagesearch.run.paths import checkpoint_paths
from pyimagesearch.scoring import MetricTotals, Normalize, batch_sums, evaluate, split_batch


class TrainingInterrupted(ProjectError):
    """SIGINT or SIGTERM arrived; the run stopped after the current step.

    ``note`` tells what a repeated signal did (stopped a step at once, or came during a
    checkpoint save: see :class:`StopFlag`).
    """

    def __init__(self, signum: int, epoch: int, batch: int, resume_epoch: int | None,
                 note: str = "") -> None:
        self.signum, self.epoch, self.batch, self.resume_epoch = signum, epoch, batch, resume_epoch
        self.note = note
        name = signal.Signals(signum).name
        super().__init__(f"{name} received during epoch {epoch}, batch {batch}; "
                         + (f"{note}; " if note else "")
                         + (f"the last complete checkpoint is epoch {resume_epoch}"
                            if resume_epoch is not None else "no checkpoint was written yet"))

    label = "[INFO] stopped: "

    @property
    def exit_status(self) -> int:  # type: ignore[override]
        return 128 + self.signum


class WriteFailed(ProjectError):
    """A checkpoint, a log line or a metrics record could not be written (a full disk):
    the run stopped; ``resume_epoch`` is the newest complete checkpoint."""

    def __init__(self, message: str, resume_epoch: int | None) -> None:
        self.resume_epoch = resume_epoch
        super().__init__(message)


class TrainingDiverged(ProjectError):
    """Training produced non-finite numbers; no checkpoint of these weights is written.

    ``cause`` says what: a loss value (float) or a sentence ("parameter x is NaN").
    """

    exit_status = EXIT_DIVERGED

    def __init__(self, epoch: int, batch: int, cause: str | float,
                 resume_epoch: int | None) -> None:
        self.epoch, self.batch, self.cause, self.resume_epoch = epoch, batch, cause, resume_epoch
        reason = f"loss is {cause}" if isinstance(cause, float) else cause
        super().__init__(
            f"{reason} at epoch {epoch}, batch {batch}: training stopped without saving "
            f"these weights; " + (f"the last good checkpoint is epoch {resume_epoch} "
                                  f"(resume from it with a lower --lr)"
                                  if resume_epoch is not None else "no checkpoint was written"))


class StopFlag:
    """Set by SIGINT/SIGTERM; the loop checks it between steps so a step is never torn.

    A second signal means "now": it stops the step at once (``KeyboardInterrupt``; no
    weights of that step are saved). During a checkpoint save (``saving``) the save is
    finished first, since it takes seconds and a run stopped without it loses the epoch;
    a third signal abandons the save (its files, without a manifest, do not count).
    Before the loop (``starting``) there is nothing to finish: every signal raises
    ``KeyboardInterrupt``, and ``fit`` raises it again should a finalizer have swallowed
    it. After the loop (``closing``) signals are only noted: the run is closing anyway.
    """

    def __init__(self, starting: bool = False) -> None:
        self.signum: int | None = None
        self.starting = starting
        self.closing = False
        self.saving = False
        self.repeated_while_saving = False
        self.forced = False  # a KeyboardInterrupt was raised; later signals are ignored

    def __call__(self, signum: int, frame: Any) -> None:
        first = self.signum is None
        if first:
            self.signum = signum
        if self.starting:
            raise KeyboardInterrupt
        if first or self.forced or self.closing:
            return
        if self.saving and not self.repeated_while_saving:
            self.repeated_while_saving = True
        else:
            self.forced = True
            raise KeyboardInterrupt

    def requested(self) -> bool:
        return self.signum is not None


@contextmanager
def stop_on_signals(flag: StopFlag | None = None,
                    signals: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)
                    ) -> Iterator[StopFlag]:
    """``flag`` (a new one if None) handles ``signals`` inside the block."""
    flag = flag or StopFlag()
    previous = {sig: signal.signal(sig, flag) for sig in signals}
    try:
        yield flag
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def stop_on_ctrl_c() -> AbstractContextManager[StopFlag]:
    """The start-up's flag, for SIGINT (SIGTERM keeps its default until ``fit``): pass it to
    ``fit``, and its ``requested`` to whatever waits in between."""
    return stop_on_signals(StopFlag(starting=True), (signal.SIGINT,))


@dataclass
class EpochProgress:
    """Where the loop is, for messages about interruptions and divergence."""

    epoch: int
    batch: int = 0  # batches started in the epoch (the current one's number, from 1)
    samples: int = 0
    skipped: int = 0
    lr: float | None = None  # the rate the epoch's first update really used


@dataclass
class StepContext:
    """What an observer sees after an update: the step's inputs and losses, the network."""

    epoch: int
    batch: int  # counted from 1 within the epoch, as the log's "Batch [n]"
    net: gluon.HybridBlock
    trainer: gluon.Trainer
    data: list[mx.nd.NDArray]
    losses: list[mx.nd.NDArray]
    log: TrainingLog


class StepObserver(Protocol):
    """Runs after every ``interval``-th update of the run (health checks and the like).

    It may log, or raise ``TrainingDiverged`` to stop the run; it must not update weights.
    """

    interval: int

    def observe(self, step: StepContext) -> None: ...


class EpochObserver(Protocol):
    """Runs after every validated and saved epoch (the plateau detector and the like).

    ``record`` is the epoch's metrics record (``NAME-metrics.jsonl``); it may log.
    """

    def end_of_epoch(self, record: dict[str, Any], log: TrainingLog) -> None: ...


@dataclass
class TrainingSetup:
    """What the loop trains, and how."""

    net: gluon.HybridBlock
    trainer: gluon.Trainer
    contexts: list[mx.Context]
    batch_size: int
    log: TrainingLog
    log_interval: int
    seed: int
    # uint8 pixels -> float32 minus the dataset mean, on each device (Normalizer).
    normalize: Normalize = field(default=lambda x: x.astype("float32"))
    loss_fn: gluon.loss.Loss = field(default_factory=gluon.loss.SoftmaxCrossEntropyLoss)
    observers: list[StepObserver] = field(default_factory=list)
    epoch_observers: list[EpochObserver] = field(default_factory=list)
    # A step whose loss or gradient is not finite is skipped; this many in a row stop the run.
    max_nonfinite_steps: int = 3
    # Every this many updates all weights are checked finite: on the CPU, ReLU turns NaN
    # into 0 and max pooling into -3.4e38, so a NaN weight can hide behind a finite loss.
    weight_check_interval: int = 100
    # Distributed runs: every worker stops after the same number of batches (or the
    # synchronous kvstore would wait forever), and only worker 0 validates and saves.
    max_batches: int | None = None
    is_main: bool = True
    # float16 through mx.contrib.amp: its loss scaler handles overflowing gradients.
    mixed_precision: bool = False
    updates: int = 0  # updates applied so far in the run (also when the servers apply them)
    # Distributed runs log a hash of the weights every epoch on every worker: equal
    # hashes show the workers still train one model.
    log_fingerprints: bool = False
    # Raises DatasetChanged when the dataset was rebuilt under the run; called before
    # every epoch's first batch and before validation.
    check_data: Callable[[], None] = field(default=lambda: None)


def _trainable(net: gluon.Block) -> list[gluon.Parameter]:
    return [p for p in net.collect_params().values() if p.grad_req != "null"]


def _sum_of_squares(arrays: list[mx.nd.NDArray]) -> mx.nd.NDArray:
    return mx.nd.multi_sum_sq(*arrays, num_arrays=len(arrays)).sum()


def weights_fingerprint(net: gluon.Block) -> str:
    """SHA-256 of the trainable parameters (names and bytes, in name order), first device.

    BN running statistics are left out: each worker (like each GPU) keeps its own, from
    its own batches; worker 0's are the ones checkpoints save.
    """
    digest = hashlib.sha256()
    for name, param in sorted(net.collect_params().items()):
        if param.grad_req == "null":
            continue
        digest.update(name.encode())
        digest.update(param.list_data()[0].asnumpy().tobytes())
    return digest.hexdigest()


def _backward(setup: TrainingSetup, losses: list[mx.nd.NDArray]) -> None:
    if setup.mixed_precision:
        with amp.scale_loss(losses, setup.trainer) as scaled:
            autograd.backward(scaled)
    else:
        autograd.backward(losses)


def train_epoch(setup: TrainingSetup, data_iter: mx.io.DataIter, epoch: int,
                stop: StopFlag, progress: EpochProgress) -> dict[str, float]:
    """One pass over ``data_iter``; returns the epoch's rank-1, rank-5 and loss.

    Gradients are aggregated first (over devices and workers); then the host reads four
    numbers per device, reduced on the device: rank-1 hits, rank-5 hits, loss sum and the
    squared norm of the aggregated gradient. A step whose loss or gradient is not finite
    is not applied (counted, logged) -- every worker sees the same aggregated gradient,
    so all skip together; ``max_nonfinite_steps`` in a row stop the run. That read is
    the loop's one host sync per step.
    """
    totals, interval = MetricTotals(), MetricTotals()
    interval_start = time.perf_counter()
    params = _trainable(setup.net)
    on_servers = setup.trainer._update_on_kvstore
    consecutive = 0
    batches = iter(data_iter)

    def upcoming(index: int) -> tuple[mx.io.DataBatch, list, list] | None:
        if setup.max_batches is not None and index >= setup.max_batches:
            return None
        try:
            batch = next(batches, None)
        except DecodingStopped:
            if index == 0:
                raise
            return None  # stopping: the step under way finishes, and the check below stops
        return None if batch is None else (batch, *split_batch(batch, setup.contexts,
                                                                setup.normalize))

    current = upcoming(0)
    batch_index = -1
    while current is not None:
        batch_index += 1
        batch, data, labels = current
        progress.batch = batch_index + 1
        with autograd.record():
            outputs = [setup.net(x) for x in data]
            losses = [setup.loss_fn(out, y) for out, y in zip(outputs, labels)]
        _backward(setup, losses)
        if not on_servers:
            setup.trainer.allreduce_grads()
        checks = [mx.nd.concat(batch_sums(out.detach(), y, loss.detach()),
                               _sum_of_squares([p.grad(ctx) for p in params]).reshape((1,)),
                               dim=0)
                  for out, y, loss, ctx in zip(outputs, labels, losses, setup.contexts)]
        # Fetch the next batch and ship it to the devices while this step still computes,
        # so the read below leaves the devices waiting only for the update to be issued.
        current = upcoming(batch_index + 1)
        rows = [c.asnumpy().astype(np.float64) for c in checks]
        values = np.sum(rows, axis=0)
        if not on_servers:
            # Aggregated gradients are the same on every device: one device's norm is it.
            values[3] = rows[0][3]
        # AMP's scaled gradients overflow by design; its loss scaler skips those steps.
        gradient_ok = setup.mixed_precision or math.isfinite(values[3])
        if not (math.isfinite(values[2]) and gradient_ok):
            consecutive += 1
            progress.skipped += 1
            setup.log.warning(
                f"Epoch[{epoch}] Batch [{batch_index + 1}]\tSkipped: loss sum={values[2]:g} "
                f"grad-norm={math.sqrt(values[3]) if values[3] >= 0 else values[3]:g} "
                f"({consecutive} in a row)")
            if consecutive >= setup.max_nonfinite_steps:
                raise TrainingDiverged(epoch, batch_index + 1,
                                       f"{consecutive} steps in a row with a non-finite loss "
                                       f"or gradient (loss sum {values[2]:g})", None)
        else:
            consecutive = 0
            if on_servers:
                setup.trainer.step(setup.batch_size)
            else:
                setup.trainer.update(setup.batch_size)
            setup.updates += 1
            if progress.lr is None:
                progress.lr = float(setup.trainer.learning_rate)
            count = batch.data[0].shape[0]
            totals.add(values[:3], count)
            interval.add(values[:3], count)
            progress.samples += count
            if setup.updates % setup.weight_check_interval == 0 and \
                    (broken := nonfinite_weights(setup.net)):
                raise TrainingDiverged(epoch, batch_index + 1,
                                       f"weights {', '.join(broken[:3])} are not finite", None)
            for observer in setup.observers:
                if setup.updates % observer.interval == 0:
                    observer.observe(StepContext(epoch, batch_index + 1, setup.net,
                                                 setup.trainer, data, losses, setup.log))
        if (batch_index + 1) % setup.log_interval == 0:
            elapsed = time.perf_counter() - interval_start
            setup.log.batch(epoch, batch_index + 1, interval.count / max(elapsed, 1e-9),
                            interval.result())
            interval.reset()
            interval_start = time.perf_counter()
        if stop.signum is not None:
            raise TrainingInterrupted(stop.signum, epoch, batch_index + 1, None)
    return totals.result()


@dataclass
class _FitState:
    """Where ``fit`` is, for the message of a run that stops outside its checks."""

    last_saved: int | None  # the newest complete checkpoint
    progress: EpochProgress
    stop: StopFlag = field(default_factory=StopFlag)


def _save(setup: TrainingSetup, checkpoints: str, prefix: str, epoch: int, state: _FitState,
          info: dict[str, Any]) -> None:
    """Save checkpoint ``epoch + 1``; a second signal meanwhile waits for the save to end,
    a third abandons it (see :class:`StopFlag`)."""
    stop = state.stop
    stop.saving = True
    try:
        save_checkpoint(setup.net, setup.trainer, checkpoints, prefix, epoch + 1, info)
    except CheckpointError as exc:
        raise WriteFailed(str(exc), state.last_saved) from None
    except KeyboardInterrupt:
        # The manifest is written last: if it made it, the checkpoint is complete.
        if checkpoint_paths(checkpoints, prefix, epoch + 1)["manifest"].exists():
            state.last_saved = epoch + 1
        raise TrainingInterrupted(
            stop.signum or signal.SIGINT, epoch, state.progress.batch, state.last_saved,
            f"a third signal abandoned the save of checkpoint {epoch + 1}, which does not "
            f"count" if state.last_saved != epoch + 1 else
            f"a third signal came as checkpoint {epoch + 1} was completed") from None
    finally:
        stop.saving = False
    state.last_saved = epoch + 1


def fit(setup: TrainingSetup, start_epoch: int, end_epoch: int,
        make_train_iter: Callable[[int], mx.io.DataIter],
        make_val_iter: Callable[[], mx.io.DataIter],
        val_images: int, lr_at: Callable[[int], float], checkpoint: dict[str, Any],
        metrics_path: str, checkpoints: str, prefix: str,
        stop: StopFlag | None = None) -> dict[str, Any]:
    """Train epochs ``start_epoch .. end_epoch - 1``, validating and checkpointing each.

    ``checkpoint`` is the run's description merged into every checkpoint manifest.
    Returns the last epoch's metrics record. A log line or metrics record that cannot be
    written stops the run (:class:`WriteFailed`), as a checkpoint that cannot be saved does.
    ``stop``: the start-up's flag (:func:`stop_on_ctrl_c`), which handles both signals here.
    """
    stop = stop or StopFlag()
    if stop.requested():
        raise KeyboardInterrupt  # the start-up's, which a finalizer swallowed
    state = _FitState(start_epoch if start_epoch > 0 else None, EpochProgress(start_epoch),
                      stop)
    try:
        return _fit_epochs(setup, start_epoch, end_epoch, make_train_iter, make_val_iter,
                           val_images, lr_at, checkpoint, metrics_path, checkpoints, prefix,
                           state)
    except LogWriteError as exc:
        raise WriteFailed(f"{exc}; the run stopped", state.last_saved) from None
    except (KeyboardInterrupt, DecodingStopped):
        # A second signal outside a save: the step was cut short and nothing of it saved;
        # or a decoding process did not answer once the run was stopping.
        raise TrainingInterrupted(stop.signum or signal.SIGINT, state.progress.epoch,
                                  state.progress.batch, state.last_saved,
                                  "a repeated signal stopped the run at once"
                                  if stop.forced else "") from None
    finally:
        stop.closing = True


def _fit_epochs(setup: TrainingSetup, start_epoch: int, end_epoch: int,
                make_train_iter: Callable[[int], mx.io.DataIter],
                make_val_iter: Callable[[], mx.io.DataIter],
                val_images: int, lr_at: Callable[[int], float], checkpoint: dict[str, Any],
                metrics_path: str, checkpoints: str, prefix: str,
                state: _FitState) -> dict[str, Any]:
    record: dict[str, Any] = {}
    run_id = time.strftime("%Y-%m-%dT%H:%M:%S") + f"-{id(setup):x}"
    setup.updates = int(setup.trainer.optimizer.num_update)  # restored by a resume
    with stop_on_signals(state.stop) as stop:
        stop.starting = False
        for epoch in range(start_epoch, end_epoch):
            progress = state.progress = EpochProgress(epoch)
            lr = lr_at(epoch)
            setup.log.learning_rate(epoch, lr)
            # Dropout and any other randomness are seeded by epoch, so a resumed run
            # draws what the uninterrupted run drew.
            epoch_seed = (setup.seed * 100003 + epoch) % 2**31
            mx.random.seed(epoch_seed)
            np.random.seed(epoch_seed)
            try:
                setup.check_data()
                train_iter = make_train_iter(epoch)
                tic = time.time()
                train_metrics = train_epoch(setup, train_iter, epoch, stop, progress)
                if setup.is_main:
                    setup.check_data()
            except TrainingDiverged as exc:
                raise TrainingDiverged(exc.epoch, exc.batch, exc.cause,
                                       state.last_saved) from None
            except TrainingInterrupted as exc:
                raise TrainingInterrupted(exc.signum, exc.epoch, exc.batch,
                                          state.last_saved) from None
            except DatasetChanged as exc:
                raise DatasetChanged(exc.reason, exc.path, state.last_saved) from None
            seconds = time.time() - tic
            setup.log.epoch_metrics(epoch, "Train", train_metrics)
            setup.log.time_cost(epoch, seconds)
            if setup.log_fingerprints:
                setup.log.info(f"Epoch[{epoch}] Weights-sha256={weights_fingerprint(setup.net)}")
            if not setup.is_main:
                # Worker 0 validates and saves; the others go on and meet it at the next
                # gradient exchange.
                record = {"epoch": epoch, "train": train_metrics, "time": seconds}
                if stop.signum is not None:
                    raise TrainingInterrupted(stop.signum, epoch, progress.batch, None)
                continue
            val_metrics = evaluate(setup.net, make_val_iter(), setup.contexts, setup.normalize,
                                   val_images)
            val_metrics.pop("images")
            setup.log.epoch_metrics(epoch, "Validation", val_metrics)
            num_update = setup.updates
            if progress.lr is not None and not math.isclose(progress.lr, lr, rel_tol=1e-6):
                setup.log.warning(f"Epoch[{epoch}] the first update used learning rate "
                                  f"{progress.lr:g}, the schedule says {lr:g}")
            record = {"epoch": epoch, "start_epoch": start_epoch, "run": run_id,
                      "lr": progress.lr if progress.lr is not None else lr,
                      "train": train_metrics, "val": val_metrics, "time": seconds,
                      "num_update": num_update, "samples_per_sec": progress.samples / seconds,
                      "skipped_steps": progress.skipped}
            _save(setup, checkpoints, prefix, epoch, state,
                  {**checkpoint, "lr": lr, "num_update": num_update,
                   "metrics": {"train": train_metrics, "val": val_metrics},
                   "epoch_seconds": seconds})
            try:
                append_metrics(metrics_path, record)
            except LogWriteError as exc:
                raise WriteFailed(
                    f"{exc}; checkpoint {epoch + 1} is complete, only epoch {epoch}'s line "
                    f"is missing from {Path(metrics_path).name} (the log and the "
                    f"checkpoint's manifest have its figures)", state.last_saved) from None
            for epoch_observer in setup.epoch_observers:
                epoch_observer.end_of_epoch(record, setup.log)
            if stop.signum is not None:
                raise TrainingInterrupted(
                    stop.signum, epoch, progress.batch, state.last_saved,
                    f"a second signal came while checkpoint {epoch + 1} was being saved, "
                    f"which was finished first" if stop.repeated_while_saving else "")
    return record
