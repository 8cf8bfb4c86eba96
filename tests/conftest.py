"""Shared fixtures. Keep each section self-contained; add new sections at the end.

Sections
--------
1. Tiny ILSVRC2015 trees: ``make_ilsvrc_tree`` writes the real layout and file formats
   (DESIGN.md) with small coloured images, optionally with damaged or odd files;
   ``write_config`` writes a config ``.py`` pointing at such a tree. Fixtures:
   ``make_tree`` / ``make_config`` (factories), ``ilsvrc_tree``, ``ilsvrc_config``, and
   the session-wide ``tiny_dataset_config``: a finished record dataset (lists, records,
   mean, manifest) for tests of training and evaluation.
2. Config files: :func:`config_with` is the one writer of a test config (every other
   helper here calls it): a config module or file with upper-case fields set after it.
   ``write_config`` (a tiny tree) and ``write_cifar_config`` (fake CIFAR files) are its
   presets. ``tiny_config``: the tiny dataset with small batches, session-wide.
3. Waiting for another process: :func:`wait_for` polls for an event (a file, a state)
   under a generous overall deadline; :class:`LineReader` does the same for lines of a
   pipe. Never a fixed sleep that a loaded machine can outrun.
4. One tiny trained run, session-wide (``tiny_run``): GoogLeNet on the tiny dataset,
   restarted once with a rate set by hand, the test split scored. Read-only; a test that
   writes into a run folder takes ``linked_copy`` of it first, and
   :func:`rewrite_checkpoint_params` changes a checkpoint's weights honestly.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import cv2
import numpy as np
import pytest
from PIL import Image

# The top-level scripts (build_imagenet.py, ...) and the package import from the repository
# root, however pytest was started.
REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

# Tests press Ctrl-C on the processes they start, as a terminal does. A runner that a script
# started in the background (`make test &`) has SIGINT ignored, as POSIX shells do for such
# jobs, and its children would inherit that and rightly never see the Ctrl-C.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# ===================================================================================
# 1. Tiny ILSVRC2015 trees
# ===================================================================================

# Not in sorted order, so "map_clsloc" and "sorted_wnid" labels differ (as on ImageNet).
TREE_WNIDS = ("n02119789", "n02100735", "n01440764", "n04591713", "n03000134",
              "n01530575", "n09999999", "n02085620", "n07614500", "n03763968")
# One distinct colour (R, G, B) per class, so a record's pixels reveal its class.
TREE_COLOURS = ((210, 50, 40), (40, 170, 60), (50, 70, 220), (220, 200, 50),
                (160, 60, 200), (40, 190, 200), (240, 140, 30), (120, 120, 120),
                (90, 40, 20), (250, 170, 200))
# Odd but decodable files (each is stored as a 3-channel JPEG) ...
READABLE_ODD_KINDS = ("png", "cmyk", "gray", "rgba", "palette")
# ... and files that cannot be read (each is skipped and reported).
UNREADABLE_KINDS = ("absent", "empty", "text", "truncated")
ODD_KINDS = READABLE_ODD_KINDS + UNREADABLE_KINDS


@dataclass
class IlsvrcTree:
    """What ``make_ilsvrc_tree`` wrote. Paths in ``train``/``val``/``odd`` are relative to
    ``images`` (as in ``.lst`` files)."""

    base: Path                       # BASE_PATH, the ILSVRC2015 folder
    wnids: list[str]                 # map_clsloc.txt order (class id = position + 1)
    names: list[str]
    colours: dict[str, tuple[int, int, int]]
    train: list[tuple[str, str]] = field(default_factory=list)   # (path, wnid)
    val: list[tuple[str, str]] = field(default_factory=list)     # (path, wnid), val order
    blacklist: list[int] = field(default_factory=list)           # 1-based val indices
    odd: dict[str, str] = field(default_factory=dict)            # path -> kind
    sizes: dict[str, tuple[int, int]] = field(default_factory=dict)  # path -> (w, h)

    @property
    def images(self) -> Path:
        return self.base / "Data" / "CLS-LOC"

    @property
    def devkit(self) -> Path:
        return self.base / "devkit" / "data"

    @property
    def image_sets(self) -> Path:
        return self.base / "ImageSets" / "CLS-LOC"

    def unreadable(self) -> dict[str, str]:
        return {path: kind for path, kind in self.odd.items() if kind in UNREADABLE_KINDS}


def tree_image(colour: tuple[int, int, int], width: int, height: int,
               rng: np.random.RandomState) -> np.ndarray:
    """An RGB image of one dominant colour with a gradient and noise (JPEG-realistic)."""
    ys, xs = np.mgrid[0:height, 0:width]
    shade = 0.85 + 0.3 * (xs / max(width - 1, 1))
    image = np.asarray(colour, np.float64) * shade[:, :, None]
    image += rng.normal(0, 8, (height, width, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def jpeg_bytes(rgb: np.ndarray, quality: int = 95) -> bytes:
    ok, buffer = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                              [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buffer.tobytes()


def odd_file_bytes(kind: str, rgb: np.ndarray) -> bytes | None:
    """The contents of an odd file of ``kind`` showing ``rgb`` (None: leave it absent)."""
    buffer = io.BytesIO()
    image = Image.fromarray(rgb)
    if kind == "png":
        image.save(buffer, "PNG")
    elif kind == "cmyk":
        image.convert("CMYK").save(buffer, "JPEG", quality=95)  # Adobe APP14, inverted
    elif kind == "gray":
        image.convert("L").save(buffer, "JPEG", quality=95)
    elif kind == "rgba":
        rgba = image.convert("RGBA")
        rgba.putalpha(128)
        rgba.save(buffer, "PNG")
    elif kind == "palette":
        image.convert("P", palette=Image.Palette.ADAPTIVE, colors=32).save(buffer, "PNG")
    elif kind == "absent":
        return None
    elif kind == "empty":
        return b""
    elif kind == "text":
        return b"<html><body>404 Not Found</body></html>\n"
    elif kind == "truncated":
        data = jpeg_bytes(rgb)
        scan = data.index(b"\xff\xda")  # cut in the middle of the entropy-coded data
        return data[:(scan + len(data)) // 2]
    else:
        raise ValueError(f"unknown odd kind {kind!r}; valid: {', '.join(ODD_KINDS)}")
    return buffer.getvalue()


def make_ilsvrc_tree(base: str | Path, classes: int = 3, train_per_class: int = 6,
                     val_per_class: int = 2, blacklist: Iterable[int] = (2,),
                     image_size: tuple[int, int] = (48, 36), odd_train: Iterable[str] = (),
                     odd_val: Iterable[str] = (), seed: int = 0) -> IlsvrcTree:
    """Write a tiny ILSVRC2015 tree at ``base`` (the ``ILSVRC2015`` folder).

    Training images cycle through landscape ``image_size``, its portrait transpose and a
    square; the n-th odd kind in ``odd_train`` replaces the n-th training image (classes
    taken in turn), likewise ``odd_val`` for validation images.
    """
    base = Path(base)
    if not 1 <= classes <= len(TREE_WNIDS):
        raise ValueError(f"classes must lie in 1..{len(TREE_WNIDS)}")
    rng = np.random.RandomState(seed)
    wnids = list(TREE_WNIDS[:classes])
    tree = IlsvrcTree(base, wnids, [f"class_{i}_{w}" for i, w in enumerate(wnids)],
                      {w: TREE_COLOURS[i] for i, w in enumerate(wnids)},
                      blacklist=sorted(blacklist))
    width, height = image_size
    shapes = [(width, height), (height, width), (width, width)]

    def write_image(rel: str, wnid: str, number: int, kind: str | None) -> None:
        w, h = shapes[number % len(shapes)]
        rgb = tree_image(tree.colours[wnid], w, h, rng)
        path = tree.images / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        data = jpeg_bytes(rgb) if kind is None else odd_file_bytes(kind, rgb)
        if data is not None:
            path.write_bytes(data)
        tree.sizes[rel] = (w, h)
        if kind is not None:
            tree.odd[rel] = kind

    odd_train, odd_val = list(odd_train), list(odd_val)
    for j in range(train_per_class):
        for c, wnid in enumerate(wnids):
            position = j * classes + c
            rel = f"train/{wnid}/{wnid}_{100 + j}.JPEG"
            write_image(rel, wnid, j,
                        odd_train[position] if position < len(odd_train) else None)
            tree.train.append((rel, wnid))
    for n in range(val_per_class * classes):
        wnid = wnids[(n * 7 + 1) % classes]  # not sorted by class
        rel = f"val/ILSVRC2012_val_{n + 1:08d}.JPEG"
        write_image(rel, wnid, n, odd_val[n] if n < len(odd_val) else None)
        tree.val.append((rel, wnid))

    def write_lines(path: Path, lines: Iterable[str]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")

    write_lines(tree.devkit / "map_clsloc.txt",
                [f"{w} {i + 1} {n}" for i, (w, n) in enumerate(zip(wnids, tree.names))])
    train_sorted = sorted(rel for rel, _ in tree.train)
    write_lines(tree.image_sets / "train_cls.txt",
                [f"{rel[len('train/'):-len('.JPEG')]} {i + 1}"
                 for i, rel in enumerate(train_sorted)])
    write_lines(tree.image_sets / "val.txt",
                [f"{Path(rel).stem} {i + 1}" for i, (rel, _) in enumerate(tree.val)])
    write_lines(tree.devkit / "ILSVRC2015_clsloc_validation_ground_truth.txt",
                [str(wnids.index(w) + 1) for _, w in tree.val])
    write_lines(tree.devkit / "ILSVRC2015_clsloc_validation_blacklist.txt",
                [str(i) for i in tree.blacklist])
    return tree


def write_config(path: str | Path, base: str | Path, output: str | Path,
                 **overrides: Any) -> Path:
    """Write a config module for the tree at ``base``, with records under ``output``.

    It starts from ``config.demo_googlenet_config`` (so training settings are there) and
    sets every dataset path; keyword arguments override any upper-case field
    (``NUM_CLASSES=5``, ``RESIZE=40``, ...). Written by :func:`config_with`.
    """
    path, base, output = Path(path), Path(base), Path(output)
    fields: dict[str, Any] = {
        "MX_OUTPUT": str(output),
        "BASE_PATH": str(base),
        "IMAGES_PATH": str(base / "Data" / "CLS-LOC"),
        "IMAGE_SETS_PATH": str(base / "ImageSets" / "CLS-LOC"),
        "DEVKIT_PATH": str(base / "devkit" / "data"),
        "WORD_IDS": str(base / "devkit" / "data" / "map_clsloc.txt"),
        "TRAIN_LIST": str(base / "ImageSets" / "CLS-LOC" / "train_cls.txt"),
        "VAL_LIST": str(base / "ImageSets" / "CLS-LOC" / "val.txt"),
        "VAL_LABELS": str(base / "devkit" / "data"
                          / "ILSVRC2015_clsloc_validation_ground_truth.txt"),
        "VAL_BLACKLIST": str(base / "devkit" / "data"
                             / "ILSVRC2015_clsloc_validation_blacklist.txt"),
        "NUM_CLASSES": 3,
        "NUM_TEST_IMAGES": 3,
        "TEST_SPLIT_SEED": 42,
        "LABEL_ORDER": "map_clsloc",
        "TRAIN_MX_LIST": str(output / "lists" / "train.lst"),
        "VAL_MX_LIST": str(output / "lists" / "val.lst"),
        "TEST_MX_LIST": str(output / "lists" / "test.lst"),
        "TRAIN_MX_REC": str(output / "rec" / "train.rec"),
        "VAL_MX_REC": str(output / "rec" / "val.rec"),
        "TEST_MX_REC": str(output / "rec" / "test.rec"),
        "DATASET_MEAN": str(output / "rec" / "mean.json"),
        "RESIZE": 32,
        "INPUT_SIZE": 28,
        "ENCODING_QUALITY": 95,
        "BUILD_THREADS": 1,
    }
    fields.update(overrides)
    return config_with("config.demo_googlenet_config", path, **fields)


@pytest.fixture
def make_tree() -> Callable[..., IlsvrcTree]:
    """Factory: ``make_tree(base, **kwargs)`` is :func:`make_ilsvrc_tree`."""
    return make_ilsvrc_tree


@pytest.fixture
def make_config() -> Callable[..., Path]:
    """Factory: ``make_config(path, base, output, **fields)`` is :func:`write_config`."""
    return write_config


@pytest.fixture
def ilsvrc_tree(tmp_path: Path) -> IlsvrcTree:
    """A clean tiny tree: 3 classes x 6 training images, 6 validation images (1 blacklisted)."""
    return make_ilsvrc_tree(tmp_path / "ILSVRC2015")


@pytest.fixture
def ilsvrc_config(tmp_path: Path, ilsvrc_tree: IlsvrcTree) -> Path:
    """A config ``.py`` for ``ilsvrc_tree`` with records under ``tmp_path / "out"``."""
    return write_config(tmp_path / "tiny_config.py", ilsvrc_tree.base, tmp_path / "out")


@pytest.fixture(scope="session")
def tiny_dataset_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A finished tiny record dataset (4 classes, 32x32 stored images, 28x28 crops).

    Returns the config ``.py`` path; load it with ``pyimagesearch.config.load_config``.
    Built once per session (about a second); treat it as read-only.
    """
    from pyimagesearch.config import load_config
    from pyimagesearch.data.build.builder import build_dataset

    root = tmp_path_factory.mktemp("tiny_dataset")
    tree = make_ilsvrc_tree(root / "ILSVRC2015", classes=4, train_per_class=10,
                            val_per_class=3, blacklist=(5,))
    config = write_config(root / "tiny_dataset_config.py", tree.base, root / "out",
                          NUM_CLASSES=4, NUM_TEST_IMAGES=8)
    build_dataset(load_config(str(config)))
    return config


# ===================================================================================
# 2. Config files
# ===================================================================================

def config_with(start: str | Path, path: str | Path, **fields: Any) -> Path:
    """Write the config ``path``: ``start`` with the upper-case ``fields`` set after it.

    ``start`` is a config module's name (``"config.demo_cifar_config"``, imported, so
    paths it derives from its own location stay right) or the path of a config ``.py``
    (copied). Values must be literals (``repr`` round-trips). The one writer of test
    configs: every other helper here calls it.
    """
    path = Path(path)
    for name in fields:
        if not name.isupper():
            raise ValueError(f"config fields are upper-case: {name}")
    if Path(str(start)).suffix == ".py":
        head = Path(start).read_text(encoding="utf-8").rstrip("\n") + "\n"
    else:
        head = (f'"""Generated by tests/conftest.py:config_with."""\n'
                f"from {start} import *  # noqa: F403\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(head + "".join(f"{name} = {value!r}\n" for name, value in fields.items()),
                    encoding="utf-8")
    return path


def write_cifar_config(path: str | Path, cifar_root: str | Path, output: str | Path,
                       **overrides: Any) -> Path:
    """A config on top of ``config.demo_cifar_config`` reading the CIFAR files at
    ``cifar_root`` and writing records under ``output``; keyword arguments override any
    upper-case field."""
    output = Path(output)
    fields: dict[str, Any] = {
        "CIFAR_ROOT": str(cifar_root),
        "FAKE_CIFAR": None,
        "MX_OUTPUT": str(output),
        "TRAIN_MX_REC": str(output / "train.rec"),
        "VAL_MX_REC": str(output / "val.rec"),
        "TEST_MX_REC": str(output / "test.rec"),
        "DATASET_MEAN": str(output / "mean.json"),
        "MEAN_IMAGE": str(output / "mean.nd"),
        "DECODE_THREADS": 1,
    }
    fields.update(overrides)
    return config_with("config.demo_cifar_config", path, **fields)


# Small batches (the tiny dataset's 32 training images make 4 updates an epoch), one decode
# thread, a fixed seed.
TINY = {"BATCH_SIZE": 8, "LOG_INTERVAL": 2, "DECODE_THREADS": 1, "SEED": 3}


@pytest.fixture(scope="session")
def tiny_config(tiny_dataset_config: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The session's tiny dataset with :data:`TINY`'s settings, as a config ``.py`` path."""
    folder = tmp_path_factory.mktemp("tiny_config")
    return str(config_with(tiny_dataset_config, folder / "tiny_config.py", **TINY))


# ===================================================================================
# 3. Waiting for another process
# ===================================================================================

# Long enough for a busy 2-core machine shared by several test runs; waits end at the
# event, so the deadline costs nothing when things work.
DEADLINE = 300.0


def wait_for(condition: Callable[[], Any], what: str, process: subprocess.Popen | None = None,
             seconds: float = DEADLINE, interval: float = 0.02) -> Any:
    """Poll ``condition`` until it returns something true, and return that.

    Fails (naming ``what``) when ``seconds`` pass, or when ``process`` exits first (with
    its output, if it was piped).
    """
    end = time.monotonic() + seconds
    while True:
        value = condition()
        if value:
            return value
        if process is not None and process.poll() is not None:
            out, err = process.communicate()
            pytest.fail(f"the process exited ({process.returncode}) before {what}:\n"
                        f"{(out or '')[-3000:]}\n{(err or '')[-3000:]}")
        if time.monotonic() > end:
            pytest.fail(f"no {what} within {seconds:g} s")
        time.sleep(interval)


class LineReader:
    """Lines of a text pipe, read by a thread, so a test can wait for one with a deadline."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: list[str] = []
        self.closed = False
        self._condition = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            with self._condition:
                self.lines.append(line.rstrip("\n"))
                self._condition.notify_all()
        with self._condition:
            self.closed = True
            self._condition.notify_all()

    def wait_for(self, text: str, count: int = 1, deadline: float = DEADLINE) -> list[str]:
        """Wait until ``count`` lines contain ``text``; return the lines read so far."""
        end = time.monotonic() + deadline
        with self._condition:
            while sum(text in line for line in self.lines) < count:
                left = end - time.monotonic()
                if self.closed or left <= 0:
                    why = "the stream closed" if self.closed else f"{deadline:g} s passed"
                    pytest.fail(f"{why} before {count} line(s) with {text!r}:\n"
                                + "\n".join(self.lines[-40:]))
                self._condition.wait(left)
            return list(self.lines)

    def rest(self, deadline: float = DEADLINE) -> list[str]:
        """Every line, once the stream has closed."""
        self._thread.join(deadline)
        assert self.closed, f"the stream is still open after {deadline:g} s"
        return list(self.lines)


# ===================================================================================
# 4. One tiny trained run
# ===================================================================================

@pytest.fixture(scope="session")
def tiny_run(tiny_config: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A GoogLeNet run on the tiny dataset, prefix ``net``; its config is
    ``RUN.parent / "config.py"`` (:data:`TINY` and the health monitor below).

    Trained for epochs 0-1, restarted from checkpoint 1 with ``--lr 1e-4`` to checkpoint 3
    (two logs to stitch), the health monitor warning at every update, and the test split
    scored for checkpoint 3 (``net-0003-test.json``). Read-only: copy it
    (:func:`linked_copy`) to write into it.
    """
    import test_googlenet
    import train_googlenet

    root = tmp_path_factory.mktemp("tiny_run")
    config = config_with(tiny_config, root / "config.py", HEALTH={
        "interval": 1, "dead_fraction": 0.0, "patience": 1})
    run = root / "run"
    base = ["--config", str(config), "--checkpoints", str(run), "--prefix", "net"]
    assert train_googlenet.main([*base, "--end-epoch", "2"]) == 0
    assert train_googlenet.main([*base, "--start-epoch", "1", "--end-epoch", "3",
                                 "--lr", "1e-4"]) == 0
    assert test_googlenet.main([*base, "--epoch", "3"]) == 0
    return run


def run_config(run: Path) -> str:
    """The config ``.py`` that :func:`tiny_run`'s run was trained with."""
    return str(run.parent / "config.py")


def linked_copy(folder: Path, destination: Path) -> Path:
    """A copy of ``folder`` whose weights and optimizer states are hard links (they are
    large, and the project only ever replaces them by renaming); logs, manifests and the
    rest are real copies, free to append to. Change copied weights only through
    :func:`rewrite_checkpoint_params`."""
    def link_or_copy(source: str, target: str) -> None:
        if source.endswith((".params", ".states")):
            os.link(source, target)
        else:
            shutil.copy2(source, target)

    shutil.copytree(folder, destination, copy_function=link_or_copy)
    return destination


def rewrite_checkpoint_params(folder: Path, prefix: str, epoch: int,
                              change: Callable[[dict[str, Any]], None]) -> None:
    """Let ``change`` edit checkpoint ``epoch``'s arrays (``{"arg:name": NDArray}``), then
    save them as a new file and record its size and SHA-256 in the manifest, as a
    checkpoint written with those weights would have them."""
    import mxnet as mx

    from pyimagesearch.files import sha256_file

    params_file = folder / f"{prefix}-{epoch:04d}.params"
    arrays = mx.nd.load(str(params_file))
    change(arrays)
    params_file.unlink()  # a new file: a hard-linked original stays as it was
    mx.nd.save(str(params_file), arrays)
    manifest_file = folder / f"{prefix}-{epoch:04d}.json"
    manifest = json.loads(manifest_file.read_text())
    manifest["files"]["params"].update(bytes=params_file.stat().st_size,
                                       sha256=sha256_file(params_file))
    manifest_file.unlink()
    manifest_file.write_text(json.dumps(manifest, indent=2, sort_keys=True))
