"""The run report: ``report.py --checkpoints DIR --prefix NAME`` writes ``DIR/NAME-report.html``,
one self-contained page (its PNGs embedded, and written beside it) from the run's own files.
What it shows: docs/using_the_model.md, "3. The run report".
"""

from __future__ import annotations

from pathlib import Path

from pyimagesearch.files import atomic_write_text
from pyimagesearch.reporting.page import render
from pyimagesearch.reporting.plots import write_figures
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
