"""Everything a run report shows, read from the run's own files: checkpoint manifests,
logs (parsed by :mod:`pyimagesearch.run.logs`, :mod:`pyimagesearch.training.health`
and :mod:`pyimagesearch.training.plateau`, the modules that write those lines),
``NAME-metrics.jsonl``, saved evaluations and the dataset manifest."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyimagesearch.config import load_config
from pyimagesearch.data.dataset import (
    DatasetError,
    DatasetIdentity,
    identity_differences,
    recorded_identity,
)
from pyimagesearch.data.dataset import read_manifest as read_dataset_manifest
from pyimagesearch.errors import ProjectError
from pyimagesearch.reporting.published import Comparison, comparison
from pyimagesearch.run.checkpoints import checkpoint_epochs, read_manifest
from pyimagesearch.run.logs import RunHistory, read_metrics, stitch_logs
from pyimagesearch.run.paths import checkpoint_name, metrics_jsonl_path, run_logs
from pyimagesearch.scoring import RANK1
from pyimagesearch.training.health import (
    MONITOR_LINE,
    DyingWarning,
    HealthCheck,
    parse_health_lines,
)
from pyimagesearch.training.plateau import DETECTOR_LINE, PlateauWarning, parse_plateau_lines

_RESULT_FILE = re.compile(r"-(\d{4})-(test|val)(?:-(\d+)crop)?\.json$")


class ReportError(ProjectError, RuntimeError):
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
        scored = [c for c in self.checkpoints_found if finite(c.val.get(RANK1))]
        return max(scored, key=lambda c: (c.val[RANK1], -c.epoch)) if scored else None


def finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


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


def _kept(history: RunHistory, parse: Callable[[Path], list]) -> list:
    """``parse``'s events of every start, minus those of epochs a later start trained again."""
    events = []
    starts = [restart.epoch for restart in history.restarts]
    for i, restart in enumerate(history.restarts):
        limit = min(starts[i + 1:], default=math.inf)
        events += [event for event in parse(restart.path) if event.epoch < limit]
    # By epoch, then by batch where the events have one (health checks and warnings).
    return sorted(events, key=lambda event: (event.epoch, getattr(event, "batch", 0)))


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
    epochs = checkpoint_epochs(folder, prefix)
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
        snapshot, origin = load_config(config).snapshot(), f"{config} (--config)"
    identity = found[-1].manifest.get("identity", {}) if found else {}
    model = str(identity.get("model", snapshot.get("MODEL", "?")))
    params = dict(identity.get("model_params") or snapshot.get("MODEL_PARAMS") or {})
    health = {restart.path: parse_health_lines(restart.path) for restart in history.restarts}
    checks = _kept(history, lambda path: health[path].checks)
    warnings = _kept(history, lambda path: health[path].warnings)
    jsonl = metrics_jsonl_path(folder, prefix)
    records = read_metrics(jsonl) if jsonl.is_file() else []
    return RunData(folder, prefix, found, history, snapshot, origin, dataset, dataset_origin,
                   checks, warnings, _monitor_settings(history), records,
                   comparison(model, snapshot, params), model, params,
                   _kept(history, parse_plateau_lines), _monitor_settings(history, DETECTOR_LINE))
