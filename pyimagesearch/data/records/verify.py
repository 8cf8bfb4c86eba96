"""Check a ``.rec``/``.idx`` pair before MXNet's C++ iterator reads it, and a whole dataset
for ``verify_records.py``.

:func:`verify_split` raises :class:`~pyimagesearch.data.records.format.RecordError` naming the
file, the ``.idx`` line, the record id and what is wrong; what it checks and why (MXNet's
iterator aborts the process on such files): docs/data.md.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pyimagesearch.config import Settings
from pyimagesearch.data.dataset import DatasetError, check_dataset, idx_path, split_records
from pyimagesearch.data.images import stored_image_problem
from pyimagesearch.data.records.format import RecordError, image_bytes_at, read_index
from pyimagesearch.data.records.walk import IndexedRec, mapped_file, walk_records
from pyimagesearch.files import sha256_file


@dataclass(frozen=True)
class VerifyResult:
    """What :func:`verify_split` found in a sound ``.rec``/``.idx`` pair."""

    rec_path: str
    idx_path: str
    count: int
    rec_bytes: int
    idx_bytes: int
    label_counts: tuple[int, ...]   # records per label (flag-0 records)
    multipart: int                  # records MXNet split at a magic word
    decoded: int = 0                # images decoded (``decode=True``)
    smallest_side: int | None = None
    hashed: bool = False
    seconds: float = 0.0


def _decode_all(rec: IndexedRec, min_side: int | None, threads: int | None) -> int:
    """Decode every record (threads: OpenCV releases the GIL); return the smallest side."""
    offsets = rec.offsets.tolist()

    def check(chunk: range) -> tuple[int | None, str | None, int]:
        smallest = 1 << 30
        for i in chunk:
            problem, side = stored_image_problem(image_bytes_at(rec.buffer, offsets[i]),
                                                 min_side)
            if problem:
                return i, problem, side
            smallest = min(smallest, side)
        return None, None, smallest

    step = 256
    chunks = [range(start, min(start + step, len(offsets)))
              for start in range(0, len(offsets), step)]
    smallest = 1 << 30
    with ThreadPoolExecutor(max_workers=threads or min(os.cpu_count() or 1, 8)) as pool:
        for index, problem, side in pool.map(check, chunks):
            if index is not None:
                raise rec.error("decode", index, f"{rec.where(index)}: {problem}")
            smallest = min(smallest, side)
    return smallest


# --- the checks ---------------------------------------------------------------------------
def _check_against_manifest(entry: dict[str, Any], files: dict[str, str],
                            check_hash: bool) -> bool:
    for kind, path in files.items():
        expected = entry.get(f"{kind}_bytes")
        actual = os.path.getsize(path)
        if expected is not None and int(expected) != actual:
            raise RecordError("size_mismatch", f"is {actual} bytes but the manifest says "
                              f"{expected}: the file changed, or was copied incompletely, "
                              f"since the build", path)
    if not check_hash:
        return False
    for kind, path in files.items():
        expected = entry.get(f"{kind}_sha256")
        if expected is None:
            continue
        actual = sha256_file(path)
        if actual != expected:
            raise RecordError("hash_mismatch", f"SHA-256 {actual[:16]}... differs from the "
                              f"manifest's {expected[:16]}...: the file changed since the build "
                              f"(bit rot, a damaged copy, or another build's file)", path)
    return True


def verify_split(rec_path: str | Path, idx_path: str | Path,
                 expected_count: int | None = None, num_classes: int | None = None,
                 decode: bool = False, manifest_entry: dict[str, Any] | None = None, *,
                 check_hash: bool = False, min_side: int | None = None,
                 threads: int | None = None) -> VerifyResult:
    """Check one ``.rec``/``.idx`` pair; raise :class:`RecordError` at the first problem.

    ``expected_count``: the records the manifest says were written (default: the count of
    ``manifest_entry``); ``num_classes``: labels must lie in ``[0, num_classes)`` (without
    it: whole and ``>= 0``); ``decode``: decode every image too (reads every byte), each
    with a shorter side of at least ``min_side``, in ``threads`` threads (default: the CPU
    count, at most 8); ``manifest_entry``: the split's entry, whose sizes (and with
    ``check_hash`` SHA-256s) the files must have.
    """
    started = time.monotonic()
    rec, idx = str(rec_path), str(idx_path)
    for path in (rec, idx):
        if not os.path.isfile(path):
            raise RecordError("missing", "file not found (build the dataset with "
                              "build_imagenet.py)", path)
    if expected_count is None and manifest_entry is not None:
        expected_count = int(manifest_entry.get("count", manifest_entry.get("written")))
    keys, offsets = read_index(idx)
    size = os.path.getsize(rec)
    smallest = None
    with mapped_file(rec, size) as buffer:
        pair = IndexedRec(rec, idx, keys, offsets, buffer, size)
        walked = walk_records(pair, num_classes, expected_count)
        if expected_count is not None and pair.n != expected_count:
            raise RecordError(
                "count_mismatch", f"holds {pair.n} records (and its .idx as many) but the "
                f"manifest says {expected_count}: these are not the files the manifest "
                f"describes (a copy of another build?)", rec)
        hashed = False
        if manifest_entry is not None:
            hashed = _check_against_manifest(manifest_entry, {"rec": rec, "idx": idx},
                                             check_hash)
        if decode and pair.n:
            smallest = _decode_all(pair, min_side, threads)
        del pair
    labels = walked.labels
    counts = np.bincount(labels.astype(np.int64), minlength=num_classes or 0) \
        if labels.size else np.zeros(num_classes or 0, np.int64)
    return VerifyResult(rec_path=rec, idx_path=idx, count=len(keys), rec_bytes=size,
                        idx_bytes=os.path.getsize(idx),
                        label_counts=tuple(int(c) for c in counts),
                        multipart=walked.multipart, decoded=len(keys) if decode else 0,
                        smallest_side=smallest, hashed=hashed,
                        seconds=time.monotonic() - started)


def _summary(result: VerifyResult) -> str:
    """One line for people: counts, per-class spread, what was checked, time."""
    counts = list(result.label_counts)
    spread = (f", {len(counts)} classes ({min(counts)}-{max(counts)} per class)"
              if counts else "")
    checks = ["structure", "labels", "sizes"]
    if result.hashed:
        checks.append("sha256")
    if result.decoded:
        checks.append(f"{result.decoded} images decoded (shorter side >= "
                      f"{result.smallest_side} px)")
    multipart = f", {result.multipart} multi-part" if result.multipart else ""
    return (f"OK  {result.count} records{spread}{multipart}; {result.rec_bytes} + "
            f"{result.idx_bytes} bytes; checked {', '.join(checks)} in "
            f"{result.seconds:.2f} s")


def _contract_summary(config: Settings, check_hash: bool = False) -> str:
    """The dataset contract's checks (manifest, classes, stored size, mean; with
    ``check_hash`` the mean file's SHA-256 too), as one line; ``DatasetError`` if not met."""
    manifest = check_dataset(config, ()).manifest
    if check_hash and sha256_file(config.DATASET_MEAN) != manifest["mean_sha256"]:
        raise DatasetError(f"SHA-256 differs from the mean file built with these records "
                           f"({manifest['path']})", config.DATASET_MEAN)
    return (f"OK  {manifest['num_classes']} classes ({manifest['label_order']} order), "
            f"{manifest['resize']} px, mean as built; identity {manifest['identity'][:12]}")


@dataclass
class DatasetReport:
    """What :func:`check_splits` found: the contract's line, and per split a
    :class:`VerifyResult` or the error that stopped its check."""

    contract: str | DatasetError
    splits: dict[str, VerifyResult | DatasetError] = field(default_factory=dict)

    @property
    def sound(self) -> bool:
        return not isinstance(self.contract, DatasetError) and not any(
            isinstance(outcome, DatasetError) for outcome in self.splits.values())

    def lines(self) -> list[str]:
        """One line per check, as ``verify_records.py`` prints them."""
        width = max(len(split) for split in (*self.splits, "dataset")) + 1
        failed = "FAILED " if isinstance(self.contract, DatasetError) else ""
        lines = [f"{'dataset:':<{width}} {failed}{self.contract}"]
        for split, outcome in self.splits.items():
            if isinstance(outcome, DatasetError):
                kind = getattr(outcome, "kind", "error")
                lines.append(f"{split + ':':<{width}} FAILED [{kind}] {outcome}")
            else:
                lines.append(f"{split + ':':<{width}} {_summary(outcome)}")
        return lines


def check_splits(config: Settings, manifest: dict[str, Any], splits: Sequence[str], *,
                 decode: bool = False, check_hash: bool = False) -> DatasetReport:
    """The dataset contract, then :func:`verify_split` on each split against its manifest
    entry, carrying on after a bad one."""
    try:
        report = DatasetReport(_contract_summary(config, check_hash))
    except DatasetError as exc:
        report = DatasetReport(exc)
    for split in splits:
        rec = split_records(config, split)
        entry = manifest["splits"][split]
        try:
            report.splits[split] = verify_split(
                rec, idx_path(rec), int(entry["count"]), config.NUM_CLASSES, decode=decode,
                manifest_entry=entry, check_hash=check_hash,
                min_side=int(manifest["resize"]) if decode else None)
        except DatasetError as exc:
            report.splits[split] = exc
    return report
