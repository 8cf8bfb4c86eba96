"""MXNet ``.lst`` image lists: ``index<TAB>label<TAB>path``, one image per line.

What ``im2rec.py`` reads and ``ImageRecordIter`` accepts as ``path_imglist``. Paths are
relative to the image root, ``/``-separated, and must stay inside it; the index becomes the
record's id (``IRHeader.id``), so any record can be traced back to its line.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pyimagesearch.errors import DatasetError

# An index is a record id, which an .idx line holds in at most 18 digits; a label travels
# as the float32 of the record's header, exact only below 2**24.
MAX_INDEX = 10 ** 18 - 1
MAX_LABEL = 2 ** 24 - 1
# Numbers as the lists and the devkit write them: ASCII digits (int() would also take
# "1_0" or Arabic-Indic digits), a label also as im2rec's float ("3.000000").
_INTEGER = re.compile(r"[+-]?[0-9]+")
_NUMBER = re.compile(r"[+-]?[0-9]+(\.[0-9]*)?([eE][+-]?[0-9]+)?")


@dataclass(frozen=True)
class ListEntry:
    """One line of a ``.lst`` file."""

    index: int
    label: int
    path: str


def unsafe_path_reason(path: str) -> str | None:
    """Why ``path`` may not be joined to the image root and opened, or None if it may
    (symbolic links are followed: a dataset folder may be a link farm)."""
    if not path:
        return "is empty"
    if "\0" in path:
        return "contains a NUL byte"
    if path.startswith("/") or (path[1:2] == ":" and path[0].isalpha()):
        return "is absolute"
    if "\\" in path:
        return "contains a backslash (use '/' between folders)"
    if ".." in path.split("/"):
        return "leaves the image root ('..')"
    return None


def parse_int(text: str, what: str, path: str | Path, line: int) -> int:
    if not _INTEGER.fullmatch(text):
        raise DatasetError(f"{what} is not an integer: {text[:40]!r}", path, line)
    return int(text)


def check_unique(seen: dict, key: object, what: str, path: str | Path, line: int) -> None:
    """Note that ``key`` is on ``line``; a key seen before is a ``DatasetError``."""
    if key in seen:
        raise DatasetError(f"{what} duplicated (first at line {seen[key]})", path, line)
    seen[key] = line


def make_entries(paths: Sequence[str], labels: Sequence[int]) -> list[ListEntry]:
    """Number (path, label) pairs 0, 1, 2, ... in the given order."""
    if len(paths) != len(labels):
        raise ValueError(f"{len(paths)} paths but {len(labels)} labels")
    return [ListEntry(index, int(label), path)
            for index, (path, label) in enumerate(zip(paths, labels))]


def split_entries(train: tuple[Sequence[str], Sequence[int]],
                  val: tuple[Sequence[str], Sequence[int]],
                  test: tuple[Sequence[str], Sequence[int]],
                  seed: int) -> dict[str, list[ListEntry]]:
    """The three lists from (paths, labels), the training list shuffled once with ``seed``:
    ImageRecordIter reads records in chunks (and in contiguous parts per distributed
    worker), so class-sorted records would give class-sorted batches."""
    paths, labels = train
    order = np.random.RandomState(seed).permutation(len(paths))
    return {"train": make_entries([paths[i] for i in order], [labels[i] for i in order]),
            "val": make_entries(*val), "test": make_entries(*test)}


def format_entry(entry: ListEntry) -> str:
    """The entry's line; ``ValueError`` for what a line cannot hold, or a reader would read
    otherwise (it strips each field, as im2rec does)."""
    if any(bad in entry.path for bad in "\t\n\r") or entry.path != entry.path.strip():
        raise ValueError(f"image path contains a tab or a line break, or begins or ends with "
                         f"white space: {entry.path!r}")
    if not (0 <= entry.index <= MAX_INDEX and 0 <= entry.label <= MAX_LABEL):
        raise ValueError(f"index {entry.index} or label {entry.label} is outside 0.."
                         f"{MAX_INDEX} or 0..{MAX_LABEL}: {entry.path!r}")
    return f"{entry.index}\t{entry.label}\t{entry.path}\n"


def write_list(path: str | Path, entries: Iterable[ListEntry]) -> int:
    """Write entries to ``path`` (replacing it); return how many were written."""
    count = 0
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        for entry in entries:
            handle.write(format_entry(entry))
            count += 1
    return count


def read_list(path: str | Path, num_classes: int | None = None) -> list[ListEntry]:
    """Read a ``.lst`` file; ``DatasetError`` names the line of anything malformed or
    duplicated, a path that leaves the image root, and an empty list.

    Labels may be integers or im2rec's floats (``3.000000``), but whole and ``>= 0`` (below
    ``num_classes`` if given): one class per image.
    """
    try:
        # Lines end at "\n" only, as MXNet reads them (not at "\x0c" or "\u2028").
        with open(path, encoding="utf-8", newline="") as handle:
            lines = handle.read().split("\n")
    except FileNotFoundError:
        raise DatasetError("list file not found", path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"list file cannot be read ({exc})", path) from None
    while lines and not lines[-1].strip():
        lines.pop()

    entries: list[ListEntry] = []
    index_line: dict[int, int] = {}
    path_line: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        fields = line.rstrip("\r").split("\t")
        if len(fields) != 3 or not fields[2].strip():
            raise DatasetError("expected 'index<TAB>label<TAB>path'", path, number)
        index_text, label_text, image = (field.strip() for field in fields)
        index = parse_int(index_text, "index", path, number)
        if not _NUMBER.fullmatch(label_text):
            raise DatasetError(f"label is not a number: {label_text[:40]!r}", path, number)
        value = float(label_text)
        if not 0 <= index <= MAX_INDEX:
            raise DatasetError(f"index {index} is outside 0..{MAX_INDEX} (what an .idx holds)",
                               path, number)
        if not value.is_integer() or value < 0:
            raise DatasetError(f"label must be a whole number >= 0, got {label_text[:40]!r}",
                               path, number)
        if value > MAX_LABEL:
            raise DatasetError(f"label {label_text[:40]} is above {MAX_LABEL} (a record header "
                               f"holds it as a float32)", path, number)
        if num_classes is not None and value >= num_classes:
            raise DatasetError(f"label {label_text} is outside 0..{num_classes - 1} "
                               f"(NUM_CLASSES = {num_classes})", path, number)
        reason = unsafe_path_reason(image)
        if reason:
            raise DatasetError(f"image path {image!r} {reason}; paths are relative to the "
                               f"image root and must stay inside it", path, number)
        check_unique(index_line, index, f"index {index}", path, number)
        check_unique(path_line, image, image, path, number)
        entries.append(ListEntry(index, int(value), image))
    if not entries:
        raise DatasetError("list file is empty", path)
    return entries
