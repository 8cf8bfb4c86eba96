"""Faults during a build: dying and hanging workers, a full disk, extreme images, unsafe or
malformed lists, empty classes and splits. Faults are injected for real: a worker process
that exits or is killed, a worker that never answers, ``RLIMIT_FSIZE`` with ``SIGXFSZ``
ignored (so writes fail with EFBIG), crafted image and list files.
"""

from __future__ import annotations

import hashlib
import io
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import cv2
import mxnet as mx
import numpy as np
import pytest
from conftest import (
    DEADLINE,
    REPO_ROOT,
    jpeg_bytes,
    make_ilsvrc_tree,
    tree_image,
    wait_for,
    write_config,
)

import build_imagenet
from pyimagesearch.config import load_config
from pyimagesearch.data.build.builder import build_dataset, make_split_lists
from pyimagesearch.data.build.packing import pack_records
from pyimagesearch.data.dataset import SPLITS, DatasetError, load_manifest
from pyimagesearch.data.images import decode_image
from pyimagesearch.data.records.lists import ListEntry, read_list
from pyimagesearch.data.records.verify import check_splits
from pyimagesearch.data.sources.imagenethelper import ImageNetHelper


def run_main(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = build_imagenet.main(list(args))
    return code, out.getvalue(), err.getvalue()


def files_of(folder: Path) -> dict[str, str]:
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def running_with(marker: str) -> list[int]:
    """Live processes whose environment holds ``marker`` (children inherit it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker.encode() not in (entry / "environ").read_bytes():
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if state not in ("Z", "X"):  # a zombie has stopped running
            found.append(int(entry.name))
    return found


# --- a worker that dies or hangs -------------------------------------------------------------
# Run as a script: spawned workers import it as __mp_main__, which installs the fault there
# and only there (the main process never runs _process_one with BUILD_THREADS > 1).
FAULTY_WORKER = """
import os, signal, sys, time
sys.path.insert(0, {repo!r})
from pyimagesearch.data.build import packing

if __name__ == "__mp_main__":
    open(os.path.join({pids!r}, str(os.getpid())), "w").close()
    original = packing._process_one

    def faulty(settings, entry):
        if entry.path == {trigger!r}:
            if {mode!r} == "exit":
                os._exit(7)
            if {mode!r} == "kill":
                os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(3600)
        return original(settings, entry)

    packing._process_one = faulty

if __name__ == "__main__":
    import build_imagenet
    sys.exit(build_imagenet.main(["--config", {config!r}]))
"""


# The watchdog's clock runs from when the build starts waiting for a chunk, so it takes in
# the workers' start-up (an interpreter and the package's imports: seconds on a busy machine,
# more than 3 s seen). A hang is only told from a slow start by waiting longer than that.
HANG_TIMEOUT = 30


@pytest.mark.parametrize(("mode", "previous"), [
    ("exit", True), ("kill", False), pytest.param("hang", True, marks=pytest.mark.slow)])
def test_dead_or_hung_worker_fails_the_build_and_keeps_the_dataset(tmp_path, mode, previous):
    tree = make_ilsvrc_tree(tmp_path / "ILSVRC2015")
    out = tmp_path / "out"
    timeout = HANG_TIMEOUT if mode == "hang" else 120
    faulty_config = write_config(tmp_path / "faulty.py", tree.base, out, BUILD_THREADS=2,
                                 BUILD_WORKER_TIMEOUT=timeout)
    if previous:
        build_dataset(load_config(str(write_config(tmp_path / "c.py", tree.base, out))))
    before = files_of(out) if previous else {}
    # The first training image in list order: the first chunk handed to a worker.
    trigger = make_split_lists(ImageNetHelper(load_config(str(faulty_config))))["train"][0].path
    pids = tmp_path / "pids"
    pids.mkdir()
    script = tmp_path / "faulty_build.py"
    script.write_text(FAULTY_WORKER.format(repo=str(REPO_ROOT), pids=str(pids),
                                           trigger=trigger, mode=mode,
                                           config=str(faulty_config)))
    marker = f"BUILD_FAULT_TEST={tmp_path}"
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                            timeout=DEADLINE, cwd=tmp_path,
                            env={**os.environ, "BUILD_FAULT_TEST": str(tmp_path)})

    assert result.returncode == 3, result.stderr
    if mode == "hang":  # the watchdog, not the deadline above, ended the build
        assert (f"has not finished {trigger} within {HANG_TIMEOUT} s (BUILD_WORKER_TIMEOUT)"
                in result.stderr)
    else:
        assert "error: an image worker process died" in result.stderr
    if previous:
        assert f"the previous dataset in {out / 'rec'} is untouched" in result.stderr
    else:
        assert "nothing final-named was written" in result.stderr
    assert files_of(out) == before  # byte-identical, and no temporary files left
    assert 1 <= len(list(pids.iterdir())) <= 2  # the fault was injected in a worker
    # No worker left running (multiprocessing's helper may take a moment to see its parent go).
    wait_for(lambda: not running_with(marker), "end of every process of the build",
             seconds=60)


# --- Ctrl-C and SIGTERM -----------------------------------------------------------------------
# A worker that takes an hour over one image, in Python (where it can act on the build's stop
# request) or with every signal blocked, as in a decoder's C code (it has to be killed).
SLOW_WORKER = """
import os, signal, sys, time
sys.path.insert(0, {repo!r})
from pyimagesearch.data.build import packing

if __name__ == "__mp_main__":
    original = packing._process_one

    def slow(settings, entry):
        if entry.path == {trigger!r}:
            if {stuck!r}:
                signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
            open(os.path.join({events!r}, "busy"), "w").close()
            time.sleep(3600)
        return original(settings, entry)

    packing._process_one = slow

if __name__ == "__main__":
    import build_imagenet
    sys.exit(build_imagenet.main(["--config", {config!r}]))
"""


def start_slow_build(tmp_path: Path, stuck: bool) -> tuple[subprocess.Popen, Path, dict, str]:
    """A build over a previous dataset in ``tmp_path / "out"`` whose first image keeps a
    worker busy; returns the process (its own session) once the worker is busy on it, the
    output folder and its files before, and the marker that the build's processes carry."""
    tree = make_ilsvrc_tree(tmp_path / "ILSVRC2015")
    out = tmp_path / "out"
    build_dataset(load_config(str(write_config(tmp_path / "c.py", tree.base, out))))
    before = files_of(out)
    config = write_config(tmp_path / "workers.py", tree.base, out, BUILD_THREADS=2)
    trigger = make_split_lists(ImageNetHelper(load_config(str(config))))["train"][0].path
    events = tmp_path / "events"
    events.mkdir()
    script = tmp_path / "slow_build.py"
    script.write_text(SLOW_WORKER.format(repo=str(REPO_ROOT), trigger=trigger, stuck=stuck,
                                         events=str(events), config=str(config)))
    process = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               start_new_session=True,
                               env={**os.environ, "BUILD_FAULT_TEST": str(tmp_path)})
    wait_for((events / "busy").exists, "a worker busy with the slow image", process=process)
    return process, out, before, f"BUILD_FAULT_TEST={tmp_path}"


@pytest.mark.parametrize(("signum", "stuck"), [(signal.SIGINT, False), (signal.SIGTERM, False),
                                               (signal.SIGTERM, True)])
def test_an_interrupt_stops_the_build_within_seconds_and_cleans_up(tmp_path, signum, stuck):
    process, out, before, marker = start_slow_build(tmp_path, stuck)
    try:
        if signum == signal.SIGINT:
            os.killpg(process.pid, signum)  # Ctrl-C: the terminal signals the whole group
        else:
            process.send_signal(signum)  # kill PID: the build's own process only
        sent = time.monotonic()
        _, err = process.communicate(timeout=120)  # the old build waited for the image
        took = time.monotonic() - sent
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    if signum == signal.SIGINT:
        assert process.returncode == 130, err
        assert err.endswith("\ninterrupted: temporary files removed, nothing replaced\n")
    else:
        assert process.returncode == 143, err
        assert err.endswith(f"interrupted by SIGTERM; nothing was replaced: the previous "
                            f"dataset in {out / 'rec'} is untouched and the temporary files "
                            f"were removed\n")
    assert "Traceback" not in err
    assert took < 60, f"{took:.1f} s to stop"
    assert files_of(out) == before  # no temporary or lock file left, nothing replaced
    wait_for(lambda: not running_with(marker), "end of every process of the build",
             seconds=60)


def test_the_workers_of_a_killed_build_die_with_it(tmp_path):
    process, out, _, marker = start_slow_build(tmp_path, stuck=False)
    process.kill()  # SIGKILL: no cleanup is possible, the workers must not wait forever
    process.communicate()
    wait_for(lambda: not running_with(marker), "the workers to die with the build",
             seconds=60)
    assert [p.name for p in out.rglob("*.partial-*")]  # what the next build removes


# --- a full disk -------------------------------------------------------------------------------
DISK_FULL = """
import resource, signal, sys
sys.path.insert(0, {repo!r})
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes then fail with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit}))
import build_imagenet
sys.exit(build_imagenet.main(["--config", {config!r}]))
"""


@pytest.mark.parametrize("previous", [True, False])
def test_disk_full_names_the_file_and_keeps_the_previous_dataset(tmp_path, previous):
    tree = make_ilsvrc_tree(tmp_path / "ILSVRC2015")
    out = tmp_path / "out"
    config = write_config(tmp_path / "c.py", tree.base, out)
    if previous:
        build_dataset(load_config(str(config)))
        assert (out / "rec" / "train.rec").stat().st_size > 8192
    before = files_of(out) if previous else {}
    script = DISK_FULL.format(repo=str(REPO_ROOT), limit=8192, config=str(config))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=DEADLINE, cwd=tmp_path)
    assert result.returncode == 3, result.stderr
    assert f"error: writing {out / 'rec' / 'train.rec'} (as train.rec.partial-" in result.stderr
    assert "[Errno 27] File too large: the disk is full" in result.stderr
    if previous:
        assert f"the previous dataset in {out / 'rec'} is untouched" in result.stderr
    else:
        assert "nothing final-named was written" in result.stderr
    assert files_of(out) == before


# --- extreme images ----------------------------------------------------------------------------
def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares its size and holds no pixels (Pillow reads the size first)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")


def png16(rgb: np.ndarray) -> bytes:
    """A 16-bit-per-channel PNG of an 8-bit RGB (or gray) image (values x 257)."""
    wide = rgb.astype(np.uint16) * 257
    if wide.ndim == 3:
        wide = cv2.cvtColor(wide, cv2.COLOR_RGB2BGR)
    ok, data = cv2.imencode(".png", wide)
    assert ok
    return data.tobytes()


def test_extreme_images_are_handled_or_reported(tmp_path):
    tree = make_ilsvrc_tree(tmp_path / "ILSVRC2015")
    rng = np.random.RandomState(3)
    path = {n: tree.train[n][0] for n in range(8)}
    colour = {n: tree.colours[tree.train[n][1]] for n in range(8)}
    writes = {
        0: jpeg_bytes(tree_image(colour[0], 1, 60000, rng)),          # 1x60000: absurd
        1: jpeg_bytes(tree_image(colour[1], 1, 1, rng)),              # 1x1: enlarged
        2: cv2.imencode(".jpg", np.full((12000, 12000), 128, np.uint8))[1].tobytes(),
        3: png16(tree_image(colour[3], 40, 30, rng)),                 # 16-bit RGB
        4: png16(np.full((30, 40), 200, np.uint8)),                   # 16-bit gray
        5: png_header_only(20000, 20000),                             # 400 megapixels
        6: jpeg_bytes(tree_image(colour[6], 19, 1, rng)),             # 19:1, under the limit
        7: jpeg_bytes(tree_image(colour[7], 40, 30, rng))[:-2],       # 2 GiB, see below
    }
    for n, data in writes.items():
        (tree.images / path[n]).write_bytes(data)
    os.truncate(tree.images / path[7], 2 << 30)  # sparse: decided from its size, never read
    config = load_config(str(write_config(tmp_path / "c.py", tree.base, tmp_path / "out")))
    manifest = build_dataset(config)

    skipped = {item["path"]: item["reason"] for split in SPLITS
               for item in manifest["splits"][split]["skipped"]}
    assert set(skipped) == {path[0], path[5], path[7]}
    assert skipped[path[0]].startswith("extreme aspect ratio (1x60000 px, 6e+04:1, above the "
                                       "20:1 limit")
    assert skipped[path[5]].startswith("too large (Image size (400000000 pixels) exceeds")
    assert skipped[path[7]].startswith("too large (a file of 2,147,483,648 bytes, above the "
                                       "1,610,612,730 that an image within Pillow's")

    stored = {}
    for split in ("train", "test"):
        lst, rec = Path(getattr(config, f"{split.upper()}_MX_LIST")), \
            Path(getattr(config, f"{split.upper()}_MX_REC"))
        record = mx.recordio.MXIndexedRecordIO(str(rec.with_suffix(".idx")), str(rec), "r")
        for entry in read_list(lst):
            if entry.path not in skipped:
                stored[entry.path] = mx.recordio.unpack_img(record.read_idx(entry.index))[1]
        record.close()
    assert stored[path[1]].shape == (32, 32, 3)
    assert stored[path[2]].shape == (32, 32, 3)
    assert stored[path[6]].shape == (32, 608, 3)  # aspect kept: 19 x 32 = 608
    blue, green, red = stored[path[3]].reshape(-1, 3).mean(axis=0)
    assert np.abs(np.array([red, green, blue]) - colour[3]).max() < 12
    assert np.abs(stored[path[4]].astype(float) - 200).max() < 3
    report = check_splits(config, load_manifest(config), SPLITS, decode=True)
    assert report.sound, report.lines()


def test_sixteen_bit_channels_are_scaled_not_clipped():
    gray = decode_image(png16(np.array([[0, 128, 255]], np.uint8)))
    assert gray.shape == (1, 3, 3) and gray[0, :, 0].tolist() == [0, 128, 255]
    rgb = decode_image(png16(np.array([[[10, 128, 250]]], np.uint8)))
    assert rgb[0, 0].tolist() == [10, 128, 250]


# --- lists and paths -----------------------------------------------------------------------------
@pytest.mark.parametrize(("path", "reason"), [
    ("/etc/passwd", "is absolute"),
    ("../x.JPEG", "leaves the image root"),
    ("train/../../x.JPEG", "leaves the image root"),
    ("train\\x.JPEG", "contains a backslash"),
    ("C:/x.JPEG", "is absolute"),
])
def test_list_paths_that_escape_the_image_root_are_refused(tmp_path, path, reason):
    lst = tmp_path / "x.lst"
    lst.write_text(f"0\t1\ttrain/a.JPEG\n1\t0\t{path}\n")
    with pytest.raises(DatasetError) as info:
        read_list(lst)
    assert info.value.line == 2 and f"{lst}, line 2: " in str(info.value)
    assert reason in str(info.value)
    with pytest.raises(DatasetError, match=f"index 1.*{reason}"):
        pack_records([ListEntry(0, 1, "train/a.JPEG"), ListEntry(1, 0, path)], tmp_path,
                     tmp_path / "x.rec", tmp_path / "x.idx", resize=32, quality=90)
    assert not (tmp_path / "x.rec").exists()


def test_list_labels_and_emptiness(tmp_path):
    lst = tmp_path / "x.lst"
    lst.write_text("0\t1\ta.JPEG\n1\t4\tb.JPEG\n")
    assert len(read_list(lst, num_classes=5)) == 2
    with pytest.raises(DatasetError, match=r"line 2: label 4 is outside 0..3"):
        read_list(lst, num_classes=4)
    lst.write_text("\n")
    with pytest.raises(DatasetError, match="list file is empty"):
        read_list(lst)


@pytest.mark.parametrize("bad", ["n01440764/../../../etc/passwd", "n01440764/.hidden",
                                 "n01440764/a/b"])
def test_devkit_train_paths_cannot_escape(tmp_path, bad):
    tree = make_ilsvrc_tree(tmp_path / "ILSVRC2015")
    train_list = tree.image_sets / "train_cls.txt"
    lines = train_list.read_text().splitlines()
    lines[3] = bad.replace("n01440764", tree.wnids[0]) + " 4"
    train_list.write_text("\n".join(lines) + "\n")
    config = write_config(tmp_path / "c.py", tree.base, tmp_path / "out")
    code, _, stderr = run_main("--config", str(config))
    assert code == 2
    assert f"{train_list}, line 4: expected '<wnid>/<image id>'" in stderr
    assert not (tmp_path / "out").exists()


# --- empty classes and splits ----------------------------------------------------------------
def _drop_lines(path: Path, keep) -> None:
    lines = [line for line in path.read_text().splitlines() if keep(line)]
    path.write_text("".join(f"{line}\n" for line in lines))


@pytest.mark.parametrize("case", ["empty_class", "no_training", "no_validation", "no_test",
                                  "class_unreadable", "bad_timeout"])
def test_empty_class_or_split_is_an_error_naming_it(tmp_path, case):
    odd = [None, None, "text"] * 6 if case == "class_unreadable" else ()
    tree = make_ilsvrc_tree(tmp_path / "ILSVRC2015", odd_train=odd)
    fields = {"NUM_TEST_IMAGES": 0} if case == "no_test" else {}
    if case == "bad_timeout":
        fields["BUILD_WORKER_TIMEOUT"] = 0
    train_list = tree.image_sets / "train_cls.txt"
    if case == "empty_class":
        _drop_lines(train_list, lambda line: not line.startswith(tree.wnids[1]))
    elif case == "no_training":
        train_list.write_text("")
    elif case == "no_validation":
        blacklist = tree.devkit / "ILSVRC2015_clsloc_validation_blacklist.txt"
        blacklist.write_text("".join(f"{n}\n" for n in range(1, len(tree.val) + 1)))
    config = write_config(tmp_path / "c.py", tree.base, tmp_path / "out", **fields)
    code, stdout, stderr = run_main("--config", str(config))
    assert code == 2 and not stdout
    expected = {
        "empty_class": f"{train_list}: lists no training image for 1 of the 3 classes of "
                       f"map_clsloc.txt: {tree.wnids[1]} (class id 2, '{tree.names[1]}')",
        "no_training": f"{train_list}: lists no training images",
        "no_validation": "lists no validation image that the blacklist",
        "no_test": "NUM_TEST_IMAGES is 0, so the test split would be empty",
        "class_unreadable": f"1 class(es) would have no training record: {tree.wnids[2]} "
                            f"(label 2, '{tree.names[2]}'",
        "bad_timeout": "BUILD_WORKER_TIMEOUT = 0: must be a number > 0",
    }[case]
    assert expected in stderr
    assert not [p for p in (tmp_path / "out").rglob("*") if p.is_file()]
