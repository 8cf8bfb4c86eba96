"""The run report: ``report.py --checkpoints DIR --prefix NAME`` writes ``DIR/NAME-report.html``.

One self-contained page (every figure embedded as a PNG data URI; the PNGs are also written
beside it) that a person can read without the training folder:

- the results: final and best checkpoint on validation (best chosen on validation only),
  their test figures where ``test_*.py`` saved them (``NAME-%04d-test.json``), and a row
  per published number of the experiment (:mod:`pyimagesearch.reporting.published`);
- the curves of the whole run, restarts stitched (``pyimagesearch.reporting.plots``), and the
  learning rate per epoch;
- a table per epoch: learning rate, train and validation figures, wall time, speed;
- the health monitor's checks and warnings (``pyimagesearch.training.health``) and the
  plateau detector's warnings (``pyimagesearch.training.plateau``);
- the dataset manifest's summary and the label order, and the effective config (the
  newest checkpoint's snapshot).

Every number comes from the run's own files: checkpoint manifests, logs (parsed by
``pyimagesearch.run.logs``), ``NAME-metrics.jsonl``, evaluation JSONs.
"""

from __future__ import annotations

from pathlib import Path

from pyimagesearch.files import atomic_write_text
from pyimagesearch.reporting.figures import write_figures
from pyimagesearch.reporting.page import render
from pyimagesearch.reporting.run_data import RunData, collect
from pyimagesearch.run.paths import report_path


def write_report(checkpoints: str | Path, prefix: str, output: str | Path | None = None,
                 config: str | None = None, override: bool = False) -> tuple[Path, RunData]:
    """Write the PNGs and the page (``DIR/NAME-report.html`` by default); return its path."""
    data = collect(checkpoints, prefix, config, override)
    output = Path(output) if output else report_path(checkpoints, prefix)
    output.parent.mkdir(parents=True, exist_ok=True)
    figures = write_figures(data, output.parent)
    atomic_write_text(output, render(data, figures))
    return output, data
