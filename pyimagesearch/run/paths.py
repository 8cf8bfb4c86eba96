"""Every file name in a run folder, in one place: checkpoints and their temporaries, logs,
metrics, the lock, scores, the ONNX file, the report, the plots, the runs of a study.

For checkpoint N (the weights after N epochs, where ``--start-epoch N`` resumes):
``NAME-symbol.json`` and ``NAME-%04d.params`` (MXNet's own, as ``HybridBlock.export``
writes them), ``NAME-%04d.states`` (optimizer state) and ``NAME-%04d.json`` (the manifest,
written last). Each start of a run logs to ``training_<start>.log``, never overwriting one.
"""

from __future__ import annotations

import re
from pathlib import Path

from pyimagesearch.files import PARTIAL
from pyimagesearch.locks import FolderLock

CHECKPOINT_FILES = ("symbol", "params", "states", "manifest")
# A save writes ".NAME.tmp<pid>-symbol.json", ".NAME.tmp<pid>-0001.params", ... then renames.
_SAVE_STEM = ".{prefix}.tmp"
LOG_GLOB = "training_*.log"
_METRICS_SUFFIX = "-metrics.jsonl"
LOG_NAME = re.compile(r"training_(\d+)(?:\.(\d+))?\.log$")  # start epoch, repeat


def checkpoint_paths(folder: str | Path, prefix: str, epoch: int) -> dict[str, Path]:
    """The four files of checkpoint ``epoch``."""
    folder = Path(folder)
    return {"symbol": folder / f"{prefix}-symbol.json",
            "params": folder / f"{prefix}-{epoch:04d}.params",
            "states": folder / f"{prefix}-{epoch:04d}.states",
            "manifest": folder / f"{prefix}-{epoch:04d}.json"}


def checkpoint_name(prefix: str, epoch: int) -> str:
    """``NAME-0050``: how messages and metadata name checkpoint 50."""
    return f"{prefix}-{epoch:04d}"


def manifest_glob(prefix: str) -> str:
    return f"{prefix}-[0-9][0-9][0-9][0-9].json"


def params_glob(prefix: str) -> str:
    return f"{prefix}-[0-9][0-9][0-9][0-9].params"


def epoch_of(path: Path) -> int:
    """The epoch in a checkpoint file's name (``NAME-0050.json`` -> 50)."""
    return int(path.stem.rsplit("-", 1)[1])


def save_stem(folder: str | Path, prefix: str, pid: int) -> Path:
    """The stem of a save's temporary files (``checkpoint_paths`` of it name them)."""
    return Path(folder) / f"{_SAVE_STEM.format(prefix=prefix)}{pid}"


def save_leftover(prefix: str) -> re.Pattern[str]:
    """What a save cut short leaves: its temporary files, and a manifest's partial copy."""
    stem = re.escape(_SAVE_STEM.format(prefix=prefix))
    return re.compile(rf"{stem}\d+-(symbol\.json|\d{{4}}\.(params|states|json))"
                      rf"|{re.escape(prefix)}-\d{{4}}\.json{re.escape(PARTIAL)}\d+")


def save_traces(folder: str | Path, prefix: str, epoch: int) -> list[Path]:
    """The leftovers of a save of ``epoch`` still in ``folder``."""
    folder = Path(folder)
    return [*folder.glob(f"{_SAVE_STEM.format(prefix=prefix)}*-{epoch:04d}.*"),
            *folder.glob(f"{prefix}-{epoch:04d}.json{PARTIAL}*")]


def mxnet_symbol_copy(folder: str | Path, prefix: str) -> Path:
    """Where MXNet's own graph is kept once a resumed run writes its ``NAME-symbol.json``."""
    return Path(folder) / f"{prefix}-mxnet-symbol.json"


def result_path(folder: str | Path, prefix: str, epoch: int, split: str,
                crops: int = 1) -> Path:
    """Where a score is saved: ``NAME-0050-test.json``, ``NAME-0050-test-10crop.json``."""
    suffix = "" if crops == 1 else f"-{crops}crop"
    return Path(folder) / f"{prefix}-{epoch:04d}-{split}{suffix}.json"


def epochs_csv_path(folder: str | Path, prefix: str) -> Path:
    """Every checkpoint's validation figures (``test_*.py --all-epochs``)."""
    return Path(folder) / f"{prefix}-epochs.csv"


def onnx_path(folder: str | Path, prefix: str, epoch: int) -> Path:
    return Path(folder) / f"{prefix}-{epoch:04d}.onnx"


def report_path(folder: str | Path, prefix: str) -> Path:
    return Path(folder) / f"{prefix}-report.html"


def figure_path(folder: str | Path, title: str, curve: str) -> Path:
    """A plot: ``<title>_rank1.png``, ``<title>_runs_loss.png``, ``<prefix>_lr.png``, ..."""
    return Path(folder) / f"{title}_{curve}.png"


def metrics_jsonl_path(checkpoints: str | Path, prefix: str) -> Path:
    """One JSON line per epoch: the run's machine record."""
    return Path(checkpoints) / f"{prefix}{_METRICS_SUFFIX}"


def metrics_files(checkpoints: str | Path) -> list[Path]:
    """The metrics file of every prefix in a run folder."""
    return sorted(Path(checkpoints).glob(f"*{_METRICS_SUFFIX}"))


def log_path(checkpoints: str | Path, start_epoch: int, worker: int | None = None) -> Path:
    """The log file for a run starting at ``start_epoch`` that overwrites no earlier one.

    Workers other than 0 of a distributed run log to ``worker<k>-training_<start>.log``,
    which the run's plots (``training_*.log``) leave out.
    """
    folder = Path(checkpoints)
    stem = f"training_{start_epoch}" if worker is None else f"worker{worker}-training_{start_epoch}"
    path = folder / f"{stem}.log"
    repeat = 2
    while path.exists():
        path = folder / f"{stem}.{repeat}.log"
        repeat += 1
    return path


def run_logs(checkpoints: str | Path) -> list[Path]:
    return sorted(Path(checkpoints).glob(LOG_GLOB))


def run_lock(checkpoints: str | Path, prefix: str) -> FolderLock:
    """The lock of a run: ``<checkpoints>/.<prefix>.lock``, one writer per folder and prefix."""
    return FolderLock(checkpoints, f".{prefix}.lock", f"the training {prefix!r}")


def seed_folder(checkpoints: str | Path, seed: int) -> Path:
    """Where run ``seed`` of a study (``train_cifar.py --runs R``) keeps its files."""
    return Path(checkpoints) / f"seed{seed}"


SEED_FOLDER = re.compile(r"seed(-?\d+)$")
