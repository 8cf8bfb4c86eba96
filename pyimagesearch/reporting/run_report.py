"""The run report: ``report.py --checkpoints DIR --prefix NAME`` writes ``DIR/NAME-report.html``.

One self-contained page (every figure embedded as a PNG data URI; the PNGs are also written
beside it) that a person can read without the training folder:

- the results: final and best checkpoint on validation (best chosen on validation only),
  their test figures where ``test_*.py`` saved them (``NAME-%04d-test.json``), and a row
  per published number of the experiment (:mod:`pyimagesearch.reporting.published`);
- the curves of the whole run, restarts stitched (``pyimagesearch.plots``), and the
  learning rate per epoch;
- a table per epoch: learning rate, train and validation figures, wall time, speed;
- the health monitor's checks and warnings (``pyimagesearch.training.health``) and the
  plateau detector's warnings (``pyimagesearch.training.plateau``);
- the dataset manifest's summary and the label order, and the effective config (the
  newest checkpoint's snapshot).

Every number comes from the run's own files: checkpoint manifests, logs (parsed by
``pyimagesearch.training.logs``), ``NAME-metrics.jsonl``, evaluation JSONs.
"""

from __future__ import annotations

import argparse
import base64
import html
import json
import math
import re
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from pyimagesearch.checkpoints import (
    CheckpointError,
    checkpoint_name,
    list_checkpoints,
    read_manifest,
    report_path,
)
from pyimagesearch.mxnet_checkpoints import mxnet_checkpoint_epochs
from pyimagesearch.reporting.published import Comparison, comparison
from pyimagesearch.scoring import LOSS, RANK1, RANK5
from pyimagesearch.training.health import DyingWarning, HealthCheck, parse_health_lines
from pyimagesearch.training.logs import (
    RunHistory,
    metrics_jsonl_path,
    read_metrics,
    run_logs,
    stitch_logs,
)
from pyimagesearch.training.plateau import PlateauWarning, parse_plateau_lines

EXIT_ERROR = 2
# The lines the training core writes (health.describe_health, plateau.describe_plateau)
# saying how the run is watched.
MONITOR_LINE = "Health monitor:"
PLATEAU_LINE = "Plateau detector:"
SHOWN_WARNINGS = 10  # the first and last this many; the rest folded away
_RESULT_FILE = re.compile(r"-(\d{4})-(test|val)(?:-(\d+)crop)?\.json$")


class ReportError(RuntimeError):
    """There is nothing to report on (no checkpoint and no log)."""


@dataclass
class CheckpointFigures:
    """One complete checkpoint: its manifest's figures and any saved evaluation of it."""

    epoch: int
    manifest: dict[str, Any]
    evaluations: dict[str, dict[str, Any]] = field(default_factory=dict)  # "test", "test 10-crop"

    @property
    def val(self) -> dict[str, float]:
        return self.manifest.get("metrics", {}).get("val", {})

    @property
    def train(self) -> dict[str, float]:
        return self.manifest.get("metrics", {}).get("train", {})


@dataclass
class RunData:
    """Everything the page shows, gathered from the run's files."""

    checkpoints: Path
    prefix: str
    checkpoints_found: list[CheckpointFigures]
    history: RunHistory
    config: dict[str, Any]
    config_origin: str
    dataset: dict[str, Any] | None
    dataset_origin: str
    health_checks: list[HealthCheck]
    health_warnings: list[DyingWarning]
    health_monitor: str
    metrics_records: list[dict[str, Any]]
    comparison: Comparison
    model: str
    model_params: dict[str, Any]
    plateau_warnings: list[PlateauWarning] = field(default_factory=list)
    plateau_detector: str = ""

    @property
    def final(self) -> CheckpointFigures | None:
        return self.checkpoints_found[-1] if self.checkpoints_found else None

    @property
    def best(self) -> CheckpointFigures | None:
        """Highest validation rank-1; ties go to the earlier checkpoint."""
        scored = [c for c in self.checkpoints_found if _finite(c.val.get(RANK1))]
        return max(scored, key=lambda c: (c.val[RANK1], -c.epoch)) if scored else None


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


# --- gathering -----------------------------------------------------------------------
def _evaluations(folder: Path, prefix: str) -> dict[int, dict[str, dict[str, Any]]]:
    """Saved ``test_*.py`` results per checkpoint epoch, keyed "test", "test 10-crop", "val"."""
    found: dict[int, dict[str, dict[str, Any]]] = {}
    for path in sorted(folder.glob(f"{prefix}-[0-9][0-9][0-9][0-9]-*.json")):
        match = _RESULT_FILE.search(path.name)
        if match is None or not path.name.startswith(f"{prefix}-"):
            continue
        try:
            result = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        key = match.group(2) + (f" {match.group(3)}-crop" if match.group(3) else "")
        result["file"] = path.name
        found.setdefault(int(match.group(1)), {})[key] = result
    return found


def _health(history: RunHistory) -> tuple[list[HealthCheck], list[DyingWarning]]:
    """Health lines of every start, minus those of epochs a later start trained again."""
    checks, warnings = [], []
    starts = [restart.epoch for restart in history.restarts]
    for i, restart in enumerate(history.restarts):
        limit = min(starts[i + 1:], default=math.inf)
        parsed = parse_health_lines(restart.path)
        checks += [c for c in parsed.checks if c.epoch < limit]
        warnings += [w for w in parsed.warnings if w.epoch < limit]
    key = lambda event: (event.epoch, event.batch)  # noqa: E731
    return sorted(checks, key=key), sorted(warnings, key=key)


def _plateaus(history: RunHistory) -> list[PlateauWarning]:
    """Plateau warnings of every start, minus those of epochs a later start trained again."""
    warnings = []
    starts = [restart.epoch for restart in history.restarts]
    for i, restart in enumerate(history.restarts):
        limit = min(starts[i + 1:], default=math.inf)
        warnings += [w for w in parse_plateau_lines(restart.path) if w.epoch < limit]
    return sorted(warnings, key=lambda warning: warning.epoch)


def _monitor_settings(history: RunHistory, prefix: str = MONITOR_LINE) -> str:
    """The newest start's line saying how the run was watched (health monitor, plateau)."""
    for restart in reversed(history.restarts):
        with open(restart.path, errors="replace") as handle:
            for line in handle:
                if line.startswith(prefix):
                    return f"{line.strip()} ({restart.path.name})"
    return ""


def _dataset(manifest: dict[str, Any], override: bool) -> tuple[dict[str, Any] | None, str]:
    """The dataset manifest the run recorded, if it is still the dataset the run trained on."""
    from pyimagesearch.data.dataset import (
        DatasetError,
        DatasetIdentity,
        identity_differences,
        recorded_identity,
    )
    from pyimagesearch.data.dataset import read_manifest as read_dataset_manifest

    path = manifest.get("dataset", {}).get("manifest")
    if not path:
        return None, "the checkpoint records no dataset manifest"
    if not Path(path).is_file():
        return None, f"{path} (recorded by the checkpoint) is no longer there"
    try:
        dataset = read_dataset_manifest(path)
    except DatasetError as exc:
        return None, str(exc)
    trained = recorded_identity(manifest)
    if trained is None or trained.digest == dataset["identity"]:
        return dataset, str(path)
    differences = "; ".join(identity_differences(trained, DatasetIdentity.of(dataset)))
    if not override:
        raise ReportError(f"{path} was rebuilt since the run trained on it ({differences}); "
                          f"the report would describe another dataset: pass --override to "
                          f"write it anyway")
    return dataset, f"{path} (rebuilt since the run trained on it: {differences})"


def collect(checkpoints: str | Path, prefix: str, config: str | None = None,
            override: bool = False) -> RunData:
    """Read the run's checkpoints, logs, metrics and evaluations."""
    folder = Path(checkpoints)
    evaluations = _evaluations(folder, prefix)
    # With the epochs MXNet's symbolic API wrote: their stand-in manifests hold no figures.
    epochs = sorted({*list_checkpoints(folder, prefix), *mxnet_checkpoint_epochs(folder, prefix)})
    found = [CheckpointFigures(epoch, read_manifest(folder, prefix, epoch, verify=False),
                               evaluations.get(epoch, {}))
             for epoch in epochs]
    logs = run_logs(folder)
    if not found and not logs:
        raise ReportError(f"no checkpoint of {prefix!r} and no training_*.log in {folder}")
    history = stitch_logs(logs) if logs else RunHistory(epochs={}, restarts=[])
    if found:
        newest = found[-1].manifest
        snapshot = newest.get("config", {})
        origin = f"{checkpoint_name(prefix, found[-1].epoch)}.json (the newest checkpoint)"
        dataset, dataset_origin = _dataset(newest, override)
    else:
        snapshot, origin = {}, "no checkpoint"
        dataset, dataset_origin = None, "no checkpoint"
    if config is not None and not snapshot:
        from pyimagesearch.config import load_config

        snapshot, origin = load_config(config).snapshot(), f"{config} (--config)"
    identity = found[-1].manifest.get("identity", {}) if found else {}
    model = str(identity.get("model", snapshot.get("MODEL", "?")))
    params = dict(identity.get("model_params") or snapshot.get("MODEL_PARAMS") or {})
    checks, warnings = _health(history)
    jsonl = metrics_jsonl_path(folder, prefix)
    records = read_metrics(jsonl) if jsonl.is_file() else []
    return RunData(folder, prefix, found, history, snapshot, origin, dataset, dataset_origin,
                   checks, warnings, _monitor_settings(history), records,
                   comparison(model, snapshot, params), model, params,
                   _plateaus(history), _monitor_settings(history, PLATEAU_LINE))


# --- figures -------------------------------------------------------------------------
def _lr_figure(data: RunData, path: Path) -> Path | None:
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    points = [(e, r.lr) for e, r in data.history.epochs.items() if _finite(r.lr)]
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
    import matplotlib.pyplot as plt

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
    from pyimagesearch.plots import plot_history

    figures: dict[str, Path] = {}
    if data.history.epochs:
        for path in plot_history(data.history, folder, data.prefix):
            figures[path.stem.rsplit("_", 1)[-1]] = path
    lr = _lr_figure(data, folder / f"{data.prefix}_lr.png")
    if lr is not None:
        figures["lr"] = lr
    health = _health_figure(data, folder / f"{data.prefix}_health.png")
    if health is not None:
        figures["health"] = health
    return figures


# --- the page ------------------------------------------------------------------------
def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _pct(value: Any) -> str:
    return f"{100 * value:.2f}%" if _finite(value) else "-"


def _num(value: Any, digits: int = 4) -> str:
    return f"{value:.{digits}f}" if _finite(value) else "-"


def _seconds(value: Any) -> str:
    if not _finite(value):
        return "-"
    if value < 120:
        return f"{value:.1f} s"
    if value < 7200:
        return f"{value / 60:.1f} min"
    return f"{value / 3600:.2f} h"


def _table(header: list[str] | None, rows: list[list[str]], css: str = "") -> str:
    head = ("<thead><tr>" + "".join(f"<th>{h}</th>" for h in header) + "</tr></thead>"
            if header else "")
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>"
                   for row in rows)
    return f'<table class="{css}">{head}<tbody>{body}</tbody></table>'


def _image(path: Path, alt: str, css: str = "") -> str:
    encoded = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure class="{css}"><img src="data:image/png;base64,{encoded}" '
            f'alt="{_e(alt)}"><figcaption>{_e(path.name)}</figcaption></figure>')


def _card(label: str, value: str, detail: str = "") -> str:
    return (f'<div class="card"><div class="label">{_e(label)}</div>'
            f'<div class="value">{value}</div><div class="detail">{detail}</div></div>')


def _results_section(data: RunData) -> str:
    final, best = data.final, data.best
    if final is None:
        return "<h2>Results</h2><p>No complete checkpoint yet.</p>"
    total = sum(r.time for r in data.history.epochs.values() if _finite(r.time))
    cards = [
        _card("final validation rank-1", f'<span id="final-val-rank1">{_pct(final.val.get(RANK1))}'
              f"</span>", f"checkpoint {final.epoch}; rank-5 "
              f'<span id="final-val-rank5">{_pct(final.val.get(RANK5))}</span>'),
        _card("best validation rank-1", f'<span id="best-val-rank1">'
              f"{_pct(best.val.get(RANK1)) if best else '-'}</span>",
              f"checkpoint {best.epoch}; rank-5 {_pct(best.val.get(RANK5))}" if best else ""),
    ]
    test = final.evaluations.get("test")
    if test is not None:
        cards.append(_card("final test rank-1", f'<span id="final-test-rank1">'
                           f"{_pct(test.get(RANK1))}</span>",
                           f"rank-5 {_pct(test.get(RANK5))}, {test.get('images', '?')} images"))
    cards.append(_card("wall time", _seconds(total),
                       f"{len(data.history.epochs)} epochs logged, "
                       f"{len(data.history.restarts)} start(s)"))
    rows = []
    for label, figures in (("final", final), ("best on validation", best)):
        if figures is None:
            continue
        row = [label, str(figures.epoch), _pct(figures.val.get(RANK1)),
               _pct(figures.val.get(RANK5)), _num(figures.val.get(LOSS))]
        for kind in ("test", "test 10-crop"):
            result = figures.evaluations.get(kind)
            row += ([_pct(result.get(RANK1)), _pct(result.get(RANK5))] if result
                    else ["-", "-"])
        rows.append(row)
    table = _table(["checkpoint", "epoch", "val rank-1", "val rank-5", "val loss",
                    "test rank-1", "test rank-5", "test 10-crop rank-1", "10-crop rank-5"],
                   rows, "results")
    note = ("<p class=\"note\">Best is chosen on validation rank-1 only; its test figures are "
            "shown for reference, never used to choose. Test figures appear once "
            "<code>test_*.py --epoch N</code> has saved <code>"
            f"{_e(data.prefix)}-%04d-test.json</code>.</p>")
    return ('<h2 id="results">Results</h2><div class="cards">' + "".join(cards) + "</div>"
            + table + note)


def _comparison_section(data: RunData) -> str:
    final, best = data.final, data.best
    rows = []
    for label, figures in (("this run, final", final), ("this run, best on validation", best)):
        if figures is None:
            continue
        test = figures.evaluations.get("test")
        source = test if test is not None else figures.val
        split = (f"test split ({test.get('images', '?')} images)" if test is not None
                 else "validation split (no test result saved)")
        rows.append([f"<b>{_e(label)}</b> (checkpoint {figures.epoch})", _e(split),
                     _pct(source.get(RANK1)), _pct(source.get(RANK5))])
    for published in data.comparison.rows:
        rows.append([_e(published.source), _e(published.protocol),
                     _e(published.rank1_text()), _e(published.rank5_text())])
    note = f'<p class="note">{_e(data.comparison.note)}</p>' if data.comparison.note else ""
    recipe = data.config.get("RECIPE") or {}
    recipe_text = (f"Recipe <code>{_e(recipe.get('name', '?'))}</code>: "
                   f"{_e(recipe.get('source', ''))}" if isinstance(recipe, dict) else "")
    return ('<h2 id="comparison">Against the published numbers</h2>'
            f"<p>Model <code>{_e(data.model)}</code> "
            f"<code>{_e(json.dumps(data.model_params, sort_keys=True))}</code>. "
            f"{recipe_text}</p>"
            + _table(["", "measured on", "rank-1", "rank-5"], rows, "comparison") + note)


def _curves_section(figures: dict[str, Path]) -> str:
    names = [("rank1", "rank-1 accuracy"), ("rank5", "rank-5 accuracy"), ("loss", "loss"),
             ("lr", "learning rate")]
    shown = [_image(figures[key], alt) for key, alt in names if key in figures]
    if not shown:
        return '<h2 id="curves">Curves</h2><p>No training log found.</p>'
    return ('<h2 id="curves">Curves</h2><p class="note">Restarts stitched: a later start '
            "replaces every epoch from its start on; dotted lines mark restarts, labelled "
            'with the learning rate they began with.</p><div class="grid">'
            + "".join(shown) + "</div>")


def _epochs_section(data: RunData) -> str:
    speeds = {int(r["epoch"]): r.get("samples_per_sec") for r in data.metrics_records}
    skipped = {int(r["epoch"]): r.get("skipped_steps") for r in data.metrics_records}
    rows = []
    for epoch, record in data.history.epochs.items():
        rows.append([str(epoch), str(epoch + 1),
                     f"{record.lr:g}" if _finite(record.lr) else "-",
                     _pct(record.train.get(RANK1)), _num(record.train.get(LOSS)),
                     _pct(record.val.get(RANK1)), _pct(record.val.get(RANK5)),
                     _num(record.val.get(LOSS)), _seconds(record.time),
                     f"{speeds[epoch]:.1f}" if _finite(speeds.get(epoch)) else "-",
                     str(skipped.get(epoch, "-"))])
    if not rows:
        return ""
    starts = "; ".join(f"epoch {r.epoch} ({_e(r.path.name)}"
                       + (f", lr {r.lr:g}" if r.lr is not None else "") + ")"
                       for r in data.history.restarts)
    return ('<h2 id="epochs">Epoch by epoch</h2>'
            f"<p>Starts: {starts}.</p>"
            + _table(["epoch", "checkpoint", "lr", "train rank-1", "train loss", "val rank-1",
                      "val rank-5", "val loss", "wall time", "images/s", "skipped steps"],
                     rows, "epochs"))


def _health_section(data: RunData, figures: dict[str, Path]) -> str:
    parts = ['<h2 id="health">Health monitor</h2>']
    if data.health_monitor:
        parts.append(f'<p class="note">{_e(data.health_monitor)}</p>')
    if not data.health_checks and not data.health_warnings:
        parts.append("<p>No health check in the logs: none was due yet (see the interval "
                     "above), the config turned the monitor off (<code>HEALTH = None</code>), "
                     "or the run predates it.</p>")
        return "".join(parts) + _plateau_part(data)
    last = data.health_checks[-1] if data.health_checks else None
    summary = f"{len(data.health_checks)} checks, {len(data.health_warnings)} warning(s)."
    if last is not None:
        summary += (f" Last check (epoch {last.epoch}, batch {last.batch}): loss "
                    f"{last.loss:.4f}, gradient norm {last.grad_norm:.4g}, zero fraction "
                    f"{last.zero_fraction:.3f}.")
    parts.append(f"<p>{_e(summary)}</p>")
    if data.health_warnings:
        rows = [[str(w.epoch), str(w.batch), _e(w.details)] for w in data.health_warnings]
        first = data.health_warnings[0]
        parts.append(f'<p class="warning">The network was reported dying, first at epoch '
                     f"{first.epoch}, batch {first.batch}:</p>")
        if len(rows) > 2 * SHOWN_WARNINGS:
            hidden = rows[SHOWN_WARNINGS:-SHOWN_WARNINGS]
            parts.append(_table(["epoch", "batch", "warning"], rows[:SHOWN_WARNINGS],
                                "warnings")
                         + f"<details><summary>{len(hidden)} more warnings</summary>"
                         + _table(["epoch", "batch", "warning"], hidden, "warnings")
                         + "</details>"
                         + _table(["epoch", "batch", "warning"], rows[-SHOWN_WARNINGS:],
                                  "warnings"))
        else:
            parts.append(_table(["epoch", "batch", "warning"], rows, "warnings"))
    else:
        parts.append('<p class="ok">No dying warnings.</p>')
    if "health" in figures:
        parts.append(_image(figures["health"], "health checks", "single"))
    return "".join(parts) + _plateau_part(data)


def _plateau_part(data: RunData) -> str:
    """The plateau detector's settings and warnings: what the zero-fraction cannot see."""
    parts = ['<h3 id="plateau">Plateau detector</h3>']
    if data.plateau_detector:
        parts.append(f'<p class="note">{_e(data.plateau_detector)}</p>')
    if not data.plateau_warnings:
        parts.append('<p class="ok">No plateau warnings.</p>')
        return "".join(parts)
    first = data.plateau_warnings[0]
    parts.append(f'<p class="warning">Validation stopped improving, first reported at epoch '
                 f"{first.epoch}:</p>")
    rows = [[str(w.epoch), _e(w.details)] for w in data.plateau_warnings]
    parts.append(_table(["epoch", "warning"], rows, "warnings"))
    return "".join(parts)


def _dataset_section(data: RunData) -> str:
    parts = ['<h2 id="dataset">Dataset</h2>']
    manifest = data.dataset
    if manifest is None:
        parts.append(f"<p>No dataset manifest: {_e(data.dataset_origin)}.</p>")
        return "".join(parts)
    mean = manifest.get("mean", {})
    facts = [("manifest", data.dataset_origin), ("built", manifest.get("created", "?")),
             ("config", manifest.get("config", "?")),
             ("label order", manifest.get("label_order", "?")),
             ("classes", manifest.get("num_classes", len(manifest.get("classes", [])))),
             ("stored shorter side", manifest.get("resize", "?")),
             ("mean (R, G, B)", ", ".join(f"{mean.get(c, float('nan')):.2f}" for c in "RGB")
              if mean else "-")]
    if manifest.get("mean_image_file"):
        facts.append(("per-pixel mean image", manifest["mean_image_file"]))
    parts.append(_table(None, [[_e(k), _e(v)] for k, v in facts], "facts"))
    rows, skipped_rows = [], []
    for split in ("train", "val", "test"):
        entry = manifest.get("splits", {}).get(split)
        if entry is None:
            continue
        skipped = entry.get("skipped", [])
        rows.append([split, str(entry.get("listed", "?")), str(entry.get("written", "?")),
                     str(len(skipped))])
        skipped_rows += [[split, _e(s.get("path", "?")), _e(s.get("reason", "?"))]
                         for s in skipped]
    parts.append(_table(["split", "listed", "written", "skipped"], rows, "splits"))
    if skipped_rows:
        shown = skipped_rows[:50]
        more = (f"<p>... and {len(skipped_rows) - 50} more in the manifest.</p>"
                if len(skipped_rows) > 50 else "")
        parts.append("<details open><summary>Skipped files</summary>"
                     + _table(["split", "path", "reason"], shown, "skipped") + more
                     + "</details>")
    classes = sorted(manifest.get("classes", []), key=lambda c: int(c.get("label", 0)))
    if classes:
        rows = [[str(c.get("label")), _e(c.get("wnid", "")), _e(c.get("name", ""))]
                for c in classes]
        parts.append(f"<details><summary>Label order: {len(classes)} classes "
                     f"({_e(manifest.get('label_order', '?'))})</summary>"
                     + _table(["label", "wnid", "name"], rows, "classes") + "</details>")
    return "".join(parts)


def _config_section(data: RunData) -> str:
    rows = [[f"<code>{_e(key)}</code>",
             _e(json.dumps(value, sort_keys=True) if isinstance(value, (dict, list))
                else value)]
            for key, value in sorted(data.config.items())]
    final = data.final.manifest if data.final else {}
    extra = []
    for key in ("seed", "contexts", "lr_overrides"):
        if key in final:
            extra.append([_e(key), _e(json.dumps(final[key]))])
    return (f'<h2 id="config">Effective config</h2><p>From {_e(data.config_origin)}.</p>'
            + (_table(None, extra, "facts") if extra else "")
            + _table(["field", "value"], rows, "config"))


_CSS = """
body { font-family: -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       margin: 0 auto; max-width: 1200px; padding: 16px 28px 48px; color: #1d2330;
       background: #fafbfc; font-size: 14px; line-height: 1.45; }
h1 { font-size: 24px; margin-bottom: 2px; }
h2 { font-size: 18px; margin-top: 32px; border-bottom: 1px solid #d8dde6; padding-bottom: 4px; }
.subtitle { color: #5a6475; margin-top: 0; }
nav a { margin-right: 14px; color: #2856b6; text-decoration: none; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 12px 0 16px; }
.card { background: white; border: 1px solid #d8dde6; border-radius: 8px; padding: 10px 16px;
        min-width: 200px; }
.card .label { color: #5a6475; font-size: 12px; text-transform: uppercase;
               letter-spacing: 0.04em; }
.card .value { font-size: 26px; font-weight: 600; }
.card .detail { color: #5a6475; font-size: 12px; }
table { border-collapse: collapse; margin: 8px 0 12px; background: white; }
th, td { border: 1px solid #d8dde6; padding: 4px 10px; text-align: left; vertical-align: top; }
th { background: #eef1f6; font-weight: 600; }
table.epochs td, table.results td, table.comparison td:nth-child(n+3) {
    font-variant-numeric: tabular-nums; }
table.config td:last-child { font-family: monospace; font-size: 12px; word-break: break-all; }
.grid { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 12px; }
figure { margin: 0; background: white; border: 1px solid #d8dde6; border-radius: 6px;
         padding: 6px; }
figure img { width: 100%; height: auto; display: block; }
figure.single { max-width: 800px; }
figcaption { color: #5a6475; font-size: 11px; text-align: center; }
.note { color: #5a6475; }
.warning { color: #a8261b; font-weight: 600; }
.ok { color: #1e7a34; }
code { background: #eef1f6; padding: 0 3px; border-radius: 3px; }
details summary { cursor: pointer; margin: 6px 0; font-weight: 600; }
"""


def render(data: RunData, figures: dict[str, Path]) -> str:
    """The report page as one HTML string."""
    generated = datetime.now().astimezone().isoformat(timespec="seconds")
    newest = f"checkpoint {data.final.epoch}" if data.final else "no checkpoint"
    sections = [
        _results_section(data), _comparison_section(data), _curves_section(figures),
        _epochs_section(data), _health_section(data, figures), _dataset_section(data),
        _config_section(data),
    ]
    nav = " ".join(f'<a href="#{anchor}">{label}</a>' for anchor, label in (
        ("results", "Results"), ("comparison", "Published"), ("curves", "Curves"),
        ("epochs", "Epochs"), ("health", "Health"), ("dataset", "Dataset"),
        ("config", "Config")))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>Run report: {_e(data.prefix)}</title><style>{_CSS}</style></head><body>"
            f"<h1>Run report: {_e(data.prefix)}</h1>"
            f'<p class="subtitle">{_e(data.model)} in {_e(data.checkpoints.resolve())}; '
            f"{_e(newest)}; generated {_e(generated)}</p><nav>{nav}</nav>"
            + "".join(sections) + "</body></html>\n")


def write_report(checkpoints: str | Path, prefix: str, output: str | Path | None = None,
                 config: str | None = None, override: bool = False) -> tuple[Path, RunData]:
    """Write the PNGs and the page (``DIR/NAME-report.html`` by default); return its path."""
    from pyimagesearch.utils.files import atomic_write_text

    data = collect(checkpoints, prefix, config, override)
    output = Path(output) if output else report_path(checkpoints, prefix)
    output.parent.mkdir(parents=True, exist_ok=True)
    figures = write_figures(data, output.parent)
    atomic_write_text(output, render(data, figures))
    return output, data


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Write one self-contained HTML report of a training run.")
    parser.add_argument("-c", "--checkpoints", required=True, help="the run's folder")
    parser.add_argument("-p", "--prefix", required=True, help="name prefix of the checkpoints")
    parser.add_argument("--config", default=None,
                        help="config module or .py path, used only when no checkpoint "
                             "records one")
    parser.add_argument("-o", "--output", default=None,
                        help="the HTML file (default DIR/NAME-report.html); the PNGs go "
                             "beside it")
    parser.add_argument("--override", action="store_true",
                        help="write the report even though the run's dataset was rebuilt "
                             "since (the differences are shown)")
    return parser


def report_main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        path, data = write_report(args.checkpoints, args.prefix, args.output, args.config,
                                  args.override)
    except (ReportError, CheckpointError) as exc:
        print(f"[ERROR] {exc}", file=sys.stderr)
        return EXIT_ERROR
    final = data.final
    if final is not None:
        print(f"[INFO] final checkpoint {final.epoch}: validation rank-1 "
              f"{_pct(final.val.get(RANK1))}, rank-5 {_pct(final.val.get(RANK5))}")
    if data.best is not None:
        print(f"[INFO] best on validation: checkpoint {data.best.epoch}, rank-1 "
              f"{_pct(data.best.val.get(RANK1))}")
    print(f"[INFO] wrote {path}")
    return 0
