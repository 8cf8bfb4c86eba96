"""The dataset contract: one manifest schema, an identity, and every command checking that the
dataset in front of it is the one its checkpoint was trained on."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import (
    REPO_ROOT,
    config_with,
    make_ilsvrc_tree,
    wait_for,
    write_cifar_config,
    write_config,
)

import classify_image
import export_onnx
import report
import test_googlenet
import train_googlenet
import verify_records
from pyimagesearch.config import load_config
from pyimagesearch.data.build.builder import build_dataset
from pyimagesearch.data.build.cifar import build_cifar_dataset
from pyimagesearch.data.dataset import (
    MANIFEST_NAME,
    DatasetError,
    check_dataset,
    identity_digest,
    load_manifest,
    manifest_checksum,
    manifest_path,
    manifest_text,
)
from pyimagesearch.data.dataset import (
    read_manifest as read_dataset_manifest,
)
from pyimagesearch.data.sources.cifar_writer import write_fake_cifar
from pyimagesearch.run.checkpoints import list_checkpoints, read_manifest, resolve_epoch

TRAINING = {"NUM_CLASSES": 4, "NUM_TEST_IMAGES": 8, "BATCH_SIZE": 8, "LOG_INTERVAL": 2,
            "DECODE_THREADS": 1, "SEED": 3, "HEALTH": None}


def build(root: Path, name: str, **fields) -> str:
    """A dataset of the shared tiny tree under ``root/name``; returns its config path."""
    config = write_config(root / f"{name}.py", root / "ILSVRC2015", root / name,
                          **{**TRAINING, **fields})
    build_dataset(load_config(str(config)))
    return str(config)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """One dataset (map_clsloc), one epoch trained on it, and sibling datasets that differ."""
    root = tmp_path_factory.mktemp("contract")
    make_ilsvrc_tree(root / "ILSVRC2015", classes=4, train_per_class=10, val_per_class=3,
                     blacklist=(5,))
    configs = {"trained": build(root, "trained"),
               "sorted": build(root, "sorted", LABEL_ORDER="sorted_wnid"),
               "resized": build(root, "resized", RESIZE=36),
               "other_split": build(root, "other_split", TEST_SPLIT_SEED=7)}
    folder = root / "run"
    assert train_googlenet.main(["--config", configs["trained"], "--checkpoints", str(folder),
                                 "--prefix", "net", "--end-epoch", "1"]) == 0
    return root, folder, configs


def checkpoint_args(folder: Path, config: str, *extra: str) -> list[str]:
    return ["--checkpoints", str(folder), "--prefix", "net", "--epoch", "1", "--config", config,
            *extra]


# --- one schema, one writer, an identity ----------------------------------------------------
def test_every_builder_writes_the_same_schema_with_an_identity(run, tmp_path):
    root, _, configs = run
    ilsvrc = load_manifest(load_config(configs["trained"]))
    fake = write_fake_cifar(tmp_path / "cifar", images_per_batch=20)
    cifar_config = load_config(str(write_cifar_config(tmp_path / "c.py", fake.folder.parent,
                                                      tmp_path / "rec", VAL_SIZE=10,
                                                      BATCH_SIZE=8)))
    cifar = build_cifar_dataset(cifar_config)
    assert set(ilsvrc) - {"path", "sha256"} == set(cifar)
    assert (ilsvrc["format"], ilsvrc["builder"], cifar["builder"]) == (2, "ilsvrc", "cifar")
    for manifest in (ilsvrc, cifar):
        assert manifest["identity"] == identity_digest(manifest)
        for entry in manifest["splits"].values():
            assert {"listed", "written", "count", "skipped", "rec", "idx", "rec_bytes",
                    "rec_sha256", "idx_bytes", "idx_sha256"} <= set(entry)
    assert cifar["mean_image_sha256"] and ilsvrc["mean_image_sha256"] is None


def test_a_rebuild_of_the_same_images_keeps_the_identity_and_another_changes_it(run, tmp_path):
    root, _, configs = run
    first = load_manifest(load_config(configs["trained"]))
    again = load_manifest(load_config(build(root, "again")))
    assert again["identity"] == first["identity"] and again["created"] >= first["created"]
    others = [load_manifest(load_config(configs[name]))["identity"]
              for name in ("sorted", "resized", "other_split")]
    assert len({first["identity"], *others}) == 4


def test_an_edited_manifest_and_a_format_1_manifest(run, tmp_path):
    root, _, configs = run
    folder = tmp_path / "copy"
    shutil.copytree(Path(load_config(configs["trained"]).TRAIN_MX_REC).parent, folder)
    path = folder / MANIFEST_NAME
    original = json.loads(path.read_text())
    edited = {**original, "mean": {"R": 1.0, "G": 2.0, "B": 3.0}}
    path.write_text(manifest_text(edited))
    with pytest.raises(DatasetError, match="edited after the build"):
        read_dataset_manifest(path)
    # Format 1 (build parameters at the top, no builder) was never released: refused.
    old = {key: value for key, value in original.items()
           if key not in ("builder", "build", "encoding", "mean_sha256", "mean_image_file",
                          "mean_image_sha256", "identity")}
    path.write_text(manifest_text({**old, **original["build"], "format": 1}))
    with pytest.raises(DatasetError, match=r"unsupported manifest format 1 \(this version "
                                           r"reads 2\); rebuild the dataset"):
        read_dataset_manifest(path)


# --- the cheap checks every command runs ---------------------------------------------------------
def copy_of(config_path: str, tmp_path: Path) -> str:
    """The dataset of ``config_path`` copied under ``tmp_path``, and a config pointing there."""
    source = Path(load_config(config_path).TRAIN_MX_REC).parent
    shutil.copytree(source, tmp_path / "rec")
    text = Path(config_path).read_text().replace(str(source), str(tmp_path / "rec"))
    path = tmp_path / "copy.py"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("damage, message", [
    ("mean", "differs from the training set's"),
    ("rec", "bytes where the manifest"),
    ("idx", "the index differs from the one built with these records"),
    ("classes", "the records hold 4 classes, the config"),
    ("resize", "the config .* says RESIZE = 40"),
])
def test_damage_or_a_mismatched_config_is_refused_before_training(run, tmp_path, capsys, damage,
                                                                 message):
    _, _, configs = run
    path = copy_of(configs["trained"], tmp_path)
    config = load_config(path)
    if damage == "mean":
        Path(config.DATASET_MEAN).write_text('{"R": 1.0, "G": 2.0, "B": 3.0}\n')
    elif damage == "rec":
        with open(config.TRAIN_MX_REC, "r+b") as handle:
            handle.truncate(os.path.getsize(config.TRAIN_MX_REC) - 4)
    elif damage == "idx":
        idx = Path(config.TRAIN_MX_REC).with_suffix(".idx")
        lines = idx.read_text().splitlines()
        idx.write_text("\n".join([lines[1], lines[0], *lines[2:]]) + "\n")  # same size
    elif damage == "classes":
        path = str(write_config(tmp_path / "five.py", "x", tmp_path / "x", **{
            **{name: getattr(config, name) for name in ("TRAIN_MX_REC", "VAL_MX_REC",
                                                         "TEST_MX_REC", "DATASET_MEAN")},
            **TRAINING, "NUM_CLASSES": 5}))
    elif damage == "resize":
        config_with(path, path, RESIZE=40)
    with pytest.raises(DatasetError, match=message):
        check_dataset(load_config(path), ("train", "val"))
    assert train_googlenet.main(["--config", path, "--checkpoints", str(tmp_path / "out"),
                                 "--prefix", "net"]) == 2
    assert "[ERROR]" in capsys.readouterr().err
    assert not (tmp_path / "out" / "net-0001.json").exists()


def test_verify_records_checks_the_mean_too(run, tmp_path, capsys):
    _, _, configs = run
    path = copy_of(configs["trained"], tmp_path)
    assert verify_records.main(["--config", path, "--hash"]) == 0
    mean = Path(load_config(path).DATASET_MEAN)
    mean.write_text(mean.read_text().replace("\n}", " \n}"))  # same values, other bytes
    capsys.readouterr()
    assert verify_records.main(["--config", path, "--hash"]) == 1
    assert "dataset: FAILED" in capsys.readouterr().out


# --- a checkpoint meets a dataset ---------------------------------------------------------
def test_a_checkpoint_records_its_dataset(run):
    _, folder, configs = run
    recorded = read_manifest(folder, "net", 1)["dataset"]
    manifest = load_manifest(load_config(configs["trained"]))
    assert recorded["identity"]["digest"] == manifest["identity"]
    assert recorded["identity"]["label_order"] == "map_clsloc"
    assert recorded["manifest"] == str(manifest_path(load_config(configs["trained"])))


def test_testing_on_another_label_order_is_refused_naming_both_sides(run, capsys):
    _, folder, configs = run
    capsys.readouterr()
    assert test_googlenet.main(checkpoint_args(folder, configs["sorted"])) == 2
    err = capsys.readouterr().err
    assert "label order: checkpoint 'map_clsloc', dataset 'sorted_wnid'" in err
    assert "sorted" in err and "trained" in err and "--override" in err
    assert test_googlenet.main(checkpoint_args(folder, configs["sorted"], "--override")) == 0
    assert "[WARNING]" in capsys.readouterr().err


def test_testing_on_another_split_is_refused_also_with_all_epochs(run, capsys):
    _, folder, configs = run
    capsys.readouterr()
    assert test_googlenet.main(checkpoint_args(folder, configs["other_split"])) == 2
    assert "records: other images" in capsys.readouterr().err
    args = ["--checkpoints", str(folder), "--prefix", "net", "--all-epochs", "--config",
            configs["other_split"]]
    assert test_googlenet.main(args) == 2
    assert test_googlenet.main(checkpoint_args(folder, configs["trained"])) == 0


def test_export_and_classify_refuse_another_mean_or_stored_size(run, capsys, tmp_path):
    _, folder, configs = run
    capsys.readouterr()
    assert export_onnx.main(checkpoint_args(folder, configs["other_split"])) == 2
    assert "mean: checkpoint R=" in capsys.readouterr().err
    assert not list(folder.glob("*.onnx"))
    image = next(Path(load_config(configs["trained"]).IMAGES_PATH).rglob("*.JPEG"))
    assert classify_image.main([*checkpoint_args(folder, configs["resized"]), str(image)]) == 2
    assert "stored image size: checkpoint 32 px, dataset 36 px" in capsys.readouterr().err
    assert classify_image.main([*checkpoint_args(folder, configs["trained"]), str(image)]) == 0


def test_a_report_of_a_rebuilt_dataset_is_refused(run, tmp_path, capsys):
    root, folder, configs = run
    run_copy = tmp_path / "run"
    shutil.copytree(folder, run_copy)
    config = copy_of(configs["trained"], tmp_path)
    manifest = json.loads((run_copy / "net-0001.json").read_text())
    manifest["dataset"]["manifest"] = str(manifest_path(load_config(config)))
    (run_copy / "net-0001.json").write_text(json.dumps(manifest))
    assert report.main(["--checkpoints", str(run_copy), "--prefix", "net"]) == 0
    # Rebuilt in place with another test split.
    Path(config).write_text(Path(config).read_text() + "TEST_SPLIT_SEED = 7\n")
    build_dataset(load_config(config))
    capsys.readouterr()
    assert report.main(["--checkpoints", str(run_copy), "--prefix", "net"]) == 2
    assert "was rebuilt since the run trained on it" in capsys.readouterr().err
    assert report.main(["--checkpoints", str(run_copy), "--prefix", "net", "--override"]) == 0


def test_resuming_on_a_rebuilt_dataset_is_refused_unless_overridden(run, tmp_path, capsys):
    _, folder, configs = run
    run_copy = tmp_path / "run"
    shutil.copytree(folder, run_copy)
    common = ["--checkpoints", str(run_copy), "--prefix", "net", "--start-epoch", "1",
              "--end-epoch", "2"]
    capsys.readouterr()
    assert train_googlenet.main(["--config", configs["other_split"], *common]) == 2
    assert "dataset train records: other images" in capsys.readouterr().err
    assert train_googlenet.main(["--config", configs["other_split"], *common,
                                 "--override"]) == 0
    log = (run_copy / "training_1.log").read_text()
    assert "Override (--override): dataset train records" in log


def test_epoch_last_passes_over_a_newer_damaged_checkpoint(run, tmp_path, caplog):
    _, folder, _ = run
    run_copy = tmp_path / "run"
    shutil.copytree(folder, run_copy)
    for suffix in ("params", "states"):
        shutil.copy(run_copy / f"net-0001.{suffix}", run_copy / f"net-0002.{suffix}")
    manifest = json.loads((run_copy / "net-0001.json").read_text())
    for entry in manifest["files"].values():
        entry["file"] = entry["file"].replace("0001", "0002")
    (run_copy / "net-0002.json").write_text(json.dumps({**manifest, "epoch": 2}))
    params = run_copy / "net-0002.params"
    params.write_bytes(params.read_bytes()[:-4] + b"oops")
    assert list_checkpoints(run_copy, "net") == [1, 2]
    assert resolve_epoch(run_copy, "net", "last") == 1
    assert "skipping checkpoint net-0002" in caplog.text


# --- a dataset rebuilt under a running training ------------------------------------------
def test_a_rebuild_under_a_running_training_stops_it(tmp_path):
    make_ilsvrc_tree(tmp_path / "ILSVRC2015", classes=4, train_per_class=10, val_per_class=3,
                     blacklist=(5,))
    config = build(tmp_path, "data")
    trained = load_manifest(load_config(config))["identity"]
    folder = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "train_googlenet.py", "--config", config, "--checkpoints",
         str(folder), "--prefix", "net", "--end-epoch", "500"], cwd=REPO_ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for((folder / "net-0001.json").exists, "the first checkpoint", process=process)
        config_with(config, config, TEST_SPLIT_SEED=11)
        build_dataset(load_config(config))
        _, err = process.communicate(timeout=600)
    finally:
        process.kill()
    assert process.returncode == 2, err
    assert "the dataset was rebuilt or changed while this run trained on it" in err
    assert "--override" in err and "--start-epoch" in err
    epochs = list_checkpoints(folder, "net")
    assert epochs and epochs[-1] < 500
    # Every checkpoint names the dataset it was really trained on.
    assert {read_manifest(folder, "net", e)["dataset"]["identity"]["digest"]
            for e in epochs} == {trained}


# --- a manifest edited by hand: refused whatever field was edited --------------------------
@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One dataset of the tiny tree (no training): the original of the copies edited below."""
    root = tmp_path_factory.mktemp("edits")
    make_ilsvrc_tree(root / "ILSVRC2015", classes=4, train_per_class=10, val_per_class=3,
                     blacklist=(5,))
    return build(root, "data")


def edit_manifest(config_path: str, change, reseal: bool = False) -> Path:
    """Apply ``change`` to the manifest of ``config_path``'s dataset; ``reseal``: recompute
    its identity and checksum, as someone who knows the format would."""
    path = manifest_path(load_config(config_path))
    manifest = json.loads(path.read_text())
    change(manifest)
    if reseal:
        manifest["identity"] = identity_digest(manifest)
        manifest["checksum"] = manifest_checksum(manifest)
    path.write_text(manifest_text(manifest))
    return path


def set_field(keys: str, value):
    def change(manifest):
        *parents, last = keys.split(".")
        for key in parents:
            manifest = manifest[key]
        manifest[last] = value
    return change


@pytest.mark.parametrize("field, value, message", [
    ("num_classes", 6, "num_classes is 6 but it lists 4 classes"),
    ("splits.train.written", 999, "splits.train.count is 32 but splits.train.written is 999"),
    ("splits.val.listed", 50, "splits.val.listed is 50, not written 11 + skipped 0"),
    ("splits.test.class_counts", [8, 0, 0, 0], "its contents do not match its checksum"),
    ("mean_sha256", "0" * 64, "its contents do not match its checksum"),
    ("created", "2020-01-01T00:00:00+00:00", "its contents do not match its checksum"),
    ("resize", "32", "resize is not a whole number >= 1: '32'"),
])
def test_a_manifest_edited_by_hand_is_refused_whatever_the_field(built, tmp_path, capsys,
                                                                 field, value, message):
    path = copy_of(built, tmp_path)
    if field == "num_classes":  # the config agrees with the edit, as in the report
        config_with(path, path, NUM_CLASSES=6)
    manifest = edit_manifest(path, set_field(field, value))
    with pytest.raises(DatasetError, match="edited after the build, or is damaged: "
                                           + re.escape(message)):
        check_dataset(load_config(path))
    capsys.readouterr()
    assert verify_records.main(["--config", path, "--hash"]) == 2
    assert capsys.readouterr().err.startswith(f"error: {manifest}: dataset manifest was edited")
    assert train_googlenet.main(["--config", path, "--checkpoints", str(tmp_path / "out"),
                                 "--prefix", "net"]) == 2
    assert not (tmp_path / "out" / "net-0001.json").exists()


def test_counts_resealed_by_hand_must_still_agree_with_the_index(built, tmp_path):
    path = copy_of(built, tmp_path)

    def grow_train(manifest):
        entry = manifest["splits"]["train"]
        entry["count"] = entry["written"] = entry["listed"] = entry["written"] + 4
        entry["class_counts"][0] += 4
    edit_manifest(path, grow_train, reseal=True)
    config = load_config(path)
    assert load_manifest(config)["splits"]["train"]["count"] == 36  # consistent in itself
    with pytest.raises(DatasetError, match=r"train.idx: the index lists 32 records where the "
                                           r"manifest .* says 36"):
        check_dataset(config)


def test_a_manifest_without_a_checksum_is_still_read_and_still_checked(built, tmp_path):
    path = copy_of(built, tmp_path)
    edit_manifest(path, lambda manifest: manifest.pop("checksum"))
    assert check_dataset(load_config(path)).splits["train"].count == 32
    edit_manifest(path, set_field("num_classes", 5))
    with pytest.raises(DatasetError, match="num_classes is 5 but it lists 4 classes"):
        check_dataset(load_config(path))
