"""verify_split / verify_records.py on real small records, then on damaged copies of them.

Every corrupted variant is made from a real build (copy the files, then cut or alter bytes)
and must give its own kind of RecordError whose message names the file and the record id.
"""

from __future__ import annotations

import io
import re
import shutil
import struct
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import cv2
import mxnet as mx
import numpy as np
import pytest
from conftest import write_config

import verify_records
from pyimagesearch.config import load_config
from pyimagesearch.data.dataset import SPLITS, load_manifest
from pyimagesearch.data.records.format import (
    IR_FORMAT,
    MAGIC_BYTES,
    RecordError,
    RecordWriter,
    frame_record,
    pack_header,
    read_record_at,
)
from pyimagesearch.data.records.verify import check_splits, verify_split

NUM_CLASSES = 4  # the session's tiny dataset (conftest.tiny_dataset_config)


# --- helpers -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny(tiny_dataset_config):
    config = load_config(str(tiny_dataset_config))
    return config, load_manifest(config)


def idx_lines(path: Path) -> list[tuple[int, int]]:
    return [tuple(map(int, line.split("\t"))) for line in path.read_text().splitlines()]


def write_idx(path: Path, lines: list[tuple[int, int]]) -> None:
    path.write_text("".join(f"{key}\t{offset}\n" for key, offset in lines))


class Copy:
    """A copy of one split's records under tmp_path, to damage."""

    def __init__(self, tiny, tmp_path: Path, split: str = "train") -> None:
        config, manifest = tiny
        self.entry = manifest["splits"][split]
        self.rec, self.idx = tmp_path / f"{split}.rec", tmp_path / f"{split}.idx"
        shutil.copyfile(self.entry["rec_path"], self.rec)
        shutil.copyfile(self.entry["idx_path"], self.idx)
        self.lines = idx_lines(self.idx)
        self.count = int(self.entry["count"])

    def key(self, line: int) -> int:
        return self.lines[line - 1][0]

    def offset(self, line: int) -> int:
        return self.lines[line - 1][1]

    def patch(self, position: int, data: bytes) -> None:
        raw = bytearray(self.rec.read_bytes())
        raw[position:position + len(data)] = data
        self.rec.write_bytes(bytes(raw))

    def verify(self, **kwargs) -> object:
        kwargs.setdefault("manifest_entry", None)
        return verify_split(self.rec, self.idx, self.count, NUM_CLASSES, **kwargs)


def expect(copy: Copy, kind: str, line: int | None, blame: Path, *words: str,
           **kwargs) -> RecordError:
    with pytest.raises(RecordError) as info:
        copy.verify(**kwargs)
    error = info.value
    assert error.kind == kind, str(error)
    assert error.path == str(blame)
    assert str(error).startswith(f"{blame}")
    if line is not None:
        assert error.idx_line == line and error.record_id == copy.key(line)
        assert f"record id {copy.key(line)}" in str(error)
        # "<file>, line N:" only where the line is the blamed file's own
        assert error.line == (line if blame.suffix == ".idx" else None)
    for word in words:
        assert word in str(error), str(error)
    return error


# --- sound records -------------------------------------------------------------------------
def test_sound_dataset_passes_every_check(tiny):
    config, manifest = tiny
    report = check_splits(config, manifest, SPLITS, decode=True, check_hash=True)
    assert report.sound, report.lines()
    results = report.splits
    for split in SPLITS:
        result = results[split]
        assert result.count == manifest["splits"][split]["count"]
        assert sum(result.label_counts) == result.count
        assert len(result.label_counts) == NUM_CLASSES
        assert result.hashed and result.decoded == result.count
        assert result.smallest_side == manifest["resize"]
    assert min(results["train"].label_counts) > 0


def test_writer_is_byte_identical_to_mxnet_including_multi_part_records(tmp_path):
    rng = np.random.RandomState(0)
    payloads = [MAGIC_BYTES, MAGIC_BYTES * 3, b"ab" + MAGIC_BYTES, b"abcd" + MAGIC_BYTES,
                MAGIC_BYTES + b"x", b"abcd" + MAGIC_BYTES * 2 + b"z" * 5, b"", b"x"]
    for _ in range(60):
        raw = bytearray(rng.bytes(rng.randint(0, 120)))
        for _ in range(rng.randint(0, 4)):
            if len(raw) >= 4:
                at = rng.randint(0, len(raw) - 3)
                raw[at:at + 4] = MAGIC_BYTES
        payloads.append(bytes(raw))
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    record = mx.recordio.MXIndexedRecordIO(f"{theirs}.idx", f"{theirs}.rec", "w")
    with RecordWriter(f"{ours}.rec", f"{ours}.idx") as writer:
        for key, payload in enumerate(payloads):
            record.write_idx(key, payload)
            writer.write(key, payload)
    record.close()
    assert Path(f"{ours}.rec").read_bytes() == Path(f"{theirs}.rec").read_bytes()
    assert Path(f"{ours}.idx").read_bytes() == Path(f"{theirs}.idx").read_bytes()
    data = Path(f"{ours}.rec").read_bytes()
    offsets = [offset for _, offset in idx_lines(Path(f"{ours}.idx"))]
    assert [read_record_at(data, offset)[0] for offset in offsets] == payloads
    assert frame_record(b"abc") == struct.pack("<II", 0xCED7230A, 3) + b"abc\0"
    assert pack_header(3, 7) == mx.recordio.pack(mx.recordio.IRHeader(0, 3.0, 7, 0), b"")


def test_multi_part_records_and_label_arrays_are_followed(tmp_path):
    """A header whose id holds the magic word splits the IRHeader itself across parts."""
    jpeg = cv2.imencode(".jpg", np.full((8, 8, 3), 90, np.uint8))[1].tobytes()
    magic_id = int.from_bytes(MAGIC_BYTES, "little")
    rec, idx = tmp_path / "m.rec", tmp_path / "m.idx"
    with RecordWriter(rec, idx) as writer:
        writer.write(0, pack_header(1, 0) + jpeg)
        writer.write(magic_id, pack_header(2, magic_id) + jpeg)       # split in the header
        writer.write(5, pack_header(3, 5) + MAGIC_BYTES + jpeg)      # split in the data
        writer.write(6, struct.pack(IR_FORMAT, 2, 0.0, 6, 0)
                     + np.array([0, 3], "<f4").tobytes() + jpeg)     # a label array
    result = verify_split(rec, idx, 4, NUM_CLASSES)
    assert result.multipart == 2 and result.label_counts == (0, 1, 1, 1)
    assert result.count == 4

    with RecordWriter(rec, idx) as writer:
        writer.write(6, struct.pack(IR_FORMAT, 2, 0.0, 6, 0)
                     + np.array([0, 9], "<f4").tobytes() + jpeg)
    with pytest.raises(RecordError, match=r"label 9 \(label 2 of 2\) lies outside \[0, 4\)"):
        verify_split(rec, idx, 1, NUM_CLASSES)


# --- each corrupted variant ----------------------------------------------------------------
def test_truncated_rec(tiny, tmp_path):
    copy = Copy(tiny, tmp_path)
    copy.rec.write_bytes(copy.rec.read_bytes()[:copy.offset(11) + 100])
    expect(copy, "truncated_rec", 11, copy.rec, "truncated .rec", "train.rec",
           f"the file ends at {copy.offset(11) + 100}", f"{copy.count - 11} record(s) after")


def test_rec_cut_at_a_record_boundary(tiny, tmp_path):
    copy = Copy(tiny, tmp_path)
    copy.rec.write_bytes(copy.rec.read_bytes()[:copy.offset(20)])
    expect(copy, "truncated_rec", 20, copy.rec, "truncated .rec",
           "at or after the end of the file")


def test_stale_idx_offsets_not_at_record_starts(tiny, tmp_path):
    copy = Copy(tiny, tmp_path)
    lines = [(key, offset + 8 if number >= 5 else offset)
             for number, (key, offset) in enumerate(copy.lines, start=1)]
    write_idx(copy.idx, lines)
    expect(copy, "stale_idx", 5, copy.idx, "stale .idx", "no RecordIO magic",
           f"offset {copy.offset(5) + 8}", "train.rec")


def test_idx_of_another_split_is_stale(tiny, tmp_path):
    """train.rec with test.idx: an index from another build of records."""
    copy = Copy(tiny, tmp_path)
    shutil.copyfile(tiny[1]["splits"]["test"]["idx_path"], copy.idx)
    copy.lines = idx_lines(copy.idx)
    with pytest.raises(RecordError) as info:
        copy.verify()
    assert info.value.kind in {"stale_idx", "id_mismatch"}
    assert "stale" in str(info.value) and "train.idx" in str(info.value)
    assert info.value.record_id == copy.key(info.value.idx_line)


def test_short_idx(tiny, tmp_path):
    copy = Copy(tiny, tmp_path)
    write_idx(copy.idx, copy.lines[:-3])
    expect(copy, "short_idx", copy.count - 3, copy.idx, "short .idx",
           f"lists {copy.count - 3} records but the manifest says {copy.count}")


def test_idx_missing_a_line_in_the_middle(tiny, tmp_path):
    copy = Copy(tiny, tmp_path)
    write_idx(copy.idx, copy.lines[:6] + copy.lines[7:])
    error = expect(copy, "short_idx", None, copy.idx, "short .idx",
                   f"record id {copy.key(8)}", "in no .idx line")
    assert error.line == 7


def test_misaligned_idx_offset(tiny, tmp_path):
    copy = Copy(tiny, tmp_path)
    lines = list(copy.lines)
    lines[6] = (lines[6][0], lines[6][1] + 2)
    write_idx(copy.idx, lines)
    copy.lines = lines
    expect(copy, "misaligned_idx", 7, copy.idx, "misaligned .idx offset",
           "not a multiple of 4")


@pytest.mark.parametrize(("value", "kind", "words"), [
    (7.0, "label_range", ("label 7 lies outside [0, 4)", "silently map")),
    (-1.0, "label_range", ("label -1 lies outside",)),
    (1.5, "label_not_integral", ("label 1.5 is not a whole number",)),
    (float("nan"), "label_not_integral", ("label nan is not a whole number",)),
])
def test_bad_labels(tiny, tmp_path, value, kind, words):
    copy = Copy(tiny, tmp_path)
    copy.patch(copy.offset(9) + 8 + 4, struct.pack("<f", value))
    expect(copy, kind, 9, copy.rec, "train.rec", *words)


def test_header_id_mismatch(tiny, tmp_path):
    copy = Copy(tiny, tmp_path)
    copy.patch(copy.offset(4) + 8 + 8, struct.pack("<Q", 99999))
    expect(copy, "id_mismatch", 4, copy.rec, "header id mismatch", "has id 99999",
           "line 4 of train.idx")


@pytest.mark.parametrize(("line_text", "kind", "message"), [
    ("7 1234", "bad_idx_line", "malformed index line '7 1234'"),
    ("x\t0", "bad_idx_line", "expected '<record id><TAB><offset>'"),
    ("", "bad_idx_line", "malformed index line ''"),
])
def test_malformed_idx_lines(tiny, tmp_path, line_text, kind, message):
    copy = Copy(tiny, tmp_path)
    text = copy.idx.read_text().splitlines()
    text[3] = line_text
    copy.idx.write_text("\n".join(text) + "\n")
    error = expect(copy, kind, None, copy.idx, message)
    assert error.line == 4 and f"{copy.idx}, line 4: " in str(error)


def test_duplicate_id_and_offsets_out_of_order(tiny, tmp_path):
    copy = Copy(tiny, tmp_path)
    lines = list(copy.lines)
    lines[5] = (lines[1][0], lines[5][1])
    write_idx(copy.idx, lines)
    error = expect(copy, "duplicate_id", None, copy.idx, "(first at line 2)")
    assert error.line == 6 and error.record_id == copy.key(2)

    lines = list(copy.lines)
    lines[2], lines[3] = lines[3], lines[2]
    write_idx(copy.idx, lines)
    error = expect(copy, "offset_order", None, copy.idx, "offsets must increase")
    assert error.line == 4


def test_bytes_outside_the_index(tiny, tmp_path):
    copy = Copy(tiny, tmp_path)
    copy.rec.write_bytes(copy.rec.read_bytes() + frame_record(pack_header(1, 500) + b"x" * 40))
    expect(copy, "unindexed_bytes", copy.count, copy.idx, "72 bytes of train.rec after the "
           "last indexed record")


def test_count_size_and_hash_against_the_manifest(tiny, tmp_path):
    copy = Copy(tiny, tmp_path)
    entry = dict(copy.entry)
    assert copy.verify(manifest_entry=entry, check_hash=True).hashed

    with pytest.raises(RecordError, match="holds 32 records .* manifest says 33") as info:
        verify_split(copy.rec, copy.idx, 33, NUM_CLASSES)
    assert info.value.kind == "count_mismatch"

    with pytest.raises(RecordError, match="is .* bytes but the manifest says 5") as info:
        copy.verify(manifest_entry={**entry, "idx_bytes": 5})
    assert info.value.kind == "size_mismatch" and info.value.path == str(copy.idx)

    # One flipped bit inside an image: the structure is sound, only the hash can tell.
    position = copy.offset(12) + 8 + 24 + 200
    copy.patch(position, bytes([copy.rec.read_bytes()[position] ^ 0x10]))
    copy.verify(manifest_entry=entry)
    with pytest.raises(RecordError, match="SHA-256 .* differs from the manifest") as info:
        copy.verify(manifest_entry=entry, check_hash=True)
    assert info.value.kind == "hash_mismatch" and info.value.path == str(copy.rec)


def test_decode_finds_damaged_and_gray_images(tiny, tmp_path):
    copy = Copy(tiny, tmp_path)
    data = copy.rec.read_bytes()
    payload, end, _ = read_record_at(data, copy.offset(6))
    image_start, image_end = copy.offset(6) + 8 + 24, copy.offset(6) + 8 + len(payload)
    copy.patch(image_end - 2, b"\0\0")  # the JPEG's end-of-image marker
    copy.verify()  # the structure is sound
    expect(copy, "decode", 6, copy.rec, "no end-of-image marker", decode=True)
    copy.patch(image_start, b"\0" * (image_end - image_start))
    expect(copy, "decode", 6, copy.rec, "cannot be decoded", decode=True)

    rec, idx = tmp_path / "gray.rec", tmp_path / "gray.idx"
    gray = cv2.imencode(".jpg", np.full((40, 36), 128, np.uint8))[1].tobytes()
    small = cv2.imencode(".jpg", np.full((20, 36, 3), 128, np.uint8))[1].tobytes()
    with RecordWriter(rec, idx) as writer:
        writer.write(0, pack_header(0, 0) + small)
        writer.write(1, pack_header(0, 1) + gray)
    with pytest.raises(RecordError, match="record id 1 .* 1 channel"):
        verify_split(rec, idx, 2, NUM_CLASSES, decode=True)
    with pytest.raises(RecordError, match="record id 0 .* 36x20, its shorter side below the 32"):
        verify_split(rec, idx, 2, NUM_CLASSES, decode=True, min_side=32)


def test_missing_and_empty_files(tiny, tmp_path):
    copy = Copy(tiny, tmp_path)
    copy.idx.write_text("")
    expect(copy, "unindexed_bytes", None, copy.idx, "is empty but train.rec holds")
    copy.idx.unlink()
    expect(copy, "missing", None, copy.idx, "file not found")


# --- the command ----------------------------------------------------------------------------
def run_command(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = verify_records.main(list(args))
    return code, out.getvalue(), err.getvalue()


def test_command_reports_every_split(tiny_dataset_config, tiny, tmp_path):
    code, stdout, _ = run_command("--config", str(tiny_dataset_config), "--decode", "--hash")
    assert code == 0, stdout
    for split in SPLITS:
        count = tiny[1]["splits"][split]["count"]
        assert f"{split}:" in stdout and f"OK  {count} records" in stdout
    assert "sha256" in stdout and "images decoded" in stdout
    assert "dataset: OK  4 classes (map_clsloc order)" in stdout

    # A copy of the dataset with a damaged val.rec: val fails, the others still pass.
    config = tiny[0]
    source = Path(config.TRAIN_MX_REC).parent.parent
    shutil.copytree(source, tmp_path / "out")
    copy_config = write_config(tmp_path / "c.py", Path(config.BASE_PATH), tmp_path / "out",
                               NUM_CLASSES=NUM_CLASSES, NUM_TEST_IMAGES=8)
    val = tmp_path / "out" / "rec" / "val.rec"
    val.write_bytes(val.read_bytes()[:-10])
    code, stdout, stderr = run_command("--config", str(copy_config), "--split", "train,val")
    assert code == 1
    assert re.search(r"train:\s+OK", stdout) and "test:" not in stdout
    assert re.search(rf"val:\s+FAILED \[truncated_rec\] {re.escape(str(val))}: ", stdout)
    assert "rebuild with: python build_imagenet.py" in stderr

    code, _, stderr = run_command("--config", str(tmp_path / "none.py"))
    assert code == 2 and "config file not found" in stderr
