"""The run report as one self-contained HTML page: the sections below fill the skeleton, style
and navigation of ``templates/report.html`` (a :class:`string.Template`) from a
:class:`RunData`, every value HTML-escaped."""

from __future__ import annotations

import base64
import html
import json
from datetime import datetime
from pathlib import Path
from string import Template
from typing import Any

from pyimagesearch.reporting.run_data import RunData, finite
from pyimagesearch.scoring import LOSS, RANK1, RANK5

TEMPLATE = Path(__file__).with_name("templates") / "report.html"
SHOWN_WARNINGS = 10  # the first and last this many; the rest folded away


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def percent(value: Any) -> str:
    return f"{100 * value:.2f}%" if finite(value) else "-"


def _num(value: Any, digits: int = 4) -> str:
    return f"{value:.{digits}f}" if finite(value) else "-"


def _seconds(value: Any) -> str:
    if not finite(value):
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
    total = sum(r.time for r in data.history.epochs.values() if finite(r.time))
    cards = [
        _card("final validation rank-1",
              f'<span id="final-val-rank1">{percent(final.val.get(RANK1))}</span>',
              f"checkpoint {final.epoch}; rank-5 "
              f'<span id="final-val-rank5">{percent(final.val.get(RANK5))}</span>'),
        _card("best validation rank-1", f'<span id="best-val-rank1">'
              f"{percent(best.val.get(RANK1)) if best else '-'}</span>",
              f"checkpoint {best.epoch}; rank-5 {percent(best.val.get(RANK5))}" if best else ""),
    ]
    test = final.evaluations.get("test")
    if test is not None:
        cards.append(_card("final test rank-1", f'<span id="final-test-rank1">'
                           f"{percent(test.get(RANK1))}</span>",
                           f"rank-5 {percent(test.get(RANK5))}, {test.get('images', '?')} images"))
    cards.append(_card("wall time", _seconds(total),
                       f"{len(data.history.epochs)} epochs logged, "
                       f"{len(data.history.restarts)} start(s)"))
    rows = []
    for label, figures in (("final", final), ("best on validation", best)):
        if figures is None:
            continue
        row = [label, str(figures.epoch), percent(figures.val.get(RANK1)),
               percent(figures.val.get(RANK5)), _num(figures.val.get(LOSS))]
        for kind in ("test", "test 10-crop"):
            result = figures.evaluations.get(kind)
            row += ([percent(result.get(RANK1)), percent(result.get(RANK5))] if result
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
                     percent(source.get(RANK1)), percent(source.get(RANK5))])
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
                     f"{record.lr:g}" if finite(record.lr) else "-",
                     percent(record.train.get(RANK1)), _num(record.train.get(LOSS)),
                     percent(record.val.get(RANK1)), percent(record.val.get(RANK5)),
                     _num(record.val.get(LOSS)), _seconds(record.time),
                     f"{speeds[epoch]:.1f}" if finite(speeds.get(epoch)) else "-",
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
        header = ["epoch", "batch", "warning"]
        if len(rows) > 2 * SHOWN_WARNINGS:
            hidden = rows[SHOWN_WARNINGS:-SHOWN_WARNINGS]
            parts += [_table(header, rows[:SHOWN_WARNINGS], "warnings"),
                      f"<details><summary>{len(hidden)} more warnings</summary>",
                      _table(header, hidden, "warnings"), "</details>"]
            rows = rows[-SHOWN_WARNINGS:]
        parts.append(_table(header, rows, "warnings"))
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
        return "".join(parts) + '<p class="ok">No plateau warnings.</p>'
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
        return parts[0] + f"<p>No dataset manifest: {_e(data.dataset_origin)}.</p>"
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
    extra = [[_e(key), _e(json.dumps(final[key]))]
             for key in ("seed", "contexts", "lr_overrides") if key in final]
    return (f'<h2 id="config">Effective config</h2><p>From {_e(data.config_origin)}.</p>'
            + (_table(None, extra, "facts") if extra else "")
            + _table(["field", "value"], rows, "config"))


def render(data: RunData, figures: dict[str, Path]) -> str:
    """The report page as one HTML string."""
    newest = f"checkpoint {data.final.epoch}" if data.final else "no checkpoint"
    sections = [
        _results_section(data), _comparison_section(data), _curves_section(figures),
        _epochs_section(data), _health_section(data, figures), _dataset_section(data),
        _config_section(data),
    ]
    return Template(TEMPLATE.read_text(encoding="utf-8")).substitute(
        prefix=_e(data.prefix), model=_e(data.model),
        folder=_e(data.checkpoints.resolve()), newest=_e(newest),
        generated=_e(datetime.now().astimezone().isoformat(timespec="seconds")),
        sections="".join(sections))
