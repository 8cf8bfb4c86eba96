"""A run's figures as PNG files: what ``plot_log.py`` draws and the run report embeds.

The curves of a whole run with its restarts stitched and marked, several runs of one setting
overlaid (``train_cifar.py --runs R``), and the report's learning rate and health checks.
Why they are drawn so: docs/design_reporting.md, "Curves".
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on training servers or in CI
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import MaxNLocator

from pyimagesearch.reporting.run_data import RunData, finite
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


def _write(figure: plt.Figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def _save(figure: plt.Figure, axes: plt.Axes, label: str, title: str, path: Path) -> Path:
    """Label, title and write one curve figure."""
    axes.set_xlabel("epoch")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_ylabel(label)
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(loc="best")
    return _write(figure, path)


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
    """Per column: (mean, low, high) of the runs that have a finite value; ``band`` is
    "minmax" or "std" (mean +- sample standard deviation, zero width for a single run)."""
    if band not in BANDS:
        raise ValueError(f"band must be one of {BANDS}, got {band!r}")
    table = np.where(np.isfinite(table), table, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a column without values gives NaN
        mean = np.nanmean(table, axis=0)
        if band == "minmax":
            return mean, np.nanmin(table, axis=0), np.nanmax(table, axis=0)
        std = np.where(np.isfinite(table).sum(axis=0) > 1, np.nanstd(table, axis=0, ddof=1), 0.0)
    return mean, mean - std, mean + std


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


def _lr_figure(data: RunData, path: Path) -> Path | None:
    points = [(e, r.lr) for e, r in data.history.epochs.items() if finite(r.lr)]
    if not points:
        return None
    figure, axes = plt.subplots(figsize=(8, 3.2))
    axes.step([e for e, _ in points], [lr for _, lr in points], where="post", marker="o",
              markersize=3, color="tab:purple")
    if all(lr > 0 for _, lr in points):
        axes.set_yscale("log")
    for restart in data.history.restarts[1:]:
        axes.axvline(restart.epoch, color="grey", linestyle=":", linewidth=1)
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.set_xlabel("epoch")
    axes.set_ylabel("learning rate")
    axes.set_title(f"{data.prefix}: learning rate at the start of each epoch")
    axes.grid(alpha=0.3)
    return _write(figure, path)


def _health_figure(data: RunData, path: Path) -> Path | None:
    if not data.health_checks:
        return None
    x = list(range(len(data.health_checks)))
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(8, 4.6), sharex=True)
    top.plot(x, [c.zero_fraction for c in data.health_checks], color="tab:red", marker=".")
    top.set_ylabel("zero fraction")
    top.set_ylim(-0.02, 1.02)
    bottom.plot(x, [c.grad_norm for c in data.health_checks], color="tab:blue", marker=".")
    bottom.set_ylabel("gradient norm")
    ticks = x[:: max(1, len(x) // 8)]
    bottom.set_xticks(ticks)
    bottom.set_xticklabels([f"{data.health_checks[i].epoch}:{data.health_checks[i].batch}"
                            for i in ticks], fontsize=8)
    bottom.set_xlabel("epoch:batch of the check")
    for axes in (top, bottom):
        axes.grid(alpha=0.3)
    top.set_title(f"{data.prefix}: health checks (last feature map, gradients)")
    return _write(figure, path)


def write_figures(data: RunData, folder: Path) -> dict[str, Path]:
    """The run report's PNGs, written into ``folder``: name -> path."""
    figures: dict[str, Path] = {}
    if data.history.epochs:
        for path in plot_history(data.history, folder, data.prefix):
            figures[path.stem.rsplit("_", 1)[-1]] = path
    for name, draw in (("lr", _lr_figure), ("health", _health_figure)):
        path = draw(data, figure_path(folder, data.prefix, name))
        if path is not None:
            figures[name] = path
    return figures
