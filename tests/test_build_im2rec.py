"""``PACKER = "im2rec"``: MXNet's own tools/im2rec.py over the checked lists gives records
that read like the project's: the same keys, labels, counts and skipped files, and every
image decodes. One tiny tree with every odd and damaged kind is built both ways."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import mxnet as mx
import numpy as np
import pytest
from conftest import (
    ODD_KINDS,
    REPO_ROOT,
    IlsvrcTree,
    jpeg_bytes,
    make_ilsvrc_tree,
    tree_image,
    write_config,
)

from pyimagesearch.config import load_config
from pyimagesearch.data.build import packing as im2rec
from pyimagesearch.data.build.builder import build_dataset
from pyimagesearch.data.build.packing import pack_records
from pyimagesearch.data.build.staging import remove_stale_partials
from pyimagesearch.data.build.workers import BuildError, WorkerError
from pyimagesearch.data.dataset import SPLITS
from pyimagesearch.data.images import plain_jpeg
from pyimagesearch.data.records.lists import ListEntry, read_list

RESIZE, INPUT_SIZE = 32, 28
PACKERS = ("project", "im2rec")


def bogus_huffman_jpeg(rgb: np.ndarray) -> bytes:
    """A JPEG whose markers are all in place but whose Huffman table is impossible: only a
    full decode finds it (OpenCV returns None, so im2rec would drop it silently)."""
    data = bytearray(jpeg_bytes(rgb))
    table = data.index(b"\xff\xc4")
    data[table + 5:table + 21] = b"\xff" * 16  # the 16 code-length counts
    return bytes(data)


@dataclass
class Build:
    config: Any
    manifest: dict[str, Any]


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> tuple[IlsvrcTree, dict[str, Build]]:
    root = tmp_path_factory.mktemp("im2rec_build")
    tree = make_ilsvrc_tree(root / "ILSVRC2015", classes=3, train_per_class=6,
                            val_per_class=2, blacklist=(4,), odd_train=ODD_KINDS,
                            odd_val=("cmyk", "absent"))
    bogus = tree.train[-1][0]
    tree.odd[bogus] = "bogus_huffman"
    colour = tree.colours[tree.train[-1][1]]
    (tree.images / bogus).write_bytes(bogus_huffman_jpeg(
        tree_image(colour, 48, 36, np.random.RandomState(5))))
    result = {}
    for packer in PACKERS:
        config = load_config(str(write_config(
            root / f"{packer}.py", tree.base, root / packer, BUILD_THREADS=2,
            NUM_TEST_IMAGES=6, RESIZE=RESIZE, INPUT_SIZE=INPUT_SIZE, PACKER=packer)))
        result[packer] = Build(config, build_dataset(config))
    return tree, result


def split_paths(config: Any, split: str) -> tuple[Path, Path]:
    rec = Path(getattr(config, f"{split.upper()}_MX_REC"))
    return rec, rec.with_suffix(".idx")


def test_both_packers_list_write_and_skip_the_same_files(builds):
    tree, by_packer = builds
    assert plain_jpeg((tree.images / tree.train[-1][0]).read_bytes()) is not None
    for packer, build in by_packer.items():
        assert build.manifest["build"]["packer"] == packer
    project, im2rec = (by_packer[p].manifest["splits"] for p in PACKERS)
    for split in SPLITS:
        assert project[split]["listed"] == im2rec[split]["listed"]
        assert project[split]["written"] == im2rec[split]["written"]
        assert im2rec[split]["written"] + len(im2rec[split]["skipped"]) == \
            im2rec[split]["listed"]
        assert project[split]["skipped"] == im2rec[split]["skipped"]  # paths and reasons
    skipped = {item["path"]: item["reason"] for split in SPLITS
               for item in im2rec[split]["skipped"]}
    expected = {path for path, kind in tree.odd.items()
                if kind in ("absent", "empty", "text", "truncated", "bogus_huffman")}
    assert skipped.keys() == expected
    assert skipped[tree.train[-1][0]].startswith("damaged JPEG")


def test_records_match_record_by_record(builds):
    tree, by_packer = builds
    for split in SPLITS:
        readers = {packer: mx.recordio.MXIndexedRecordIO(
            str(split_paths(build.config, split)[1]), str(split_paths(build.config, split)[0]),
            "r") for packer, build in by_packer.items()}
        try:
            keys = readers["project"].keys
            assert readers["im2rec"].keys == keys
            skipped = {item["path"] for item in
                       by_packer["project"].manifest["splits"][split]["skipped"]}
            lst = Path(getattr(by_packer["im2rec"].config, f"{split.upper()}_MX_LIST"))
            entries = [e for e in read_list(lst) if e.path not in skipped]
            assert keys == [e.index for e in entries]
            for entry in entries:
                images = {}
                for packer, reader in readers.items():
                    header, bgr = mx.recordio.unpack_img(reader.read_idx(entry.index))
                    assert (header.flag, header.label, header.id, header.id2) == \
                        (0, float(entry.label), entry.index, 0), packer
                    assert bgr is not None and bgr.ndim == 3 and bgr.shape[2] == 3
                    assert min(bgr.shape[:2]) == RESIZE, (packer, entry.path, bgr.shape)
                    images[packer] = bgr
                # im2rec rounds the longer side down, the project to nearest
                assert abs(images["project"].shape[0] - images["im2rec"].shape[0]) <= 1
                assert abs(images["project"].shape[1] - images["im2rec"].shape[1]) <= 1
                rgb_mean = images["im2rec"].reshape(-1, 3).mean(axis=0)[::-1]
                if tree.odd.get(entry.path) == "gray":
                    assert np.ptp(rgb_mean) < 2
                else:  # converted (CMYK, PNG, palette, RGBA) or as it was
                    colour = tree.colours[tree.wnids[entry.label]]
                    assert np.abs(rgb_mean - colour).max() < 12, (entry.path, rgb_mean)
        finally:
            for reader in readers.values():
                reader.close()


def test_image_record_iter_reads_both_alike(builds):
    _, by_packer = builds
    for split in SPLITS:
        labels = {}
        for packer, build in by_packer.items():
            rec, idx = split_paths(build.config, split)
            iterator = mx.io.ImageRecordIter(
                path_imgrec=str(rec), path_imgidx=str(idx), data_shape=(3, 28, 28),
                batch_size=4, shuffle=False, preprocess_threads=1)
            labels[packer] = [label for batch in iterator
                              for label in batch.label[0].asnumpy()[:4 - batch.pad].tolist()]
        assert labels["im2rec"] == labels["project"]
        assert len(labels["im2rec"]) == by_packer["im2rec"].manifest["splits"][split]["written"]


def test_im2rec_mean_is_that_of_its_stored_images(builds):
    _, by_packer = builds
    build = by_packer["im2rec"]
    rec, idx = split_paths(build.config, "train")
    reader = mx.recordio.MXIndexedRecordIO(str(idx), str(rec), "r")
    means = [cv2.mean(mx.recordio.unpack_img(reader.read_idx(key))[1])[:3]
             for key in reader.keys]
    reader.close()
    blue, green, red = np.mean(means, axis=0)
    assert build.manifest["mean"] == pytest.approx({"R": red, "G": green, "B": blue},
                                                   abs=1e-9)
    # the two packers resize alike at these sizes: their means differ by JPEG's loss
    assert build.manifest["mean"] == pytest.approx(by_packer["project"].manifest["mean"],
                                                   abs=0.5)
    leftovers = [p for p in rec.parent.iterdir() if ".partial-" in p.name or
                 p.name.endswith(".im2rec")]
    assert not leftovers


def test_a_dead_builds_im2rec_folder_is_removed(tmp_path):
    final = tmp_path / "train.rec"
    stale = tmp_path / "train.rec.partial-999999999.im2rec"
    (stale / "converted").mkdir(parents=True)
    (stale / "records.lst").write_text("0\t0\tx.JPEG\n")
    assert remove_stale_partials([final]) == [stale]
    assert not stale.exists()


# --- im2rec failing: a stand-in script where the wheel's im2rec.py would run ---------------
FAKE_HANGS = """
import os, time
if os.fork() == 0:  # a process of its own, as im2rec's workers
    time.sleep(3600)
time.sleep(3600)
"""
FAKE_FAILS = """
import sys
print("Traceback (most recent call last): simulated failure")
sys.exit(3)
"""
FAKE_LOSES_ONE = """
import os, sys
sys.path.insert(0, {repo!r})
from pyimagesearch.data.records.lists import ListEntry, read_list
from pyimagesearch.data.records.format import RecordWriter, pack_header
prefix, root = sys.argv[-2:]
with RecordWriter(prefix + ".rec", prefix + ".idx") as writer:
    for entry in read_list(prefix + ".lst")[1:]:  # the first is lost, as when a worker dies
        with open(os.path.join(root, entry.path), "rb") as image:
            writer.write(entry.index, pack_header(entry.label, entry.index) + image.read())
"""


def running_with(text: str) -> list[int]:
    """Live processes whose command line holds ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and text.encode() in (entry / "cmdline").read_bytes():
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state not in ("Z", "X"):
                    found.append(int(entry.name))
        except OSError:  # gone meanwhile
            continue
    return found


# The watchdog's limit: short where the stand-in never writes (the hang is the event), and
# generous where it must start and finish on a busy machine before it is judged.
@pytest.mark.parametrize(("script", "timeout", "error", "message"), [
    (FAKE_HANGS, 2, WorkerError, r"im2rec has written nothing to records.rec for 2 s "
                                 r"\(BUILD_WORKER_TIMEOUT\)"),
    (FAKE_FAILS, 300, BuildError, r"exited with status 3: .*simulated failure"),
    (FAKE_LOSES_ONE, 300, BuildError, r"im2rec did not write 1 image\(s\) that decode "
                                      r"\(first: train/"),
], ids=["hangs", "fails", "loses_an_image"])
def test_an_im2rec_that_hangs_fails_or_loses_an_image_stops_the_packing(
        tmp_path, monkeypatch, script, timeout, error, message):
    tree = make_ilsvrc_tree(tmp_path / "ILSVRC2015")
    fake = tmp_path / "fake_im2rec.py"
    fake.write_text(script.format(repo=str(REPO_ROOT)) if "{repo" in script else script)
    monkeypatch.setattr(im2rec, "im2rec_path", lambda: str(fake))
    entries = [ListEntry(i, 0, path) for i, (path, _) in enumerate(tree.train[:5])]
    with pytest.raises(error, match=message):
        pack_records(entries, tree.images, tmp_path / "x.rec", tmp_path / "x.idx", resize=32,
                     quality=90, packer="im2rec", timeout=timeout)
    assert not running_with(str(fake))  # im2rec and its own processes were stopped
    assert not (tmp_path / "x.rec.im2rec").exists()
