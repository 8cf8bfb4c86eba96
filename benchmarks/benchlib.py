"""What the benchmark scripts share: figures and their formatting, the one Markdown table
renderer, the machine, the command line and JSON output, child processes, and generated
datasets. Nothing here imports numpy or MXNet at import time: ``peak.py`` sets thread
variables first, and the build's spawned workers re-import the script that imports this.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
OUTPUT = BENCH_DIR / "output"
# The scripts import ``pyimagesearch`` after this module, from wherever they were started.
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(1, str(REPO_ROOT))

# Recorded with every result, with every variable of the prefixes below whatever its name.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MXNET_CPU_WORKER_NTHREADS",
                    "MXNET_CPU_PRIORITY_NTHREADS", "MXNET_ENGINE_TYPE", "MKL_NUM_THREADS",
                    "OPENBLAS_NUM_THREADS", "MXNET_MKLDNN_ENABLED", "MXNET_SUBGRAPH_BACKEND")
THREAD_PREFIXES = ("MXNET_", "OMP_", "KMP_", "MKL_", "OPENBLAS_", "DNNL_", "ONEDNN_", "GOMP_")
BUILD_RESIZE, BUILD_QUALITY = 256, 95  # shorter side and JPEG quality of generated builds
PEERS_DIR = Path(os.environ.get("BENCH_PEERS_DIR", REPO_ROOT.parent / "shared" / "bench-peers"))
TORCH_VENV = Path(os.environ.get("BENCH_TORCH_VENV", "/tmp/bench-torch"))  # the peers' venv
WNID_BASE = 1440764  # n01440764, n01440765, ...: a made-up but well-formed id range


def summary(values: list[float]) -> dict[str, float]:
    """Median, min and max of a measurement's repeats (and how many there were)."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values),
            "repeats": len(values)}


def num(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "n/a"
    return "inf" if value == float("inf") else f"{value:,.{digits}f}"


def spread(entry: dict | None, digits: int = 1, scale: float = 1.0) -> str:
    """``median (min-max)`` of a summary (the median alone for one repeat)."""
    if not entry:
        return "n/a"
    median = num(scale * entry["median"], digits)
    if entry.get("repeats", 2) == 1:
        return median
    return f"{median} ({num(scale * entry['min'], digits)}-{num(scale * entry['max'], digits)})"


def markdown_table(header: list[str], rows: list[list[str]], left: int = 1) -> list[str]:
    """A Markdown table's lines; the first ``left`` columns are text, the others figures."""
    align = ["---"] * left + ["---:"] * (len(header) - left)
    return ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |",
            *("| " + " | ".join(row) + " |" for row in rows), ""]


def thread_environment() -> dict[str, str | None]:
    """The thread and engine variables as this process sees them (None: not set)."""
    seen = {name: os.environ.get(name) for name in THREAD_VARIABLES}
    seen.update({k: v for k, v in sorted(os.environ.items()) if k.startswith(THREAD_PREFIXES)})
    return seen


def machine() -> dict[str, Any]:
    """CPU, cores, versions and thread settings of this process (imports MXNet)."""
    import mxnet as mx
    import numpy as np

    features = mx.runtime.Features()
    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines()
                if line.startswith("model name")), platform.processor() or "unknown")
    return {
        "cpu": cpu, "cores": len(os.sched_getaffinity(0)), "cpu_count": os.cpu_count(),
        "platform": platform.platform(), "python": platform.python_version(),
        "mxnet": mx.__version__, "numpy": np.__version__,
        "mxnet_features": sorted(name for name in features if features.is_enabled(name)),
        "threads": thread_environment(), "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def parser(doc: str, quick: str, **flags: Any) -> argparse.ArgumentParser:
    """A script's parser: ``--quick`` (its help: ``quick``), ``--output`` and ``flags``, each
    ``--name=default`` (a type for no default, False for a switch) or (that, its help)."""
    found = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    found.add_argument("--quick", action="store_true", help=f"smoke run: {quick}")
    found.add_argument("--output", help="JSON file name in benchmarks/output, or a path")
    for name, value in flags.items():
        value, text = value if isinstance(value, tuple) else (value, None)
        flag = "--" + name.replace("_", "-")
        if value is False:
            found.add_argument(flag, action="store_true", help=text)
        elif isinstance(value, type):
            found.add_argument(flag, type=value, help=text)
        else:
            found.add_argument(flag, type=type(value), default=value, help=text)
    return found


def names(parser: argparse.ArgumentParser, text: str, known, what: str) -> list[str]:
    """The comma-separated names of ``text``; the parser exits on one not ``known``."""
    given = list(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    if unknown := [n for n in given if n not in known]:
        parser.error(f"unknown {what} {unknown}; known: {', '.join(known)}")
    return given


def output_path(name: str | None, default: str, quick: bool) -> Path:
    """``name`` (a file name in benchmarks/output, or a path), else the default name."""
    if name:
        return Path(name) if ("/" in name or os.sep in name) else OUTPUT / name
    stem, suffix = default.rsplit(".", 1)
    return OUTPUT / (f"{stem}_quick.{suffix}" if quick else default)


def write_json(path: Path, report: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2, default=str) + "\n")
    return path


def write_report(args: argparse.Namespace, default: str, report: dict[str, Any]) -> Path:
    """The script's JSON (``--output``, else ``default``) with the machine; says where."""
    path = write_json(output_path(args.output, default, args.quick),
                      {**report, "machine": machine()})
    print(f"[{default.split('.')[0]}] wrote {path}", flush=True)
    return path


def child_env(**changes: str | None) -> dict[str, str]:
    """This environment with the repository importable and ``changes`` (None removes)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    for key, value in changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def run_json_child(command: list[str], env: dict[str, str], timeout: float,
                   quiet: bool = False) -> dict[str, Any]:
    """The JSON object a child prints as its last line; a failure raises with its last lines
    (``quiet``: its stderr kept, and its last line naming an error)."""
    done = subprocess.run(command, env=env, cwd=REPO_ROOT, timeout=timeout, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE if quiet else None)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = lines[-5:]
        if quiet:
            errors = done.stderr.splitlines()
            tail = ([e for e in errors if "Error" in e] or errors or ["no output"])[-1:]
        raise RuntimeError(f"exited {done.returncode}: {' | '.join(tail)}")
    return json.loads(lines[-1])


def photo(rng, width: int, height: int):
    """A photo-like BGR image: smooth colour regions, mid-frequency texture, sensor noise."""
    import cv2
    import numpy as np

    small = rng.uniform(0, 255, (rng.randint(3, 8), rng.randint(3, 8), 3)).astype(np.float32)
    image = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    texture = rng.normal(0, 40, (height // 3, width // 3, 3)).astype(np.float32)
    image += cv2.resize(texture, (width, height), interpolation=cv2.INTER_LINEAR)
    image += rng.normal(0, 6, (height, width, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def write_lists(base: Path, wnids: list[str], train: list[str], blacklist: str) -> None:
    """An ILSVRC2015 tree's lists and devkit files (one validation image per class)."""
    sets, devkit = base / "ImageSets" / "CLS-LOC", base / "devkit" / "data"
    for folder in (sets, devkit):
        folder.mkdir(parents=True, exist_ok=True)
    classes = range(len(wnids))
    (sets / "train_cls.txt").write_text(
        "".join(f"{line} {i + 1}\n" for i, line in enumerate(sorted(train))))
    (sets / "val.txt").write_text("".join(f"ILSVRC2012_val_{i + 1:08d} {i + 1}\n"
                                          for i in classes))
    (devkit / "map_clsloc.txt").write_text("".join(f"{w} {i + 1} class_{i}\n"
                                                   for i, w in enumerate(wnids)))
    (devkit / "ILSVRC2015_clsloc_validation_ground_truth.txt").write_text(
        "".join(f"{i + 1}\n" for i in classes))
    (devkit / "ILSVRC2015_clsloc_validation_blacklist.txt").write_text(blacklist)


def write_tree(base: Path, images: int, classes: int, size: tuple[int, int]) -> float:
    """An ILSVRC2015 tree of generated photo-like JPEGs: ``images`` training images and one
    validation image per class, the first blacklisted. Every third image is portrait, as in
    ImageNet. Returns the mean JPEG size in KiB."""
    import cv2
    import numpy as np

    rng = np.random.RandomState(0)
    data = base / "Data" / "CLS-LOC"
    wnids = [f"n{WNID_BASE + c:08d}" for c in range(classes)]
    sizes, train = [], []

    def save(path: Path, number: int) -> None:
        width, height = size if number % 3 else size[::-1]
        _, buffer = cv2.imencode(".jpg", photo(rng, width, height),
                                 [cv2.IMWRITE_JPEG_QUALITY, 92])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(buffer.tobytes())
        sizes.append(len(buffer))

    for number in range(images):
        wnid = wnids[number % classes]
        save(data / "train" / wnid / f"{wnid}_{number}.JPEG", number)
        train.append(f"{wnid}/{wnid}_{number}")
    for number in range(classes):
        save(data / "val" / f"ILSVRC2012_val_{number + 1:08d}.JPEG", number)
    write_lists(base, wnids, train, "1\n")
    return float(np.mean(sizes)) / 1024


def imagefolder_tree(base: Path, folder: Path) -> tuple[int, int]:
    """An ILSVRC2015 tree of symbolic links to the JPEGs of an ImageFolder ``folder``: every
    image a training image, each class's first linked again as its validation image.
    Returns (images, classes)."""
    classes = sorted(p for p in folder.iterdir() if p.is_dir())
    data = base / "Data" / "CLS-LOC"
    (data / "val").mkdir(parents=True, exist_ok=True)
    wnids = [f"n{WNID_BASE + c:08d}" for c in range(len(classes))]
    train: list[str] = []
    for number, (wnid, source) in enumerate(zip(wnids, classes), 1):
        images = sorted(source.glob("*.jp*g"))
        (data / "train" / wnid).mkdir(parents=True)
        for image in images:
            (data / "train" / wnid / f"{wnid}_{len(train)}.JPEG").symlink_to(image.resolve())
            train.append(f"{wnid}/{wnid}_{len(train)}")
        (data / "val" / f"ILSVRC2012_val_{number:08d}.JPEG").symlink_to(images[0].resolve())
    write_lists(base, wnids, train, "")
    return len(train), len(wnids)


def write_config(path: Path, base: Path, output: Path, classes: int, threads: int) -> Path:
    """A build config for the ILSVRC2015 tree ``base``, records under ``output``."""
    sets, devkit = base / "ImageSets" / "CLS-LOC", base / "devkit" / "data"
    fields = {
        "BASE_PATH": base, "IMAGES_PATH": base / "Data" / "CLS-LOC", "IMAGE_SETS_PATH": sets,
        "DEVKIT_PATH": devkit, "WORD_IDS": devkit / "map_clsloc.txt",
        "TRAIN_LIST": sets / "train_cls.txt", "VAL_LIST": sets / "val.txt",
        "VAL_LABELS": devkit / "ILSVRC2015_clsloc_validation_ground_truth.txt",
        "VAL_BLACKLIST": devkit / "ILSVRC2015_clsloc_validation_blacklist.txt",
        "MX_OUTPUT": output, "DATASET_MEAN": output / "rec" / "mean.json",
        **{f"{split.upper()}_MX_{key}": output / folder / f"{split}.{ext}"
           for split in ("train", "val", "test")
           for folder, key, ext in (("lists", "LIST", "lst"), ("rec", "REC", "rec"))}}
    lines = [f"{name} = {str(value)!r}" for name, value in fields.items()]
    lines += [f"NUM_CLASSES = {classes}", f"NUM_TEST_IMAGES = {classes}",
              "TEST_SPLIT_SEED = 42", 'LABEL_ORDER = "map_clsloc"', f"RESIZE = {BUILD_RESIZE}",
              f"ENCODING_QUALITY = {BUILD_QUALITY}", f"BUILD_THREADS = {threads}",
              "INPUT_SIZE = 224"]
    path.write_text("\n".join(lines) + "\n")
    return path


def make_training_dataset(folder: Path, *, images: int, classes: int, image_size: int,
                          resize: int, base_config: str, overrides: dict[str, Any],
                          tree: Path | None = None) -> Path:
    """Records of ``write_tree``'s images (or of ``tree``) built by our build path, and their
    config: ``from <base_config> import *`` (a real config's recipe, augmentation, health
    and thread settings), the tree's paths, ``RESIZE``, then ``overrides``."""
    from pyimagesearch.config import load_config
    from pyimagesearch.data.build.builder import build_dataset

    base = tree or folder / "ILSVRC2015"
    if tree is None:
        write_tree(base, images, classes, (image_size, image_size * 3 // 4))
    folder.mkdir(parents=True, exist_ok=True)
    paths = folder / "paths_config.py"
    write_config(paths, base, folder / "out", classes, threads=min(os.cpu_count() or 1, 4))
    config = folder / "bench_config.py"
    lines = [f"from {base_config} import *  # noqa: F403", paths.read_text(),
             f"RESIZE = {resize}", *(f"{name} = {value!r}" for name, value in overrides.items())]
    config.write_text("\n".join(lines) + "\n")
    build_dataset(load_config(str(config)))
    return config
