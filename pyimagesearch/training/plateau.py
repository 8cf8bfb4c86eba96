"""The plateau detector: warns, with the resume command ready to run, when validation has
not improved by ``min_delta`` for ``patience`` epochs at one learning rate. Its log line
is written and parsed here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyimagesearch.scoring import LOSS, RANK1, RANK5
from pyimagesearch.settings import Settings
from pyimagesearch.settings.declared import PlateauSettings, describe_watcher

# The metric names of PLATEAU, and the keys the loop's validation metrics use.
METRIC_KEYS = {"rank1": RANK1, "rank5": RANK5, "loss": LOSS}
METRIC_NAMES = {"rank1": "rank-1", "rank5": "rank-5", "loss": "loss"}

# (epoch to resume from, learning rate) -> the command that does it.
ResumeCommand = Callable[[int, float], str]


def plateau_settings(config: Settings) -> PlateauSettings | None:
    """The config's ``PLATEAU`` over the defaults; ``None`` when ``PLATEAU = None``."""
    return None if config.PLATEAU is None else PlateauSettings(**config.PLATEAU)


# Starts the line describe_plateau writes; the run report finds the line by it.
DETECTOR_LINE = "Plateau detector:"


def describe_plateau(settings: PlateauSettings | None) -> str:
    return describe_watcher(DETECTOR_LINE, "PLATEAU", settings)


def default_resume_command(epoch: int, lr: float) -> str:
    return f"--start-epoch {epoch} --lr {lr:g}"


class PlateauDetector:
    """Per-epoch watcher of the validation metric; ``observe`` returns a warning or None."""

    def __init__(self, settings: PlateauSettings | None = None,
                 resume_command: ResumeCommand | None = None) -> None:
        self.settings = settings or PlateauSettings()
        self.resume_command = resume_command or default_resume_command
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.lr: float | None = None
        self.rate_since: int | None = None  # first epoch at the current learning rate

    def _improves(self, value: float) -> bool:
        if self.best is None:
            return True
        if self.settings.metric == "loss":
            return value < self.best - self.settings.min_delta
        return value > self.best + self.settings.min_delta

    def observe(self, epoch: int, val_metrics: dict[str, float], lr: float) -> str | None:
        """Take epoch ``epoch``'s validation metrics (trained at ``lr``); the warning's
        details when the metric has stalled for ``patience`` epochs (or a multiple)."""
        value = val_metrics.get(METRIC_KEYS[self.settings.metric])
        if value is None or not math.isfinite(value):
            return None
        if self.lr is None or not math.isclose(lr, self.lr, rel_tol=1e-6):
            self.lr, self.rate_since = lr, epoch
        if self._improves(value):
            self.best, self.best_epoch = value, epoch
            return None
        # Epochs without improvement, counted from the best or from the rate change.
        stale = epoch - max(self.best_epoch or 0, (self.rate_since or 0) - 1)
        if stale < self.settings.patience or stale % self.settings.patience:
            return None
        name = METRIC_NAMES[self.settings.metric]
        show = (lambda v: f"{v:.4f}") if self.settings.metric == "loss" \
            else (lambda v: f"{100 * v:.2f}%")
        command = self.resume_command(epoch + 1, lr / 10)
        return (f"validation {name} {show(value)} has not improved by "
                f"{self.settings.min_delta:g} on the best, {show(self.best)} at epoch "
                f"{self.best_epoch}, for {stale} epochs at learning rate {lr:g}; the book's "
                f"remedy: stop, lower the rate 10x and resume from checkpoint {epoch + 1}: "
                f"{command}")

    def replay(self, records: Iterable[dict[str, Any]]) -> None:
        """Take earlier epochs (``NAME-metrics.jsonl`` records) silently, in epoch order;
        a later record of an epoch (a restart) replaces an earlier one."""
        latest: dict[int, dict[str, Any]] = {}
        for record in records:
            if isinstance(record.get("val"), dict) and record.get("lr") is not None:
                latest[int(record["epoch"])] = record
        for epoch in sorted(latest):
            self.observe(epoch, latest[epoch]["val"], float(latest[epoch]["lr"]))


class PlateauObserver:
    """An ``EpochObserver`` (``loop.py``): logs the detector's warnings after each epoch."""

    def __init__(self, detector: PlateauDetector) -> None:
        self.detector = detector

    def end_of_epoch(self, record: dict[str, Any], log: Any) -> None:
        details = self.detector.observe(int(record["epoch"]), record["val"], float(record["lr"]))
        if details is not None:
            log.warning(format_plateau_line(int(record["epoch"]), details))


# --- the log line, both ways ---------------------------------------------------------------
_PLATEAU = re.compile(r"Epoch\[(\d+)\]\tWarning: plateau: (.*)$")


def format_plateau_line(epoch: int, details: str) -> str:
    return f"Epoch[{epoch}]\tWarning: plateau: {details}"


@dataclass(frozen=True)
class PlateauWarning:
    epoch: int
    details: str


def parse_plateau_lines(path: str | Path) -> list[PlateauWarning]:
    """The plateau warnings of one ``training_*.log``, in file order."""
    warnings = []
    with open(path, errors="replace") as handle:
        for line in handle.read().splitlines():
            if (match := _PLATEAU.search(line)) is not None:
                warnings.append(PlateauWarning(int(match.group(1)), match.group(2)))
    return warnings
