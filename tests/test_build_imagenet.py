"""build_imagenet.py end to end on tiny trees with every kind of odd and damaged file."""

from __future__ import annotations

import hashlib
import io
import multiprocessing
import re
import signal
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import mxnet as mx
import numpy as np
import pytest
from conftest import (
    DEADLINE,
    ODD_KINDS,
    READABLE_ODD_KINDS,
    REPO_ROOT,
    UNREADABLE_KINDS,
    IlsvrcTree,
    jpeg_bytes,
    make_ilsvrc_tree,
    odd_file_bytes,
    tree_image,
    write_config,
)

import build_imagenet
from pyimagesearch.config import load_config
from pyimagesearch.data.build import builder as build
from pyimagesearch.data.build import packing, progress
from pyimagesearch.data.build.builder import build_dataset
from pyimagesearch.data.dataset import SPLITS, DatasetError, load_manifest, load_mean, manifest_path
from pyimagesearch.data.images import (
    UnreadableImage,
    decode_image,
    prepare_stored_image,
    read_image_file,
    resize_shorter,
)
from pyimagesearch.data.records.lists import read_list
from pyimagesearch.files import sha256_file
from pyimagesearch.locks import BUILD_LOCK_NAME

RESIZE, INPUT_SIZE = 32, 28
SPLIT_FIELDS = {"train": ("TRAIN_MX_LIST", "TRAIN_MX_REC"),
                "val": ("VAL_MX_LIST", "VAL_MX_REC"), "test": ("TEST_MX_LIST", "TEST_MX_REC")}
EXPECTED_REASON = {"absent": "file not found", "empty": "empty file",
                   "text": "not an image", "truncated": "truncated JPEG"}


def run_main(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = build_imagenet.main(list(args))
    return code, out.getvalue(), err.getvalue()


def files_of(folder: Path) -> dict[str, str]:
    """Relative path -> SHA-256 of every file under ``folder``."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def split_files(config: Any, split: str) -> tuple[Path, Path, Path]:
    lst, rec = (Path(getattr(config, name)) for name in SPLIT_FIELDS[split])
    return lst, rec, rec.with_suffix(".idx")


def expected_shape(width: int, height: int) -> tuple[int, int, int]:
    if height <= width:
        return RESIZE, int(width * RESIZE / height + 0.5), 3
    return int(height * RESIZE / width + 0.5), RESIZE, 3


@dataclass
class Build:
    tree: IlsvrcTree
    config: Any
    output: Path
    manifest: dict[str, Any]
    stdout: str
    stderr: str


@pytest.fixture(scope="module")
def odd_build(tmp_path_factory: pytest.TempPathFactory) -> Build:
    """One build (two worker processes) of a tree holding every odd and damaged kind."""
    root = tmp_path_factory.mktemp("odd_build")
    tree = make_ilsvrc_tree(root / "ILSVRC2015", classes=3, train_per_class=8,
                            val_per_class=2, blacklist=(4,), odd_train=ODD_KINDS,
                            odd_val=("cmyk", "absent"))
    config_path = write_config(root / "config.py", tree.base, root / "out", BUILD_THREADS=2,
                               NUM_TEST_IMAGES=6, RESIZE=RESIZE, INPUT_SIZE=INPUT_SIZE)
    code, stdout, stderr = run_main("--config", str(config_path))
    assert code == 0, stderr
    config = load_config(str(config_path))
    return Build(tree, config, root / "out", load_manifest(config), stdout, stderr)


# --- counts, summary, manifest -----------------------------------------------------------
def test_every_listed_file_is_written_or_reported(odd_build):
    tree, manifest = odd_build.tree, odd_build.manifest
    for split in SPLITS:
        entry = manifest["splits"][split]
        lst = split_files(odd_build.config, split)[0]
        assert entry["listed"] == len(read_list(lst))
        assert entry["written"] + len(entry["skipped"]) == entry["listed"]
        assert entry["count"] == entry["written"]
        match = re.search(rf"^{split}:\s+listed (\d+) = written (\d+) \+ skipped (\d+)$",
                          odd_build.stdout, re.MULTILINE)
        assert match, odd_build.stdout
        assert [int(g) for g in match.groups()] == [entry["listed"], entry["written"],
                                                    len(entry["skipped"])]
    splits = manifest["splits"]
    assert splits["train"]["listed"] + splits["test"]["listed"] == len(tree.train)
    assert splits["test"]["listed"] == 6
    assert splits["val"]["listed"] == len(tree.val) - 1  # one blacklisted

    skipped = {item["path"]: item["reason"] for split in SPLITS
               for item in manifest["splits"][split]["skipped"]}
    assert skipped.keys() == tree.unreadable().keys()
    for path, kind in tree.unreadable().items():
        assert EXPECTED_REASON[kind] in skipped[path]
        assert f"{path}: {skipped[path]}" in odd_build.stdout


def test_manifest_describes_the_dataset(odd_build):
    manifest, config, tree = odd_build.manifest, odd_build.config, odd_build.tree
    assert manifest_path(config) == odd_build.output / "rec" / "manifest.json"
    assert manifest["label_order"] == "map_clsloc"
    assert manifest["classes"] == [{"wnid": w, "label": i, "name": n, "class_id": i + 1}
                                   for i, (w, n) in enumerate(zip(tree.wnids, tree.names))]
    assert (manifest["resize"], manifest["quality"], manifest["input_size"]) == (32, 95, 28)
    assert manifest["mean"] == load_mean(config.DATASET_MEAN)
    assert manifest["build"]["test_split"] == {"num_test_images": 6, "seed": 42}
    assert manifest["build_seconds"] > 0 and manifest["created"]
    assert {"python", "mxnet", "numpy", "opencv", "pillow"} <= manifest["tools"].keys()
    for name, source in manifest["sources"].items():
        assert source["path"] == getattr(config, name)
        assert source["sha256"] == sha256_file(source["path"])
    for split in SPLITS:
        entry = manifest["splits"][split]
        for kind, path in zip(("lst", "rec", "idx"), split_files(config, split)):
            assert Path(entry[f"{kind}_path"]) == path
            assert entry[f"{kind}_bytes"] == path.stat().st_size
            assert entry[f"{kind}_sha256"] == sha256_file(path)
        assert entry["rec"] == f"{split}.rec" and entry["idx"] == f"{split}.idx"
    leftovers = [p for p in odd_build.output.rglob("*") if ".partial-" in p.name]
    assert not leftovers


def test_missing_manifest_is_a_clear_error(tmp_path):
    config = load_config(str(write_config(tmp_path / "c.py", tmp_path, tmp_path / "none")))
    with pytest.raises(DatasetError, match=r"manifest.json: dataset manifest not found"):
        load_manifest(config)
    with pytest.raises(DatasetError, match=r"mean.json: mean file not found"):
        load_mean(config.DATASET_MEAN)
    (tmp_path / "bad.json").write_text('{"R": 1, "G": 2}')
    with pytest.raises(DatasetError, match=r"bad.json: mean file lacks .* 'B'"):
        load_mean(tmp_path / "bad.json")


# --- reading the records back ------------------------------------------------------------
def written_entries(build: Build, split: str) -> list:
    skipped = {item["path"] for item in build.manifest["splits"][split]["skipped"]}
    return [e for e in read_list(split_files(build.config, split)[0]) if e.path not in skipped]


@pytest.mark.parametrize("split", SPLITS)
def test_records_hold_every_written_image_with_its_label(odd_build, split):
    tree = odd_build.tree
    entries = written_entries(odd_build, split)
    _, rec_path, idx_path = split_files(odd_build.config, split)
    record = mx.recordio.MXIndexedRecordIO(str(idx_path), str(rec_path), "r")
    try:
        assert record.keys == [e.index for e in entries]
        for entry in entries:
            header, bgr = mx.recordio.unpack_img(record.read_idx(entry.index))
            assert (header.flag, header.label, header.id, header.id2) == \
                (0, float(entry.label), entry.index, 0)
            assert bgr.shape == expected_shape(*tree.sizes[entry.path])
            rgb_mean = bgr.reshape(-1, 3).mean(axis=0)[::-1]
            kind = tree.odd.get(entry.path)
            if kind == "gray":
                assert np.ptp(rgb_mean) < 2  # stored as 3 equal channels
            else:  # the class colour survives, whatever the file format (CMYK included)
                colour = tree.colours[tree.wnids[entry.label]]
                assert np.abs(rgb_mean - colour).max() < 12, (entry.path, kind, rgb_mean)
    finally:
        record.close()
    decodable = {k for p, k in tree.odd.items() if k in READABLE_ODD_KINDS}
    if split == "val":
        assert "cmyk" in {tree.odd.get(e.path) for e in entries}
    if split != "val":
        all_kinds = {tree.odd.get(e.path) for s in ("train", "test")
                     for e in written_entries(odd_build, s)}
        assert decodable <= all_kinds


def test_mean_is_the_average_of_stored_training_images(odd_build):
    # The mean is taken from the pixels the workers encode (no second decode) ...
    entries = written_entries(odd_build, "train")
    encoded = [prepare_stored_image(odd_build.tree.images / entry.path, RESIZE, 95,
                                    with_mean=True).mean_rgb for entry in entries]
    red, green, blue = np.mean(encoded, axis=0)
    mean = load_mean(odd_build.config.DATASET_MEAN)
    assert mean == pytest.approx({"R": red, "G": green, "B": blue}, abs=1e-9)
    assert len(encoded) == odd_build.manifest["splits"]["train"]["written"]
    # ... and is the mean of the stored images, as ImageRecordIter decodes them, up to
    # JPEG's loss of the average (these tiny noisy images are the worst case for it).
    _, rec_path, idx_path = split_files(odd_build.config, "train")
    record = mx.recordio.MXIndexedRecordIO(str(idx_path), str(rec_path), "r")
    stored = [cv2.mean(mx.recordio.unpack_img(record.read_idx(key))[1])[:3]
              for key in record.keys]
    record.close()
    blue, green, red = np.mean(stored, axis=0)
    assert mean == pytest.approx({"R": red, "G": green, "B": blue}, abs=0.1)
    assert abs(mean["R"] - mean["B"]) > 1  # the channels are not mixed up


@pytest.mark.parametrize("split", SPLITS)
def test_image_record_iter_reads_every_record(odd_build, split):
    entries = written_entries(odd_build, split)
    _, rec_path, idx_path = split_files(odd_build.config, split)
    mean = odd_build.manifest["mean"]
    iterator = mx.io.ImageRecordIter(
        path_imgrec=str(rec_path), path_imgidx=str(idx_path), data_shape=(3, 28, 28),
        batch_size=4, shuffle=False, rand_crop=True, rand_mirror=True,
        mean_r=mean["R"], mean_g=mean["G"], mean_b=mean["B"], preprocess_threads=1)
    labels = []
    for batch in iterator:
        assert batch.data[0].shape == (4, 3, 28, 28)
        labels += batch.label[0].asnumpy()[:4 - batch.pad].tolist()
    assert labels == [float(e.label) for e in entries]


def test_records_do_not_depend_on_the_worker_count(odd_build, tmp_path):
    config = write_config(tmp_path / "c.py", odd_build.tree.base, tmp_path / "out",
                          BUILD_THREADS=1, NUM_TEST_IMAGES=6, RESIZE=RESIZE,
                          INPUT_SIZE=INPUT_SIZE)
    manifest = build_dataset(load_config(str(config)))
    for split in SPLITS:
        for key in ("lst_sha256", "rec_sha256", "idx_sha256"):
            assert manifest["splits"][split][key] == odd_build.manifest["splits"][split][key]


# --- decoding odd files --------------------------------------------------------------------
@pytest.mark.parametrize("kind", READABLE_ODD_KINDS)
def test_odd_but_readable_files_decode_to_rgb(kind):
    rgb = tree_image((200, 90, 40), 40, 30, np.random.RandomState(0))
    decoded = decode_image(odd_file_bytes(kind, rgb))
    assert decoded.shape == (30, 40, 3) and decoded.dtype == np.uint8
    if kind == "gray":
        assert (decoded[..., 0] == decoded[..., 1]).all()
        assert (decoded[..., 1] == decoded[..., 2]).all()
    else:
        tolerance = 12 if kind == "palette" else 4
        assert np.abs(decoded.astype(float) - rgb).mean() < tolerance


@pytest.mark.parametrize("kind", UNREADABLE_KINDS)
def test_unreadable_files_are_refused_with_a_reason(tmp_path, kind):
    rgb = tree_image((200, 90, 40), 40, 30, np.random.RandomState(0))
    path = tmp_path / "x.JPEG"
    data = odd_file_bytes(kind, rgb)
    if data is not None:
        path.write_bytes(data)
    with pytest.raises(UnreadableImage, match=EXPECTED_REASON[kind]):
        read_image_file(path)


def test_truncation_is_caught_where_opencv_only_warns():
    data = odd_file_bytes("truncated", tree_image((10, 200, 10), 64, 48,
                                                  np.random.RandomState(1)))
    assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) is not None
    with pytest.raises(UnreadableImage, match="truncated JPEG"):
        decode_image(data, draft_size=16)


def test_draft_decoding_keeps_the_shorter_side_large_enough():
    data = jpeg_bytes(tree_image((90, 90, 200), 800, 600, np.random.RandomState(2)))
    decoded = decode_image(data, draft_size=100)
    assert decoded.shape == (150, 200, 3)  # DCT-scaled by 4, not below 100
    assert decode_image(data).shape == (600, 800, 3)


def test_resize_shorter_side():
    assert resize_shorter(np.zeros((36, 48, 3), np.uint8), 32).shape == (32, 43, 3)
    assert resize_shorter(np.zeros((48, 36, 3), np.uint8), 32).shape == (43, 32, 3)
    assert resize_shorter(np.zeros((20, 30, 3), np.uint8), 40).shape == (40, 60, 3)
    image = np.zeros((32, 50, 3), np.uint8)
    assert resize_shorter(image, 32) is image


# --- refusals and failures ---------------------------------------------------------------
@pytest.mark.parametrize("odd", ["absent", "truncated"])
def test_strict_fails_and_writes_nothing(tmp_path, odd):
    tree = make_ilsvrc_tree(tmp_path / "ILSVRC2015", odd_train=("png", odd))
    config = write_config(tmp_path / "c.py", tree.base, tmp_path / "out")
    code, stdout, stderr = run_main("--config", str(config), "--strict")
    assert code == 1
    bad = next(path for path, kind in tree.odd.items() if kind == odd)
    assert f"{bad}: {EXPECTED_REASON[odd]}" in stderr
    assert "--strict" in stderr and not stdout
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file()]


def test_resize_below_the_crop_size_is_refused_before_any_work(tmp_path, ilsvrc_tree):
    config = write_config(tmp_path / "c.py", ilsvrc_tree.base, tmp_path / "out",
                          RESIZE=24, INPUT_SIZE=28)
    code, _, stderr = run_main("--config", str(config))
    assert code == 2
    assert "RESIZE=24 is smaller than INPUT_SIZE=28" in stderr
    assert not (tmp_path / "out").exists()


def _fail_on_third_image(monkeypatch):
    original, calls = packing._process_one, []

    def failing(settings, entry):
        calls.append(entry)
        if len(calls) == 3:
            raise RuntimeError("simulated worker failure")
        return original(settings, entry)

    monkeypatch.setattr(packing, "_process_one", failing)


def _fail_writing_the_mean(monkeypatch):
    def failing(path, mean):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(build, "write_mean", failing)


@pytest.mark.parametrize("sabotage", [_fail_on_third_image, _fail_writing_the_mean])
def test_failed_build_leaves_the_previous_dataset_untouched(tmp_path, ilsvrc_config,
                                                            monkeypatch, sabotage):
    config = load_config(str(ilsvrc_config))
    build_dataset(config)
    before = files_of(tmp_path / "out")
    assert "rec/manifest.json" in before and "rec/train.rec" in before
    sabotage(monkeypatch)
    with pytest.raises((RuntimeError, OSError)):
        build_dataset(config)
    assert files_of(tmp_path / "out") == before  # no partial files either


def test_interrupt_stops_the_worker_processes(tmp_path, ilsvrc_tree, monkeypatch):
    config = write_config(tmp_path / "c.py", ilsvrc_tree.base, tmp_path / "out",
                          BUILD_THREADS=2)
    original, calls = progress.Progress.update, []

    def interrupted(self, count=1):
        calls.append(count)
        if len(calls) == 3:
            raise KeyboardInterrupt
        original(self, count)

    monkeypatch.setattr(progress.Progress, "update", interrupted)
    with pytest.raises(KeyboardInterrupt):
        build_dataset(load_config(str(config)))
    assert not multiprocessing.active_children()
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file()]


KILLER = """
import os, signal, sys
sys.path.insert(0, {repo!r})
from pyimagesearch.data.build import packing
original, calls = packing._process_one, []
def dying(settings, entry):
    calls.append(entry)
    if len(calls) == 5:
        os.kill(os.getpid(), signal.SIGKILL)
    return original(settings, entry)
packing._process_one = dying
import build_imagenet
sys.exit(build_imagenet.main(["--config", {config!r}]))
"""


def test_killed_build_leaves_no_finished_record(tmp_path, ilsvrc_tree):
    config_path = write_config(tmp_path / "c.py", ilsvrc_tree.base, tmp_path / "out")
    config = load_config(str(config_path))
    out = tmp_path / "out"

    # A build killed (SIGKILL, no chance to clean up) in its first split, with no
    # previous dataset: nothing final-named exists, only .partial-<pid> files.
    script = KILLER.format(repo=str(REPO_ROOT), config=str(config_path))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=DEADLINE)
    assert result.returncode == -signal.SIGKILL, result.stderr.decode()
    names = sorted(p.name for p in out.rglob("*") if p.is_file() and p.name != BUILD_LOCK_NAME)
    assert names and all(".partial-" in name for name in names), names
    assert any(name.startswith("train.rec.partial-") for name in names)
    with pytest.raises(DatasetError, match="manifest not found"):
        load_manifest(config)

    # The next build removes the dead build's leftovers and completes.
    manifest = build_dataset(config)
    assert not [p for p in out.rglob("*") if ".partial-" in p.name]
    assert load_manifest(config)["splits"]["train"]["rec_sha256"] == \
        manifest["splits"]["train"]["rec_sha256"]

    # Killed again, now over a complete dataset: the dataset is untouched.
    before = files_of(out)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=DEADLINE)
    assert result.returncode == -signal.SIGKILL
    after = {name: digest for name, digest in files_of(out).items()
             if ".partial-" not in name and not name.endswith(BUILD_LOCK_NAME)}
    assert after == before
