"""The run report's PNGs: the stitched curves (:mod:`pyimagesearch.reporting.plots`), the learning
rate per epoch and the health checks."""

from __future__ import annotations

from pathlib import Path

from matplotlib.ticker import MaxNLocator

from pyimagesearch.reporting.plots import plot_history, plt
from pyimagesearch.reporting.run_data import RunData, finite
from pyimagesearch.run.paths import figure_path


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
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


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
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def write_figures(data: RunData, folder: Path) -> dict[str, Path]:
    """The report's PNGs, written into ``folder``: name -> path."""
    figures: dict[str, Path] = {}
    if data.history.epochs:
        for path in plot_history(data.history, folder, data.prefix):
            figures[path.stem.rsplit("_", 1)[-1]] = path
    lr = _lr_figure(data, figure_path(folder, data.prefix, "lr"))
    if lr is not None:
        figures["lr"] = lr
    health = _health_figure(data, figure_path(folder, data.prefix, "health"))
    if health is not None:
        figures["health"] = health
    return figures
