"""The embedded digits mini-ILSVRC: real formats, counts, determinism, idempotence."""

from __future__ import annotations

import hashlib
import io
import subprocess
from collections import Counter
from contextlib import redirect_stdout
from pathlib import Path

import numpy as np
import pytest
from conftest import write_config
from PIL import Image
from sklearn.datasets import load_digits

import build_demo_dataset
from pyimagesearch.config import Settings, load_config
from pyimagesearch.data.build.builder import build_dataset
from pyimagesearch.data.dataset import DatasetError
from pyimagesearch.data.sources import demo as demo_dataset
from pyimagesearch.data.sources.demo import DIGIT_CLASSES, write_demo_dataset
from pyimagesearch.data.sources.imagenethelper import ImageNetHelper

DEMO_FIELDS = {"NUM_CLASSES": 10, "NUM_TEST_IMAGES": 300, "RESIZE": 64, "INPUT_SIZE": 56,
               "DEMO_VAL_PER_CLASS": 30, "DEMO_BLACKLIST_SIZE": 12, "DEMO_IMAGE_SIZE": 64,
               "DEMO_SEED": 7}


def demo_config(folder: Path, **fields) -> Settings:
    path = write_config(folder / "demo_config.py", folder / "digits" / "ILSVRC2015",
                        folder / "digits", **{**DEMO_FIELDS, **fields})
    return load_config(str(path))


def files_of(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, str]:
    folder = tmp_path_factory.mktemp("demo")
    config = demo_config(folder)
    out = io.StringIO()
    with redirect_stdout(out):
        assert build_demo_dataset.main(["--config", config.source]) == 0
    return config, out.getvalue()


def test_the_tree_reads_as_ilsvrc(demo):
    config, stdout = demo
    helper = ImageNetHelper(config)
    assert [(c.wnid, c.name) for c in helper.classes] == list(DIGIT_CLASSES)
    train_paths, train_labels = helper.build_training_set()
    val_paths, val_labels = helper.build_validation_set()
    digits = load_digits()
    per_class = Counter(digits.target.tolist())
    assert Counter(train_labels) == {d: n - 30 for d, n in per_class.items()}
    assert len(train_paths) == len(digits.target) - 300 == 1497
    assert len(val_paths) == 300 - 12
    before = val_labels_before_blacklist(config)
    assert Counter(before) == {digit: 30 for digit in range(10)}
    dropped = set(blacklist(config))
    assert Counter(val_labels) == Counter(label for i, label in enumerate(before, start=1)
                                          if i not in dropped)
    assert "10 classes, 1497 training images, 300 validation images (12 blacklisted)" in stdout
    # Every training file is the sklearn digit its name says, of its class.
    for path, label in zip(train_paths, train_labels):
        sample = int(Path(path).stem.split("_")[1])
        assert digits.target[sample] == label


def val_labels_before_blacklist(config: Settings) -> list[int]:
    return [int(line) - 1 for line in Path(config.VAL_LABELS).read_text().split()]


def blacklist(config: Settings) -> list[int]:
    return [int(line) for line in Path(config.VAL_BLACKLIST).read_text().split()]


def test_label_orders_differ(demo):
    config, _ = demo
    sorted_labels = ImageNetHelper(config.replace(LABEL_ORDER="sorted_wnid")).build_class_labels()
    assert sorted_labels == {w: i for i, w in enumerate(sorted(w for w, _ in DIGIT_CLASSES))}
    assert sorted_labels != ImageNetHelper(config).build_class_labels()


def test_images_are_coloured_rgb_jpegs(demo):
    config, _ = demo
    paths = sorted(Path(config.IMAGES_PATH).rglob("*.JPEG"))
    assert len(paths) == 1797
    means = []
    for path in paths[::40]:
        with Image.open(path) as image:
            assert (image.format, image.mode, image.size) == ("JPEG", "RGB", (64, 64))
            means.append(np.asarray(image).reshape(-1, 3).mean(axis=0))
    red, green, blue = np.mean(means, axis=0)
    assert red - green > 20 and green - blue > 20  # a channel swap cannot go unnoticed


def test_second_run_does_nothing(demo):
    config, _ = demo
    base = Path(config.BASE_PATH)
    before = {p: p.stat().st_mtime_ns for p in base.rglob("*")}
    result = write_demo_dataset(config)
    assert not result.created and "already complete" in result.summary()
    assert {p: p.stat().st_mtime_ns for p in base.rglob("*")} == before


def test_deterministic_and_replaced_when_parameters_change(demo, tmp_path):
    config, _ = demo
    other = demo_config(tmp_path)
    # The temporary tree of a run that died is cleaned up.
    dead = subprocess.Popen(["true"])
    dead.wait()
    leftover = Path(other.BASE_PATH).parent / f".ILSVRC2015.partial-{dead.pid}"
    leftover.mkdir(parents=True)
    (leftover / "junk").write_text("half-written")

    assert write_demo_dataset(other).created
    assert not leftover.exists()
    assert files_of(Path(other.BASE_PATH)) == files_of(Path(config.BASE_PATH))

    changed = demo_config(tmp_path, DEMO_BLACKLIST_SIZE=5)
    assert write_demo_dataset(changed).created
    assert len(blacklist(changed)) == 5
    assert not list(Path(changed.BASE_PATH).parent.glob(".ILSVRC2015.*"))


def test_interrupted_run_leaves_nothing_final(tmp_path, monkeypatch):
    config = demo_config(tmp_path)

    def interrupted(root, config, parameters):
        (root / "Data").mkdir(parents=True)
        raise KeyboardInterrupt

    monkeypatch.setattr(demo_dataset, "_write_tree", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_demo_dataset(config)
    assert not Path(config.BASE_PATH).exists()
    assert not list(Path(config.BASE_PATH).parent.iterdir())


def test_refuses_to_replace_a_folder_it_did_not_write(tmp_path):
    config = demo_config(tmp_path)
    Path(config.BASE_PATH).mkdir(parents=True)
    (Path(config.BASE_PATH) / "precious.txt").write_text("keep me")
    with pytest.raises(DatasetError, match="not written by build_demo_dataset.py"):
        write_demo_dataset(config)
    assert (Path(config.BASE_PATH) / "precious.txt").read_text() == "keep me"


def test_demo_tree_builds_into_records(demo, tmp_path):
    config, _ = demo
    config_path = write_config(tmp_path / "records_config.py", config.BASE_PATH,
                               tmp_path / "out", **DEMO_FIELDS)
    manifest = build_dataset(load_config(str(config_path)))
    counts = {s: (e["listed"], e["written"], len(e["skipped"]))
              for s, e in manifest["splits"].items()}
    assert counts == {"train": (1197, 1197, 0), "val": (288, 288, 0), "test": (300, 300, 0)}
    assert Counter(e["label"] for e in manifest["classes"]) == Counter(range(10))
    mean = manifest["mean"]
    assert mean["R"] > mean["G"] + 20 > mean["B"] + 40
