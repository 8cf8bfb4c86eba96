"""MXNet ``.lst`` image lists: ``index<TAB>label<TAB>path``, one image per line.

This is the format that MXNet's ``im2rec.py`` reads and ``mx.io.ImageRecordIter``
accepts as ``path_imglist``. Paths are relative to the image root (``IMAGES_PATH``), with
``/`` separators, and must stay inside it: an absolute path, a ``..`` component, a
backslash or a NUL byte is refused (:func:`unsafe_path_reason`), because the path is
joined to the root and opened. The index becomes the record's id (``IRHeader.id``), so
any record can be traced back to its line.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pyimagesearch.data.dataset import DatasetError


@dataclass(frozen=True)
class ListEntry:
    """One line of a ``.lst`` file."""

    index: int
    label: int
    path: str


def unsafe_path_reason(path: str) -> str | None:
    """Why ``path`` may not be joined to the image root, or None if it may.

    Symbolic links are not resolved: a dataset folder may legitimately be a link farm.
    """
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


def make_entries(paths: Sequence[str], labels: Sequence[int]) -> list[ListEntry]:
    """Number (path, label) pairs 0, 1, 2, ... in the given order."""
    if len(paths) != len(labels):
        raise ValueError(f"{len(paths)} paths but {len(labels)} labels")
    return [ListEntry(index, int(label), path)
            for index, (path, label) in enumerate(zip(paths, labels))]


def format_entry(entry: ListEntry) -> str:
    if "\t" in entry.path or "\n" in entry.path:
        raise ValueError(f"image path contains a tab or newline: {entry.path!r}")
    return f"{entry.index}\t{entry.label}\t{entry.path}\n"


def write_list(path: str | Path, entries: Iterable[ListEntry]) -> int:
    """Write entries to ``path`` (replacing it) and return how many were written.

    The caller chooses the name; ``build_imagenet`` writes to a temporary name and renames
    the file into place once the whole dataset is complete.
    """
    count = 0
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        for entry in entries:
            handle.write(format_entry(entry))
            count += 1
    return count


def read_list(path: str | Path, num_classes: int | None = None) -> list[ListEntry]:
    """Read a ``.lst`` file, rejecting malformed and duplicated lines by line number.

    Labels may be written as integers or as im2rec's floats (``3.000000``); they must be
    whole, non-negative numbers (below ``num_classes`` if given) because ImageNet has one
    class per image. Image paths must stay inside the image root (see the module doc).
    An empty list is an error.
    """
    try:
        with open(path, encoding="utf-8") as handle:
            lines = handle.read().splitlines()
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
        try:
            index = int(index_text)
        except ValueError:
            raise DatasetError(f"index is not an integer: {index_text!r}",
                               path, number) from None
        try:
            value = float(label_text)
        except ValueError:
            raise DatasetError(f"label is not a number: {label_text!r}", path, number) from None
        if index < 0:
            raise DatasetError(f"negative index {index}", path, number)
        if not value.is_integer() or value < 0:
            raise DatasetError(f"label must be a whole number >= 0, got {label_text!r}",
                               path, number)
        if num_classes is not None and value >= num_classes:
            raise DatasetError(f"label {label_text} is outside 0..{num_classes - 1} "
                               f"(NUM_CLASSES = {num_classes})", path, number)
        reason = unsafe_path_reason(image)
        if reason:
            raise DatasetError(f"image path {image!r} {reason}; paths are relative to the "
                               f"image root and must stay inside it", path, number)
        if index in index_line:
            raise DatasetError(f"index {index} duplicated (first at line {index_line[index]})",
                               path, number)
        if image in path_line:
            raise DatasetError(f"{image} duplicated (first at line {path_line[image]})",
                               path, number)
        index_line[index] = number
        path_line[image] = number
        entries.append(ListEntry(index, int(value), image))
    if not entries:
        raise DatasetError("list file is empty", path)
    return entries
