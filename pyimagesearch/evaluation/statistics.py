"""Statistics over several runs of one setting, and settings side by side with the papers.

One run cannot rank CIFAR settings: neighbouring depths differ by tenths of a percent, and
He et al.'s own five 110-layer runs spread by 0.16 (6.61 +- 0.16, best 6.43). So a setting
is trained R times (``train_cifar.py --runs R``) and reported as
the final test error's mean +- sample standard deviation, median, min and max over the
runs, next to each run's average validation error over its last K epochs (and the
spread within that window, to show how much one epoch's number can be trusted).

A run is a folder holding ``<prefix>-metrics.jsonl`` and checkpoints; a setting is a
folder of runs (``<checkpoints>/seed<k>``, as ``train_cifar.py`` lays them out) or one
run folder. The final test error is read from ``<prefix>-NNNN-test.json`` of the run's
last checkpoint, and computed (``evaluate_checkpoint``) when it is absent.
"""

from __future__ import annotations

import json
import logging
import math
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pyimagesearch.config import Settings
from pyimagesearch.data.dataset import read_manifest as read_dataset_manifest
from pyimagesearch.errors import CheckpointError, DatasetError
from pyimagesearch.evaluation.evaluate import ResultNotSaved, evaluate_checkpoint
from pyimagesearch.run.checkpoints import latest_checkpoint, read_manifest, recorded_config
from pyimagesearch.run.logs import read_metrics
from pyimagesearch.run.paths import SEED_FOLDER, metrics_jsonl_path, result_path

logger = logging.getLogger(__name__)

# He et al. 2016, Table 6: CIFAR-10 test error (%) of the option-A ResNets (best of 5 runs
# for 110 layers, whose mean +- std is 6.61 +- 0.16).
PAPER_TABLE6 = {20: 8.75, 32: 7.51, 44: 7.17, 56: 6.97, 110: 6.43, 1202: 7.93}
PAPER_TABLE6_MEAN_STD = {110: (6.61, 0.16)}
PAPER_TABLE6_PARAMS = {20: "0.27M", 32: "0.46M", 44: "0.66M", 56: "0.85M", 110: "1.7M",
                       1202: "19.4M"}
# The Torch reproduction: gcr/torch-residual-networks (Michael Wilber), 200 epochs, one
# run per depth, option A only. Its published table (README of 2016-01-12, "CIFAR: Effect
# of model size"; test error as a fraction, 0.084473 etc., a rolling average of the test
# error curve). A later revision of that README (2016-01-15) replaced the table with a
# re-run (8.29, 7.63, 7.14, 6.94, 6.73), explaining that it had been "only testing on the
# first 2,000 images in the training set", sampled with replacement.
TORCH_REPRODUCTION = {20: 8.4473, 32: 7.9102, 44: 7.5684, 56: 6.3477, 110: 6.7871}
# Its block study at 20 layers (the same README, "CIFAR: Effect of model architecture"),
# by this project's variant names (nn/cifar_resnet.py's VARIANTS): "ReLU, BN before add
# (ORIG PAPER)", "ReLU, BN after add", "No ReLU, BN before add", "No ReLU, BN after add".
TORCH_VARIANTS_DEPTH = 20
TORCH_VARIANTS = {"original": 8.4473, "bn_after_add": 8.3496, "no_relu_bn_before": 8.9355,
                  "no_relu_bn_after": 7.9102}



@dataclass(frozen=True)
class Summary:
    """Mean, sample standard deviation (n-1; NaN for one value), median, min, max."""

    n: int
    mean: float
    std: float
    median: float
    min: float
    max: float

    @classmethod
    def of(cls, values: list[float]) -> Summary:
        values = [float(v) for v in values if v is not None and math.isfinite(v)]
        if not values:
            return cls(0, math.nan, math.nan, math.nan, math.nan, math.nan)
        std = statistics.stdev(values) if len(values) > 1 else math.nan
        return cls(len(values), statistics.fmean(values), std, statistics.median(values),
                   min(values), max(values))


@dataclass
class RunResult:
    """One run: its final test error and its validation error over the last K epochs (%)."""

    folder: str
    seed: int | None
    last_epoch: int | None  # the last checkpoint (epochs trained)
    test_error: float | None
    test_images: int | None
    val_errors: dict[int, float]  # epoch (0-based, as logged) -> validation error
    last_k: Summary
    model_params: dict[str, Any] = field(default_factory=dict)
    recipe: str | None = None
    fake_data: bool = False  # trained on FAKE_CIFAR files (the demo): no comparison holds


@dataclass
class SettingResult:
    """R runs of one setting."""

    name: str
    runs: list[RunResult]
    test: Summary
    last_k_mean: Summary  # over runs, of each run's last-K mean validation error

    @property
    def model_params(self) -> dict[str, Any]:
        return next((r.model_params for r in self.runs if r.model_params), {})

    @property
    def recipe(self) -> str | None:
        return next((r.recipe for r in self.runs if r.recipe), None)

    @property
    def fake_data(self) -> bool:
        return any(r.fake_data for r in self.runs)


def find_runs(path: str | Path, prefix: str) -> list[Path]:
    """The run folders of a setting: ``path`` itself if it is a run, else its ``seed<k>``
    subfolders (in seed order), else any subfolder holding a run."""
    path = Path(path)
    if metrics_jsonl_path(path, prefix).is_file() or latest_checkpoint(path, prefix):
        return [path]
    if not path.is_dir():
        raise CheckpointError(f"{path} does not exist")
    children = [p for p in path.iterdir() if p.is_dir()
                and (metrics_jsonl_path(p, prefix).is_file() or latest_checkpoint(p, prefix))]

    def order(folder: Path) -> tuple[int, int, str]:
        match = SEED_FOLDER.search(folder.name)
        return (0, int(match.group(1)), "") if match else (1, 0, folder.name)

    return sorted(children, key=order)


def last_k_errors(val_errors: dict[int, float], k: int) -> list[float]:
    """The validation errors of the last ``k`` epochs trained (fewer if the run is shorter)."""
    return [val_errors[e] for e in sorted(val_errors)[-k:]]


def _dataset_is_fake(manifest: dict[str, Any]) -> bool:
    """Whether the run's dataset manifest (named in its checkpoint) says the data is fake."""
    path = manifest.get("dataset", {}).get("manifest")
    try:
        return bool(path and read_dataset_manifest(path)["build"].get("fake", False))
    except DatasetError:
        return False


def collect_run(folder: str | Path, prefix: str, k: int = 5, config: Settings | None = None,
                evaluate_missing: bool = True, cpu_contexts: int = 1,
                gpus: tuple[int, ...] | None = None) -> RunResult:
    """Read one run; evaluate its last checkpoint on the test split if that was never done."""
    folder = Path(folder)
    metrics_file = metrics_jsonl_path(folder, prefix)
    records = read_metrics(metrics_file) if metrics_file.is_file() else []
    val_errors = {int(r["epoch"]): 100.0 * (1.0 - float(r["val"]["accuracy"]))
                  for r in records if r.get("val", {}).get("accuracy") is not None}
    epoch = latest_checkpoint(folder, prefix)
    seed_match = SEED_FOLDER.search(folder.name)
    result = RunResult(folder=str(folder), seed=int(seed_match.group(1)) if seed_match else None,
                       last_epoch=epoch, test_error=None, test_images=None,
                       val_errors=val_errors, last_k=Summary.of(last_k_errors(val_errors, k)))
    if epoch is None:
        return result
    manifest = read_manifest(folder, prefix, epoch, verify=False)
    result.seed = manifest.get("seed", result.seed)
    result.model_params = dict(manifest.get("identity", {}).get("model_params", {}))
    recipe = manifest.get("recipe")
    result.recipe = recipe.get("name") if isinstance(recipe, dict) else None
    result.fake_data = _dataset_is_fake(manifest)
    path = result_path(folder, prefix, epoch, "test")
    scored = None
    if path.is_file():
        scored = json.loads(path.read_text())
    elif evaluate_missing:
        logger.info("evaluating %s epoch %d on the test split", folder, epoch)
        try:
            scored = evaluate_checkpoint(recorded_config(manifest, config), str(folder), prefix,
                                         epoch, "test", cpu_contexts, gpus=gpus)
        except ResultNotSaved as exc:  # a read-only folder: use the figures all the same
            logger.warning("%s", exc)
            scored = exc.result
    if scored is not None:
        result.test_error = 100.0 * (1.0 - float(scored["accuracy"]))
        result.test_images = int(scored.get("images", 0)) or None
    return result


def collect_setting(path: str | Path, prefix: str, k: int = 5,
                    config: Settings | None = None, evaluate_missing: bool = True,
                    cpu_contexts: int = 1, gpus: tuple[int, ...] | None = None
                    ) -> SettingResult:
    runs = [collect_run(folder, prefix, k, config, evaluate_missing, cpu_contexts, gpus)
            for folder in find_runs(path, prefix)]
    if not runs:
        raise CheckpointError(f"no run of {prefix!r} in {path} (expected "
                                f"{prefix}-metrics.jsonl in it or in its seed<k> folders)")
    return SettingResult(name=str(path), runs=runs,
                         test=Summary.of([r.test_error for r in runs]),
                         last_k_mean=Summary.of([r.last_k.mean for r in runs]))


# --- reporting ---------------------------------------------------------------------------
def _pct(value: float | None, width: int = 6) -> str:
    return f"{value:{width}.2f}" if value is not None and math.isfinite(value) else \
        f"{'-':>{width}}"


def _mean_std(summary: Summary) -> str:
    if summary.n == 0:
        return "-"
    if summary.n == 1:
        return f"{summary.mean:.2f}"
    return f"{summary.mean:.2f} ± {summary.std:.2f}"


def torch_error(params: dict[str, Any]) -> float | None:
    """The Torch reproduction's test error (%) for a setting: its depth table for the
    original block, its 20-layer block study for the variants; None where it has none."""
    if params.get("num_classes", 10) != 10 or params.get("shortcut", "A") != "A":
        return None
    depth, variant = params.get("depth"), params.get("variant", "original")
    if variant == "original":
        return TORCH_REPRODUCTION.get(depth)
    return TORCH_VARIANTS.get(variant) if depth == TORCH_VARIANTS_DEPTH else None


def published(params: dict[str, Any]) -> tuple[str, str]:
    """(paper, Torch reproduction) test errors for a setting, where they reported one."""
    error = torch_error(params)
    torch = "-" if error is None else f"{error:.2f}"
    if params.get("num_classes", 10) != 10 or params.get("shortcut", "A") != "A" \
            or params.get("variant", "original") != "original":
        return "-", torch
    depth = params.get("depth")
    paper = "-"
    if depth in PAPER_TABLE6:
        paper = f"{PAPER_TABLE6[depth]:.2f}"
        if depth in PAPER_TABLE6_MEAN_STD:
            mean, std = PAPER_TABLE6_MEAN_STD[depth]
            paper += f" ({mean:.2f} ± {std:.2f})"
    return paper, torch


def _describe_model(params: dict[str, Any]) -> str:
    if not params:
        return "model unknown (no checkpoint)"
    return (f"depth {params.get('depth', '?')}, shortcut {params.get('shortcut', '?')}, "
            f"variant {params.get('variant', '?')}, {params.get('num_classes', '?')} classes")


def format_setting(setting: SettingResult, k: int) -> str:
    fake = " (FAKE data)" if setting.fake_data else ""
    lines = [f"{setting.name}: {_describe_model(setting.model_params)}; recipe "
             f"{setting.recipe or '?'}; {len(setting.runs)} run(s){fake}",
             f"  {'seed':>6}  {'epochs':>6}  {'test err %':>10}  "
             f"{f'val err % over last {k} epochs: mean (min-max)':<44}"]
    for run in setting.runs:
        window = (f"{_pct(run.last_k.mean)} ({_pct(run.last_k.min, 0)}-"
                  f"{_pct(run.last_k.max, 0)}, {run.last_k.n} epochs)"
                  if run.last_k.n else "-")
        note = "" if run.test_error is not None else "  (not evaluated)"
        lines.append(f"  {run.seed if run.seed is not None else '?':>6}  "
                     f"{run.last_epoch if run.last_epoch is not None else '-':>6}  "
                     f"{_pct(run.test_error, 10)}  {window}{note}")
    epochs = {r.last_epoch for r in setting.runs}
    if len(epochs) > 1:
        lines.append(f"  warning: the runs stopped at different epochs {sorted(map(str, epochs))}")
    t = setting.test
    if t.n:
        lines.append(f"  final test error over {t.n} run(s): {_mean_std(t)} % (mean ± sample "
                     f"std), median {t.median:.2f}, min {t.min:.2f}, max {t.max:.2f}")
    else:
        lines.append("  final test error: no run evaluated")
    spreads = [r.last_k.max - r.last_k.min for r in setting.runs if r.last_k.n > 1]
    if spreads:
        lines.append(f"  spread of the validation error within the last {k} epochs of a run: "
                     f"up to {max(spreads):.2f} points")
    return "\n".join(lines)


def format_table(settings: list[SettingResult], k: int) -> str:
    """Settings side by side with He et al.'s Table 6 and the Torch reproduction (error %)."""
    header = (f"{'setting':<28} {'depth':>5} {'sc':>2} {'variant':<18} {'runs':>4} "
              f"{'test mean ± std':>16} {'median':>6} {'min':>6} {'max':>6} "
              f"{f'val last {k}':>11}  {'paper (Table 6)':<20} {'Torch':>5}")
    lines = ["CIFAR-10 test error (%), final epoch; paper = He et al. 2016 Table 6 "
             "(110: best of 5 runs (mean ± std of the 5)); Torch = gcr/torch-residual-networks"
             " as published 2016-01-12 (one run, rolling average; block variants at 20 "
             "layers)", header, "-" * len(header)]
    for s in settings:
        p = s.model_params
        paper, torch = published(p)
        name = s.name if len(s.name) <= 28 else "..." + s.name[-25:]
        if s.fake_data:
            paper, torch = "(FAKE data)", "-"
        lines.append(f"{name:<28} {p.get('depth', '?')!s:>5} {p.get('shortcut', '?')!s:>2} "
                     f"{p.get('variant', '?')!s:<18} {s.test.n:>4} {_mean_std(s.test):>16} "
                     f"{_pct(s.test.median)} {_pct(s.test.min)} {_pct(s.test.max)} "
                     f"{_pct(s.last_k_mean.mean, 11)}  {paper:<20} {torch:>5}")
    return "\n".join(lines)


def report_json(settings: list[SettingResult], k: int) -> dict[str, Any]:
    def clean(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {str(key): clean(item) for key, item in value.items()}
        if isinstance(value, list):
            return [clean(item) for item in value]
        return value

    return clean({"last_k": k, "settings": [
        {"name": s.name, "model_params": s.model_params, "recipe": s.recipe,
         "fake_data": s.fake_data,
         "published": dict(zip(("paper", "torch"), published(s.model_params))),
         "test": asdict(s.test), "last_k_mean": asdict(s.last_k_mean),
         "runs": [asdict(r) for r in s.runs]} for s in settings]})
