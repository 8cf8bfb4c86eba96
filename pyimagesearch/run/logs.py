"""Training logs in MXNet's ``Module.fit`` format, written and parsed here, and the metrics
file (one JSON line per epoch). A line that cannot be written is taken back and stops the
run (:class:`LogWriteError`); a line no run writes is refused naming the file and line
(:class:`LogReadError`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import reprlib
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pyimagesearch.errors import ProjectError
from pyimagesearch.files import write_all, write_failure
from pyimagesearch.run.paths import LOG_NAME
from pyimagesearch.scoring import METRIC_NAMES
from pyimagesearch.settings.schedules import finite_number

# A number as the log lines print it (nan and inf included). Each way of reading a run of
# digits is unique, so a line that fails to match costs linear time, not quadratic.
NUMBER = r"([-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|[-+]?nan|[-+]?inf)"
_BATCH = re.compile(r"Epoch\[(\d+)\] Batch \[(\d+)\]\s+Speed: " + NUMBER + r" samples/sec(.*)$")
# A name starts where a run of name characters starts: no match is tried inside one.
_PAIR = re.compile(r"(?<![\w-])([\w-]+)=" + NUMBER)
_EPOCH_METRIC = re.compile(r"Epoch\[(\d+)\] (Train|Validation)-([\w-]+)=" + NUMBER + r"\s*$")
# The line that closes an epoch's training: (epoch, seconds). Public: benchmarks watch
# a run's console for it.
TIME_COST_LINE = re.compile(r"Epoch\[(\d+)\] Time cost=" + NUMBER)
_LR = re.compile(r"Epoch\[(\d+)\] Learning-rate=" + NUMBER)
_START = re.compile(r"Start: epoch (\d+) at (\S+)")
# No run trains this many epochs (or batches per epoch): a larger number is damage, and the
# plots' span of epochs up to it would take unbounded memory.
MAX_EPOCH = 100_000
MAX_BATCH = 10**9


class LogWriteError(ProjectError):
    """A log line or a metrics record could not be written; nothing half-written was left."""

    def __init__(self, path: str | Path, error: OSError) -> None:
        self.path, self.error = Path(path), error
        super().__init__(write_failure(path, error))


class LogReadError(ProjectError):
    """A training log or the metrics file holds what no run writes: one line naming the file
    (and line) and the problem."""

    def __init__(self, path: str | Path, problem: str, line: int | None = None) -> None:
        where = f"{path}, line {line}" if line is not None else f"{path}"
        super().__init__(f"{where}: {problem}")


class _LogFileHandler(logging.Handler):
    """Appends each line with unbuffered writes; a line that fails is cut off again and
    the error kept for :class:`TrainingLog` to raise (``logging.FileHandler`` would print a
    traceback and carry on without the line)."""

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path
        # O_EXCL: log_path picked a name no earlier start used.
        self.descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND,
                                  0o644)
        self.size = 0
        self.error: OSError | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if self.error is not None:
            return
        data = (self.format(record) + "\n").encode("utf-8")
        try:
            write_all(self.descriptor, data)
            self.size += len(data)
        except OSError as exc:
            self.error = exc
            with contextlib.suppress(OSError):
                os.ftruncate(self.descriptor, self.size)

    def close(self) -> None:
        if self.descriptor >= 0:
            os.close(self.descriptor)
            self.descriptor = -1
        super().close()


class TrainingLog:
    """Writes the lines of one start of a run to its log file and to the console."""

    def __init__(self, path: str | Path, console: bool = True) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # A private logger per file: several runs in one process (tests) never mix lines.
        self.logger = logging.getLogger(f"pyimagesearch.run.{self.path.resolve()}")
        self.logger.propagate = False
        self.logger.setLevel(logging.INFO)
        try:
            self._file = _LogFileHandler(self.path)
        except OSError as exc:
            raise LogWriteError(self.path, exc) from None
        self._handlers: list[logging.Handler] = [self._file]
        if console:
            self._handlers.append(logging.StreamHandler(sys.stdout))
        for handler in self._handlers:
            handler.setFormatter(logging.Formatter("%(message)s"))
            self.logger.addHandler(handler)

    def close(self) -> None:
        for handler in self._handlers:
            self.logger.removeHandler(handler)
            handler.close()

    def _check_written(self) -> None:
        if self._file.error is not None:
            raise LogWriteError(self.path, self._file.error)

    def info(self, message: str) -> None:
        self.logger.info(message)
        self._check_written()

    def warning(self, message: str) -> None:
        self.logger.warning(message)
        self._check_written()

    def start(self, epoch: int, description: str) -> None:
        stamp = datetime.now().astimezone().isoformat(timespec="microseconds")
        self.info(f"Start: epoch {epoch} at {stamp} {description}")

    def batch(self, epoch: int, batch: int, speed: float, metrics: dict[str, float]) -> None:
        values = "\t".join(f"{name}={metrics[name]:f}" for name in METRIC_NAMES)
        self.info(f"Epoch[{epoch}] Batch [{batch}]\tSpeed: {speed:.2f} samples/sec\t{values}")

    def learning_rate(self, epoch: int, lr: float) -> None:
        self.info(f"Epoch[{epoch}] Learning-rate={lr:g}")

    def epoch_metrics(self, epoch: int, kind: str, metrics: dict[str, float]) -> None:
        for name in METRIC_NAMES:
            self.info(f"Epoch[{epoch}] {kind}-{name}={metrics[name]:f}")

    def time_cost(self, epoch: int, seconds: float) -> None:
        self.info(f"Epoch[{epoch}] Time cost={seconds:.3f}")


@dataclass
class EpochRecord:
    train: dict[str, float] = field(default_factory=dict)
    val: dict[str, float] = field(default_factory=dict)
    time: float | None = None
    lr: float | None = None


@dataclass
class ParsedLog:
    """One log file: the epochs it trained and its per-batch lines."""

    path: Path
    start_epoch: int
    started_at: str | None
    epochs: dict[int, EpochRecord]
    batches: list[tuple[int, int, float, dict[str, float]]]


def _float(text: str) -> float:
    return float(text)  # float() reads 1.5e-05, nan and inf correctly


def _count(text: str, limit: int, what: str, path: Path, line: int | None = None) -> int:
    """A line's epoch or batch number, refused beyond ``limit`` (before ``int`` reads it:
    Python refuses integers of over 4,300 digits with a ValueError)."""
    digits = text.lstrip("0") or "0"
    if len(digits) > len(str(limit)) or int(digits) > limit:
        shown = text if len(text) <= 20 else f"of {len(text)} digits"
        raise LogReadError(path, f"{what} {shown} is beyond any run's {limit:,}; the log was "
                                 f"edited or is damaged", line)
    return int(text)


def _lines(path: Path, whole: bool = True) -> Iterator[tuple[int, str]]:
    """The file's lines, numbered; bytes that are not UTF-8 are replaced. ``whole``: a last
    line without its newline was cut short (a crash, a copy in progress), anywhere: its
    number may have lost digits, so it is left out."""
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            for number, line in enumerate(handle, start=1):
                if line.endswith("\n") or not whole:
                    yield number, line.rstrip("\n")
    except OSError as exc:
        raise LogReadError(path, f"cannot be read ({exc.strerror or exc})") from None


def parse_log(path: str | Path) -> ParsedLog:
    """Parse a ``training_*.log`` of ours or of the book's ``mx.model`` code.

    Lines that do not match (a truncated last line, other messages) are skipped; an epoch
    or batch number no run reaches is a :class:`LogReadError`.
    """
    path = Path(path)
    name = LOG_NAME.search(path.name)
    start_epoch = _count(name.group(1), MAX_EPOCH, "start epoch", path) if name else 0
    started_at = None
    epochs: dict[int, EpochRecord] = {}
    batches: list[tuple[int, int, float, dict[str, float]]] = []

    def epoch(text: str) -> int:
        return _count(text, MAX_EPOCH, "epoch", path, number)

    for number, line in _lines(path):
        if (match := _EPOCH_METRIC.search(line)) is not None:
            record = epochs.setdefault(epoch(match.group(1)), EpochRecord())
            target = record.train if match.group(2) == "Train" else record.val
            target[match.group(3)] = _float(match.group(4))
        elif (match := _BATCH.search(line)) is not None:
            metrics = {key: _float(value) for key, value in _PAIR.findall(match.group(4))}
            batches.append((epoch(match.group(1)),
                            _count(match.group(2), MAX_BATCH, "batch", path, number),
                            _float(match.group(3)), metrics))
        elif (match := TIME_COST_LINE.search(line)) is not None:
            epochs.setdefault(epoch(match.group(1)), EpochRecord()).time = _float(match.group(2))
        elif (match := _LR.search(line)) is not None:
            epochs.setdefault(epoch(match.group(1)), EpochRecord()).lr = _float(match.group(2))
        elif (match := _START.search(line)) is not None:
            start_epoch, started_at = epoch(match.group(1)), match.group(2)
    return ParsedLog(path=path, start_epoch=start_epoch, started_at=started_at,
                     epochs=epochs, batches=batches)


@dataclass
class Restart:
    epoch: int
    lr: float | None
    path: Path


@dataclass
class RunHistory:
    """A whole run over its restarts: one record per epoch, and where each start began."""

    epochs: dict[int, EpochRecord]
    restarts: list[Restart]


def _repeat(log: ParsedLog) -> int:
    match = LOG_NAME.search(log.path.name)
    return int(match.group(2) or 1) if match else 0


def _order(logs: list[ParsedLog]) -> list[ParsedLog]:
    if all(log.started_at for log in logs):
        return sorted(logs, key=lambda log: (log.started_at, _repeat(log)))
    # The book's logs carry no start time: order by start epoch, then repeat number.
    return sorted(logs, key=lambda log: (log.start_epoch, _repeat(log)))


def stitch_logs(paths: list[str | Path]) -> RunHistory:
    """Stitch the logs of one run: a later start replaces every epoch from its start on.

    A log with an epoch before its own start (misnamed, or two logs joined) would replace
    another start's epoch: it is a :class:`LogReadError`.
    """
    epochs: dict[int, EpochRecord] = {}
    restarts: list[Restart] = []
    for log in _order([parse_log(p) for p in paths]):
        early = min(log.epochs, default=log.start_epoch)
        if early < log.start_epoch:
            raise LogReadError(log.path, f"epoch {early} comes before the log's start epoch "
                                         f"{log.start_epoch} (its name or its Start line)")
        for epoch in [e for e in epochs if e >= log.start_epoch]:
            del epochs[epoch]
        epochs.update(log.epochs)
        first = log.epochs.get(log.start_epoch)
        restarts.append(Restart(log.start_epoch, first.lr if first else None, log.path))
    return RunHistory(epochs=dict(sorted(epochs.items())), restarts=restarts)


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    return value


def append_metrics(path: str | Path, record: dict[str, Any]) -> None:
    """Append one epoch's JSON line, flushed to disk before training goes on.

    A line that cannot be written is cut off again (:class:`LogWriteError`); a last line
    that a killed process left unfinished is ended first, so it spoils no other record.
    """
    line = (json.dumps(_json_safe(record), sort_keys=True) + "\n").encode("utf-8")
    try:
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
    except OSError as exc:
        raise LogWriteError(path, exc) from None
    size = None
    try:
        size = os.fstat(descriptor).st_size
        if size and os.pread(descriptor, 1, size - 1) != b"\n":
            line = b"\n" + line
        write_all(descriptor, line)
        os.fsync(descriptor)
    except OSError as exc:
        if size is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(descriptor, size)
        raise LogWriteError(path, exc) from None
    finally:
        os.close(descriptor)


def _whole(value: Any, most: int = MAX_EPOCH) -> bool:
    return type(value) is int and 0 <= value <= most


def _record_problem(record: Any) -> str | None:
    """What makes a decoded line no record :func:`append_metrics` writes, or None (fields a
    later version adds pass unchecked)."""
    if not isinstance(record, dict):
        return f"{reprlib.repr(record)} is not an epoch's record (a JSON object)"
    epoch = record.get("epoch")
    if not _whole(epoch):
        return f"epoch {reprlib.repr(epoch)} is not an epoch number up to {MAX_EPOCH:,}"
    if not _whole(start := record.get("start_epoch", epoch), epoch):
        return f"start_epoch {reprlib.repr(start)} is not an epoch up to the record's {epoch}"
    for name in ("num_update", "skipped_steps"):
        if record.get(name) is not None and not _whole(record[name], 2**63):
            return f"{name} {reprlib.repr(record[name])} is not a count"
    for name in ("lr", "time", "samples_per_sec"):
        if record.get(name) is not None and not finite_number(record[name]):
            return f"{name} {reprlib.repr(record[name])} is not a finite number"
    for name in ("train", "val"):
        metrics = record.get(name)
        if metrics is not None and not (isinstance(metrics, dict) and all(
                value is None or finite_number(value) for value in metrics.values())):
            return f"{name} {reprlib.repr(metrics)} is not a set of named numbers"
    if not isinstance(record.get("run"), (str, type(None))):
        return f"run {reprlib.repr(record['run'])} is not a start's time stamp"
    return None


def _stitch_metrics(path: str | Path) -> tuple[dict[int, dict[str, Any]], list[Restart]]:
    """The records by epoch, stitched over restarts, and where each start began."""
    path = Path(path)
    by_epoch: dict[int, dict[str, Any]] = {}
    restarts: list[Restart] = []
    current_run = None
    # JSON shows a cut of its own: a record cut anywhere but after its last brace fails.
    for number, line in _lines(path, whole=False):
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):
            continue  # a line cut short, and the resumed run's line after it
        problem = _record_problem(record)
        if problem is not None:
            raise LogReadError(path, f"{problem}; the file was edited or is damaged", number)
        epoch, run = record["epoch"], record.get("run")
        if run != current_run or not restarts:
            # A new start abandons whatever the run had from its start epoch on.
            start = record.get("start_epoch", epoch)
            for stale in [e for e in by_epoch if e >= start]:
                del by_epoch[stale]
            restarts.append(Restart(start, record.get("lr") if epoch == start else None, path))
            current_run = run
        by_epoch[epoch] = record
    return dict(sorted(by_epoch.items())), restarts


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The JSONL records of a run, one per epoch, stitched over restarts like the logs.

    Records carry ``run`` (the start's time stamp) and ``start_epoch``; a line that is not
    JSON (a crash mid-write) is ignored, a record of JSON with a field no run writes is a
    :class:`LogReadError`.
    """
    return list(_stitch_metrics(path)[0].values())


def metrics_history(path: str | Path) -> RunHistory:
    """The run as its metrics file records it (what the plots draw when the logs are gone);
    values the file holds as null (NaN or infinite when written) are NaN."""
    records, restarts = _stitch_metrics(path)

    def numbers(metrics: dict[str, Any] | None) -> dict[str, float]:
        return {name: math.nan if value is None else float(value)
                for name, value in (metrics or {}).items()}

    epochs = {epoch: EpochRecord(numbers(record.get("train")), numbers(record.get("val")),
                                 record.get("time"), record.get("lr"))
              for epoch, record in records.items()}
    return RunHistory(epochs=epochs, restarts=restarts)
