"""build_cifar.py on small fake CIFAR files in the official formats: records, means, manifest,
what ImageRecordIter makes of them (per-pixel mean, 4-pixel pad + random crop + flip), and
refusal of a malicious pickle."""

from __future__ import annotations

import dataclasses
import os
import pickle
import shlex
from pathlib import Path

import cv2
import mxnet as mx
import numpy as np
import pytest
from conftest import write_cifar_config

import build_cifar
from pyimagesearch.config import ConfigError, load_config
from pyimagesearch.data.build import cifar as cifar_records
from pyimagesearch.data.build.cifar import build_cifar_dataset
from pyimagesearch.data.dataset import check_dataset, load_manifest
from pyimagesearch.data.iterators import (
    Normalizer,
    evaluation_iterator,
    training_iterator,
)
from pyimagesearch.data.sources.cifar import train_val_indices
from pyimagesearch.data.sources.cifar_format import CIFAR10_CLASSES
from pyimagesearch.data.sources.cifar_writer import write_cifar, write_fake_cifar
from pyimagesearch.files import sha256_file
from pyimagesearch.locks import BUILD_LOCK_NAME, FolderLock

PER_BATCH = 40  # 200 training images in five batch files, 40 test images
VAL_SIZE = 40


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    return write_fake_cifar(tmp_path_factory.mktemp("cifar"), images_per_batch=PER_BATCH)


@pytest.fixture(scope="module")
def built(fake, tmp_path_factory):
    """(config, manifest) of a build with the 160/40 train/val split."""
    folder = tmp_path_factory.mktemp("built")
    config = load_config(str(write_cifar_config(folder / "config.py", fake.folder.parent,
                                                folder / "rec", VAL_SIZE=VAL_SIZE)))
    return config, build_cifar_dataset(config)


def split_images(fake, name):
    """The images and labels (and official indices) a split should hold."""
    train_idx, val_idx = train_val_indices(fake.train.labels, VAL_SIZE, 0)
    if name == "test":
        return fake.test.images, fake.test.labels, np.arange(len(fake.test))
    indices = train_idx if name == "train" else val_idx
    return fake.train.images[indices], fake.train.labels[indices], indices


def read_records(rec_path):
    record = mx.recordio.MXIndexedRecordIO(str(Path(rec_path).with_suffix(".idx")),
                                           str(rec_path), "r")
    try:
        for key in record.keys:
            header, payload = mx.recordio.unpack(record.read_idx(key))
            bgr = cv2.imdecode(np.frombuffer(payload, np.uint8), cv2.IMREAD_COLOR)
            yield header, cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), payload
    finally:
        record.close()


def test_counts_manifest_and_checksums(built):
    config, manifest = built
    assert load_manifest(config)["splits"]["train"]["written"] == 160  # the format the core reads
    info = check_dataset(config)
    assert {k: v.count for k, v in info.splits.items()} == {"train": 160, "val": 40, "test": 40}
    assert info.image_size == 32 and info.mean_image == config.MEAN_IMAGE
    assert [c["name"] for c in manifest["classes"]] == list(CIFAR10_CLASSES)
    assert [c["label"] for c in manifest["classes"]] == list(range(10))
    validation = manifest["build"]["validation"]
    assert validation["source"] == "train" and validation["size"] == 40
    for name, count in (("train", 160), ("val", 40), ("test", 40)):
        entry = manifest["splits"][name]
        assert entry["listed"] == entry["written"] == entry["count"] == count
        assert entry["skipped"] == [] and sum(entry["class_counts"]) == count
        rec = Path(config.TRAIN_MX_REC).parent / entry["rec"]
        assert entry["rec_sha256"] == sha256_file(rec)
        assert entry["idx_sha256"] == sha256_file(rec.with_suffix(".idx"))
    assert manifest["splits"]["val"]["class_counts"] == [4] * 10  # stratified
    assert manifest["mean_image_sha256"] == sha256_file(config.MEAN_IMAGE)
    assert set(manifest["sources"]["files"]) == {*(f"data_batch_{i}" for i in range(1, 6)),
                                                 "test_batch", "batches.meta"}
    assert not list(Path(config.TRAIN_MX_REC).parent.glob("*.partial-*"))


def test_means_are_those_of_the_training_split(built, fake):
    config, _ = built
    images = split_images(fake, "train")[0].astype(np.float64)
    mean = load_manifest(config)["mean"]
    np.testing.assert_allclose([mean["R"], mean["G"], mean["B"]], images.mean(axis=(0, 1, 2)),
                               rtol=1e-12)
    saved = mx.nd.load(config.MEAN_IMAGE)
    assert list(saved) == ["mean_img"]
    np.testing.assert_allclose(saved["mean_img"].asnumpy(),
                               images.mean(axis=0).transpose(2, 0, 1), rtol=1e-6)


@pytest.mark.parametrize("name", ["train", "val", "test"])
def test_records_hold_the_original_pixels_exactly(built, fake, name):
    config, _ = built
    images, labels, _ = split_images(fake, name)
    records = list(read_records(getattr(config, f"{name.upper()}_MX_REC")))
    assert len(records) == len(images)
    for key, ((header, rgb, payload), image, label) in enumerate(zip(records, images, labels)):
        assert payload[:8] == b"\x89PNG\r\n\x1a\n"
        np.testing.assert_array_equal(rgb, image)
        assert (header.label, header.id) == (label, key)  # header id == .idx key


def test_evaluation_sees_unpadded_images_minus_the_per_pixel_mean(built, fake):
    config, _ = built
    before = sha256_file(config.MEAN_IMAGE)
    info = check_dataset(config, ("test",))
    outputs, labels = [], []
    normalize = Normalizer(info.mean, info.mean_image)
    for batch in evaluation_iterator(config, info, "test", 16):  # 40 = 16 + 16 + 8 (+8 pad)
        valid = batch.data[0].shape[0] - batch.pad
        assert batch.data[0].dtype == np.uint8  # the mean is subtracted on the device
        outputs.append(normalize(batch.data[0]).asnumpy()[:valid])
        labels.append(batch.label[0].asnumpy()[:valid])
    mean = mx.nd.load(config.MEAN_IMAGE)["mean_img"].asnumpy()
    expected = fake.test.images.transpose(0, 3, 1, 2).astype(np.float32) - mean
    np.testing.assert_allclose(np.concatenate(outputs), expected, atol=1e-4)
    np.testing.assert_array_equal(np.concatenate(labels), fake.test.labels)
    assert sha256_file(config.MEAN_IMAGE) == before  # read, never rewritten by MXNet


def test_training_pads_4_with_the_mean_colour_then_crops_32_at_random_and_flips(built, fake):
    config, _ = built
    assert config.AUGMENTATION == {"pad": 4, "fill_value": 121, "rand_crop": True,
                                   "rand_mirror": True}
    # The mean is set to zero here so outputs are raw pixels that can be matched exactly.
    info = dataclasses.replace(check_dataset(config, ("train", "val")), mean_image=None,
                               mean={"R": 0.0, "G": 0.0, "B": 0.0})
    originals = split_images(fake, "train")[0].transpose(0, 3, 1, 2)  # N, 3, 32, 32
    padded = np.full((len(originals), 3, 40, 40), 121, np.uint8)
    padded[:, :, 4:36, 4:36] = originals
    # Every possible output: (image, vertical shift, horizontal shift, mirrored).
    candidates = {}
    for dy in range(-4, 5):
        for dx in range(-4, 5):
            crops = padded[:, :, 4 + dy:36 + dy, 4 + dx:36 + dx]
            for mirrored, views in ((False, crops), (True, crops[:, :, :, ::-1])):
                for k, view in enumerate(views):
                    candidates.setdefault(np.ascontiguousarray(view).tobytes(),
                                          (k, dy, dx, mirrored))
    found = {}
    for epoch in (0, 1):
        found[epoch] = []
        for batch in training_iterator(config, info, 32, epoch=epoch, seed=5):
            for image in batch.data[0].asnumpy():
                assert np.array_equal(image, np.round(image)) and image.min() >= 0
                key = image.astype(np.uint8).tobytes()
                assert key in candidates, "output is no 4-pixel padded crop of any image"
                found[epoch].append(candidates[key])
        assert len(found[epoch]) == 160
        assert len({k for k, *_ in found[epoch]}) == 160  # each image once per epoch
    assert {tuple(f[1:]) for f in found[0]} != {tuple(f[1:]) for f in found[1]}
    both = found[0] + found[1]
    assert {dy for _, dy, _, _ in both} == set(range(-4, 5))
    assert {dx for _, _, dx, _ in both} == set(range(-4, 5))
    assert {m for *_, m in both} == {False, True}


def test_validation_is_a_copy_of_the_test_set_when_val_size_is_0(fake, tmp_path):
    config = load_config(str(write_cifar_config(tmp_path / "c.py", fake.folder.parent,
                                                tmp_path / "rec", VAL_SIZE=0)))
    manifest = build_cifar_dataset(config)
    validation = manifest["build"]["validation"]
    assert validation["source"] == "test" and "copy" in validation["note"]
    splits = manifest["splits"]
    assert splits["train"]["written"] == 200
    assert splits["val"]["rec_sha256"] == splits["test"]["rec_sha256"]
    assert "VAL_SIZE = 0" in cifar_records.format_summary(manifest)


def test_binary_layout_gives_the_same_records(fake, built, tmp_path):
    write_cifar(tmp_path / "bin", "cifar10", "binary", fake.train, fake.test)
    config = load_config(str(write_cifar_config(tmp_path / "c.py", tmp_path / "bin",
                                                tmp_path / "rec", VAL_SIZE=VAL_SIZE)))
    manifest = build_cifar_dataset(config)
    assert manifest["sources"]["layout"] == "binary"
    for name in ("train", "val", "test"):
        assert manifest["splits"][name]["rec_sha256"] == \
            built[1]["splits"][name]["rec_sha256"]


def test_a_failed_build_leaves_the_previous_dataset_as_it_was(built, fake, tmp_path,
                                                              monkeypatch):
    config = load_config(str(write_cifar_config(tmp_path / "c.py", fake.folder.parent,
                                                tmp_path / "rec", VAL_SIZE=VAL_SIZE)))
    build_cifar_dataset(config)
    folder = tmp_path / "rec"
    before = {p.name: sha256_file(p) for p in folder.iterdir()}
    calls = []
    real = cifar_records.pack_split

    def failing(*args):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        real(*args)

    monkeypatch.setattr(cifar_records, "pack_split", failing)
    with pytest.raises(KeyboardInterrupt):
        build_cifar_dataset(config)
    assert {p.name: sha256_file(p) for p in folder.iterdir()} == before


def test_a_second_build_into_the_folder_is_refused_naming_the_first(fake, tmp_path, capsys):
    config = write_cifar_config(tmp_path / "c.py", fake.folder.parent, tmp_path / "rec",
                                VAL_SIZE=VAL_SIZE)
    # A build under way in the output folder (this process holds its lock, through another
    # open file: flock excludes it all the same).
    with FolderLock(tmp_path / "rec", BUILD_LOCK_NAME, "a dataset build"):
        assert build_cifar.main(["--config", str(config)]) == 2
        assert [p.name for p in (tmp_path / "rec").iterdir()] == [BUILD_LOCK_NAME]
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tmp_path / 'rec'} is in use: a dataset build is already "
                          f"running there (pid {os.getpid()} on ")
    assert err.count("\n") == 1


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


def test_build_cifar_refuses_a_malicious_pickle(tmp_path, capsys):
    folder = write_fake_cifar(tmp_path / "cifar", images_per_batch=5).folder
    marker = tmp_path / "marker"
    with open(folder / "data_batch_1", "wb") as handle:
        pickle.dump({b"data": _Payload(marker), b"labels": [0, 1]}, handle, protocol=2)
    config = write_cifar_config(tmp_path / "c.py", folder.parent, tmp_path / "rec", VAL_SIZE=5)
    assert build_cifar.main(["--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert "refusing to load" in err and "data_batch_1" in err and "system" in err
    assert "Nothing in the file was run" in err
    assert not marker.exists()
    assert not (tmp_path / "rec").exists() or not list((tmp_path / "rec").iterdir())


def test_missing_files_and_bad_configs_are_named(fake, tmp_path, capsys):
    absent = write_cifar_config(tmp_path / "a.py", tmp_path / "nowhere", tmp_path / "rec")
    assert build_cifar.main(["--config", str(absent)]) == 2
    assert "does not exist" in capsys.readouterr().err
    for fields, message in (({"RESIZE": 40}, "RESIZE must be 32"),
                            ({"NUM_CLASSES": 100}, "has 10 classes"),
                            ({"VAL_SIZE": -1}, "VAL_SIZE = -1: must be an integer >= 0"),
                            ({"MEAN_IMAGE": str(tmp_path / "rec" / "mean.json")},
                             "must differ")):
        path = write_cifar_config(tmp_path / "b.py", fake.folder.parent, tmp_path / "rec",
                                  **fields)
        with pytest.raises(ConfigError, match=message):
            build_cifar_dataset(load_config(str(path)))


def test_demo_config_writes_fake_files_once(tmp_path, monkeypatch):
    monkeypatch.setenv("CIFAR_DEMO_HOME", str(tmp_path))
    config = load_config(str(Path(__file__).resolve().parent.parent / "config"
                             / "demo_cifar_config.py"))
    manifest = build_cifar_dataset(config)
    assert manifest["build"]["fake"] is True
    assert {k: v["written"] for k, v in manifest["splits"].items()} == \
        {"train": 400, "val": 100, "test": 100}
    batch = tmp_path / "cifar-10-batches-py" / "test_batch"
    written = batch.stat().st_mtime_ns
    build_cifar_dataset(config)  # finds the files of the first build, writes none
    assert batch.stat().st_mtime_ns == written
