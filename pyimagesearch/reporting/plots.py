"""Curves of a whole run, restarts stitched: what ``plot_log.py`` draws.

Each start of a run leaves its own ``training_<epoch>.log``; ``stitch_logs`` keeps, for
every epoch, the values of the last start that trained it. Restarts are marked with a
vertical line labelled with the learning rate they began with, which is how the book's
readers see where they dropped the rate by hand.

``plot_runs`` overlays several runs of one setting (``train_cifar.py --runs R``): each
run thin, their mean bold, and a band from the lowest to the highest run (or mean +- one
sample standard deviation), so the spread between runs is visible next to any
difference between settings.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on training servers or in CI
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

from pyimagesearch.run.logs import RunHistory
from pyimagesearch.run.paths import figure_path
from pyimagesearch.scoring import LOSS, RANK1, RANK5

CURVES = ((RANK1, "rank-1 accuracy", "rank1"), (RANK5, "rank-5 accuracy", "rank5"),
          (LOSS, "cross-entropy loss", "loss"))
# With error=True rank-1/rank-5 are drawn as error in percent, as the CIFAR papers plot them.
ERROR_LABELS = {RANK1: "rank-1 error (%)", RANK5: "rank-5 error (%)"}
BANDS = ("minmax", "std")


def _series(history: RunHistory, kind: str, name: str) -> tuple[list[int], list[float]]:
    """Values for every epoch from the first to the last; missing ones are NaN (gaps)."""
    if not history.epochs:
        return [], []
    epochs = list(range(min(history.epochs), max(history.epochs) + 1))
    values = []
    for epoch in epochs:
        record = history.epochs.get(epoch)
        source = (record.train if kind == "train" else record.val) if record else {}
        values.append(source.get(name, math.nan))
    return epochs, values


def _as_error(metric: str, values: list[float]) -> list[float]:
    return [100.0 * (1.0 - v) for v in values] if metric in ERROR_LABELS else values


def _save(figure: plt.Figure, axes: plt.Axes, label: str, title: str, path: Path) -> Path:
    """Label, title and write one curve figure."""
    axes.set_xlabel("epoch")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel(label)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(loc="best")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def plot_history(history: RunHistory, output: str | Path, title: str) -> list[Path]:
    """Write one PNG per quantity (rank-1, rank-5, loss) into ``output``; return the paths."""
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    written = []
    for metric, label, suffix in CURVES:
        figure, axes = plt.subplots(figsize=(8, 5))
        for kind, style in (("train", "-"), ("val", "--")):
            epochs, values = _series(history, kind, metric)
            axes.plot(epochs, values, style, marker="o", markersize=3,
                      label=f"{'train' if kind == 'train' else 'validation'} {label}")
        for restart in history.restarts[1:]:
            axes.axvline(restart.epoch, color="grey", linestyle=":", linewidth=1)
            text = f"restart @ {restart.epoch}"
            if restart.lr is not None:
                text += f"\nlr={restart.lr:g}"
            axes.annotate(text, (restart.epoch, 1.0), xycoords=("data", "axes fraction"),
                          xytext=(3, -4), textcoords="offset points", va="top", fontsize=8,
                          color="dimgrey")
        written.append(_save(figure, axes, label, f"{title}: {label}",
                             figure_path(output, title, suffix)))
    return written


def _aligned(histories: list[RunHistory], kind: str, metric: str,
             error: bool) -> tuple[np.ndarray, np.ndarray]:
    """(epochs, values[run, epoch]) over the union of the runs' epochs; NaN where a run
    has no value."""
    series = [_series(h, kind, metric) for h in histories]
    epochs = sorted({e for run_epochs, _ in series for e in run_epochs})
    table = np.full((len(series), len(epochs)), np.nan)
    position = {epoch: i for i, epoch in enumerate(epochs)}
    for row, (run_epochs, values) in enumerate(series):
        values = _as_error(metric, values) if error else values
        for epoch, value in zip(run_epochs, values):
            table[row, position[epoch]] = value
    return np.asarray(epochs), table


def band_limits(table: np.ndarray, band: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per column: (mean, low, high) of the runs that have a value; ``band`` is "minmax" or
    "std" (mean +- sample standard deviation, zero width for a single run)."""
    if band not in BANDS:
        raise ValueError(f"band must be one of {BANDS}, got {band!r}")
    present = np.isfinite(table)
    count = present.sum(axis=0)
    filled = np.where(present, table, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, filled.sum(axis=0) / np.maximum(count, 1), np.nan)
        if band == "minmax":
            low = np.where(count > 0, np.where(present, table, np.inf).min(axis=0), np.nan)
            high = np.where(count > 0, np.where(present, table, -np.inf).max(axis=0), np.nan)
        else:
            squares = np.where(present, (table - mean) ** 2, 0.0).sum(axis=0)
            std = np.where(count > 1, np.sqrt(squares / np.maximum(count - 1, 1)), 0.0)
            low, high = mean - std, mean + std
    return mean, low, high


def plot_runs(histories: list[RunHistory], output: str | Path, title: str,
              band: str = "minmax", error: bool = False) -> list[Path]:
    """Overlay runs of one setting, one PNG per quantity: each run thin, the mean of the
    runs bold, a band (``"minmax"`` or ``"std"``) around it; train dashed, validation
    solid. Files are ``<title>_runs_<rank1|rank5|loss>.png``."""
    if not histories:
        raise ValueError("no run to plot")
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    band_text = "min-max" if band == "minmax" else "±1 std"
    written = []
    for metric, label, suffix in CURVES:
        label = ERROR_LABELS.get(metric, label) if error else label
        figure, axes = plt.subplots(figsize=(8, 5))
        for kind, style, colour in (("train", "--", "tab:blue"), ("val", "-", "tab:red")):
            epochs, table = _aligned(histories, kind, metric, error)
            if not len(epochs):
                continue
            name = "train" if kind == "train" else "validation"
            for row in table:
                axes.plot(epochs, row, style, color=colour, alpha=0.3, linewidth=0.8)
            mean, low, high = band_limits(table, band)
            axes.fill_between(epochs, low, high, color=colour, alpha=0.15, linewidth=0,
                              label=f"{name} {band_text} of runs")
            axes.plot(epochs, mean, style, color=colour, linewidth=2,
                      label=f"{name} mean of {len(histories)} runs")
        written.append(_save(figure, axes, label, f"{title}: {label}, {len(histories)} runs",
                             figure_path(output, title, f"runs_{suffix}")))
    return written
