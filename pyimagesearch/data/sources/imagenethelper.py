"""Read the ILSVRC2015 CLS-LOC devkit into (path, label) lists, as the book's ImageNetHelper.

Paths are relative to ``IMAGES_PATH``, every devkit file is validated with errors that name
the file and line, the label order is selectable (``LABEL_ORDER``), and the test split is
carved out here, stratified and seeded. The tree and the differences from the book's helper:
docs/data.md.
"""

from __future__ import annotations

import codecs
import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pyimagesearch.config import ConfigError, Settings
from pyimagesearch.data.records.lists import check_unique, parse_int
from pyimagesearch.errors import DatasetError
from pyimagesearch.files import sha256_file

logger = logging.getLogger(__name__)

LABEL_ORDERS = ("map_clsloc", "sorted_wnid")

_WNID = re.compile(r"n[0-9]{8}")
# "<wnid>/<image id>": exactly one folder, and an image id that is a plain file name, so
# the path joined to IMAGES_PATH cannot leave it ("n01440764/../../etc/passwd" is refused).
_TRAIN_ENTRY = re.compile(r"(n[0-9]{8})/([^/\\\s]+)")

_REQUIRED_FIELDS = ("IMAGES_PATH", "WORD_IDS", "TRAIN_LIST", "VAL_LIST", "VAL_LABELS",
                    "VAL_BLACKLIST", "NUM_CLASSES")


@dataclass(frozen=True)
class ClassInfo:
    """One ILSVRC class: WordNet id, 0-based training label, devkit name and class id."""

    wnid: str
    label: int
    name: str
    class_id: int

    def as_dict(self) -> dict[str, str | int]:
        return {"wnid": self.wnid, "label": self.label, "name": self.name,
                "class_id": self.class_id}


@dataclass(frozen=True)
class TestSplit:
    """The training set after the book's test split is carved out of it."""

    train_paths: list[str]
    train_labels: list[int]
    test_paths: list[str]
    test_labels: list[int]


# Byte-order marks of encodings other than UTF-8, longest first (UTF-32 LE starts like
# UTF-16 LE): a devkit file in one of them is refused by name.
_FOREIGN_BOMS = ((codecs.BOM_UTF32_LE, "UTF-32"), (codecs.BOM_UTF32_BE, "UTF-32"),
                 (codecs.BOM_UTF16_LE, "UTF-16"), (codecs.BOM_UTF16_BE, "UTF-16"))


def _numbered_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, stripped text) of every line of a devkit file.

    Trailing blank lines are tolerated; a blank line in the middle is an error (the ground
    truth is aligned by position). A UTF-8 byte-order mark is skipped; a UTF-16 or UTF-32
    file is refused naming its mark.
    """
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        raise DatasetError("file not found", path) from None
    except OSError as exc:
        raise DatasetError(f"cannot be read ({exc})", path) from None
    for bom, encoding in _FOREIGN_BOMS:
        if data.startswith(bom):
            raise DatasetError(f"starts with a {encoding} byte-order mark ({bom.hex(' ')}): "
                               f"the devkit files are UTF-8 text; save it as UTF-8", path)
    if data.startswith(codecs.BOM_UTF8):
        logger.info("%s: UTF-8 byte-order mark skipped", path)
    try:
        # Lines end at "\n" (or "\r\n") only: the ground truth is aligned by position, and
        # str.splitlines() would also break at "\x85" or "\u2028" inside a line.
        lines = data.decode("utf-8-sig").split("\n")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"cannot be read ({exc})", path) from None
    while lines and not lines[-1].strip():
        lines.pop()
    for number, line in enumerate(lines, start=1):
        text = line.strip()
        if not text:
            raise DatasetError("blank line", path, number)
        if "\ufeff" in text:
            raise DatasetError("a byte-order mark (U+FEFF) inside the file: was it joined "
                               "from files saved with one?", path, number)
        yield number, text


class ImageNetHelper:
    """Turn an ILSVRC2015 devkit into training, validation and test (path, label) lists.

    ``config`` names the devkit files (``WORD_IDS``, ``TRAIN_LIST``, ``VAL_LIST``,
    ``VAL_LABELS``, ``VAL_BLACKLIST``), ``IMAGES_PATH`` and ``NUM_CLASSES``, and may set
    ``LABEL_ORDER``, ``NUM_TEST_IMAGES`` and ``TEST_SPLIT_SEED``. ``classes``: every
    :class:`ClassInfo`, by label; ``label_mappings``: WordNet id -> 0-based label (the
    book's ``labelMappings``).
    """

    def __init__(self, config: Settings) -> None:
        config.require(*_REQUIRED_FIELDS)
        self.config = config
        self.label_order = config.LABEL_ORDER
        if self.label_order not in LABEL_ORDERS:
            raise ConfigError(f"{config.source}: LABEL_ORDER must be one of "
                              f"{', '.join(LABEL_ORDERS)}, not {self.label_order!r}")
        self.classes = self._read_class_map()
        self.label_mappings = {info.wnid: info.label for info in self.classes}
        self._label_of_class_id = {info.class_id: info.label for info in self.classes}

    # --- the class map ---------------------------------------------------------------
    def _read_class_map(self) -> list[ClassInfo]:
        path = self.config.WORD_IDS
        num_classes = int(self.config.NUM_CLASSES)
        rows: list[tuple[str, int, str]] = []
        wnid_line: dict[str, int] = {}
        id_line: dict[int, int] = {}
        for number, text in _numbered_lines(path):
            fields = text.split(maxsplit=2)
            if len(fields) != 3:
                raise DatasetError("expected '<wnid> <class id> <name>'", path, number)
            wnid, raw_id, name = fields
            if not _WNID.fullmatch(wnid):
                raise DatasetError(f"not a WordNet id: {wnid!r}", path, number)
            class_id = parse_int(raw_id, "class id", path, number)
            if not 1 <= class_id <= num_classes:
                raise DatasetError(f"class id {class_id} is outside 1..{num_classes} "
                                   f"(NUM_CLASSES)", path, number)
            check_unique(wnid_line, wnid, f"WordNet id {wnid}", path, number)
            check_unique(id_line, class_id, f"class id {class_id}", path, number)
            rows.append((wnid, class_id, name))
        if len(rows) != num_classes:
            raise DatasetError(f"lists {len(rows)} classes but NUM_CLASSES is {num_classes}",
                               path)

        if self.label_order == "map_clsloc":
            # The book: label = class id - 1, i.e. map_clsloc.txt's own order.
            label_of = {wnid: class_id - 1 for wnid, class_id, _ in rows}
        else:
            label_of = {wnid: rank for rank, wnid in enumerate(sorted(wnid_line))}
        classes = [ClassInfo(wnid, label_of[wnid], name, class_id)
                   for wnid, class_id, name in rows]
        return sorted(classes, key=lambda info: info.label)

    def build_class_labels(self) -> dict[str, int]:
        """WordNet id -> 0-based label, in the configured ``LABEL_ORDER``."""
        return dict(self.label_mappings)

    # --- training and validation lists -----------------------------------------------
    def build_training_set(self) -> tuple[list[str], list[int]]:
        """Every image that ``train_cls.txt`` lists (``train/<wnid>/<wnid>_<n>.JPEG``,
        relative to ``IMAGES_PATH``), and its 0-based label."""
        path = self.config.TRAIN_LIST
        paths: list[str] = []
        labels: list[int] = []
        seen: dict[str, int] = {}
        for number, text in _numbered_lines(path):
            fields = text.split()
            if len(fields) != 2:
                raise DatasetError("expected '<wnid>/<image id> <running index>'", path, number)
            match = _TRAIN_ENTRY.fullmatch(fields[0])
            if match is None or match.group(2).startswith("."):
                raise DatasetError(f"expected '<wnid>/<image id>' (an image id naming a file "
                                   f"in the class folder), got {fields[0]!r}", path, number)
            parse_int(fields[1], "running index", path, number)
            wnid = match.group(1)
            if wnid not in self.label_mappings:
                raise DatasetError(f"unknown WordNet id {wnid} (not in "
                                   f"{Path(self.config.WORD_IDS).name})", path, number)
            check_unique(seen, fields[0], fields[0], path, number)
            paths.append(f"train/{fields[0]}.JPEG")
            labels.append(self.label_mappings[wnid])
        if not paths:
            raise DatasetError("lists no training images, so there is no dataset", path)
        present = set(labels)
        empty = [info for info in self.classes if info.label not in present]
        if empty:
            shown = ", ".join(f"{info.wnid} (class id {info.class_id}, {info.name!r})"
                              for info in empty[:10])
            more = f" and {len(empty) - 10} more" if len(empty) > 10 else ""
            raise DatasetError(
                f"lists no training image for {len(empty)} of the {len(self.classes)} "
                f"classes of {Path(self.config.WORD_IDS).name}: {shown}{more}; a class "
                f"without training images cannot be learned", path)
        return paths, labels

    def read_validation_labels(self) -> list[int]:
        """0-based label of every validation image, in ``val.txt`` order."""
        path = self.config.VAL_LABELS
        labels = []
        for number, text in _numbered_lines(path):
            class_id = parse_int(text, "class id", path, number)
            if class_id not in self._label_of_class_id:
                raise DatasetError(f"class id {class_id} is outside 1..{len(self.classes)}",
                                   path, number)
            labels.append(self._label_of_class_id[class_id])
        return labels

    def read_validation_names(self) -> list[str]:
        """Image names from ``val.txt``; the running index must count 1, 2, 3, ... (the
        ground truth and the blacklist refer to images by position)."""
        path = self.config.VAL_LIST
        names = []
        seen: dict[str, int] = {}
        for number, text in _numbered_lines(path):
            fields = text.split()
            if len(fields) != 2:
                raise DatasetError("expected '<image name> <running index>'", path, number)
            name, raw_index = fields
            index = parse_int(raw_index, "running index", path, number)
            if index != number:
                raise DatasetError(f"running index {index} where {number} was expected",
                                   path, number)
            if "/" in name or "\\" in name or name.startswith("."):
                raise DatasetError(f"image name must be a plain file name (no folder), got "
                                   f"{name!r}", path, number)
            check_unique(seen, name, name, path, number)
            names.append(name)
        return names

    def read_blacklist(self, num_val: int) -> set[int]:
        """1-based validation indices to drop; each must lie in ``1..num_val``."""
        path = self.config.VAL_BLACKLIST
        indices: dict[int, int] = {}
        for number, text in _numbered_lines(path):
            index = parse_int(text, "validation index", path, number)
            if not 1 <= index <= num_val:
                raise DatasetError(f"validation index {index} is outside 1..{num_val}",
                                   path, number)
            check_unique(indices, index, f"validation index {index}", path, number)
        return set(indices)

    def build_validation_set(self) -> tuple[list[str], list[int]]:
        """Validation images (``val/ILSVRC2012_val_<8 digits>.JPEG``, relative to
        ``IMAGES_PATH``) and their 0-based labels from the ground truth, minus the blacklist."""
        names = self.read_validation_names()
        labels = self.read_validation_labels()
        if len(labels) != len(names):
            raise DatasetError(f"has {len(labels)} labels but {self.config.VAL_LIST} lists "
                               f"{len(names)} images", self.config.VAL_LABELS)
        blacklist = self.read_blacklist(len(names))
        kept = [(f"val/{name}.JPEG", label)
                for position, (name, label) in enumerate(zip(names, labels), start=1)
                if position not in blacklist]
        logger.debug("validation: %d images, %d blacklisted", len(names), len(blacklist))
        if not kept:
            raise DatasetError(f"lists no validation image that the blacklist "
                               f"({Path(self.config.VAL_BLACKLIST).name}) leaves: "
                               f"{len(names)} listed, {len(blacklist)} blacklisted",
                               self.config.VAL_LIST)
        return [path for path, _ in kept], [label for _, label in kept]

    # --- the book's test split -------------------------------------------------------
    def split_test_set(self, paths: Sequence[str], labels: Sequence[int],
                       num_test: int | None = None, seed: int | None = None) -> TestSplit:
        """Carve a stratified, seeded test split out of the training set (``paths``,
        ``labels``): ``num_test`` images (default ``NUM_TEST_IMAGES``) drawn with
        ``RandomState(seed)`` (default ``TEST_SPLIT_SEED``), how: docs/data.md."""
        if num_test is None:
            self.config.require("NUM_TEST_IMAGES")
            num_test = int(self.config.NUM_TEST_IMAGES)
        if seed is None:
            seed = int(self.config.TEST_SPLIT_SEED)
        if len(paths) != len(labels):
            raise ValueError(f"{len(paths)} paths but {len(labels)} labels")
        members: dict[int, list[int]] = {}
        for position, label in enumerate(labels):
            members.setdefault(int(label), []).append(position)
        capacity = sum(len(group) - 1 for group in members.values())
        if not 0 <= num_test <= capacity:
            raise ConfigError(f"NUM_TEST_IMAGES={num_test} cannot be carved out of "
                              f"{len(paths)} training images in {len(members)} classes "
                              f"(at most {capacity}, leaving one per class)")

        quotas = _allocate(num_test, {label: len(group) for label, group in members.items()})
        rng = np.random.RandomState(seed)
        chosen = np.zeros(len(paths), dtype=bool)
        for label in sorted(members):
            group = members[label]
            picks = rng.permutation(len(group))[:quotas[label]]
            chosen[[group[i] for i in picks]] = True
        return TestSplit(
            train_paths=[p for p, c in zip(paths, chosen) if not c],
            train_labels=[int(lb) for lb, c in zip(labels, chosen) if not c],
            test_paths=[p for p, c in zip(paths, chosen) if c],
            test_labels=[int(lb) for lb, c in zip(labels, chosen) if c],
        )

    # --- provenance ------------------------------------------------------------------
    def source_files(self) -> dict[str, str]:
        """The devkit lists this helper reads, by config field name."""
        return {name: str(getattr(self.config, name))
                for name in ("WORD_IDS", "TRAIN_LIST", "VAL_LIST", "VAL_LABELS",
                             "VAL_BLACKLIST")}

    def fingerprints(self) -> dict[str, dict[str, str]]:
        """SHA-256 of every devkit list, so a dataset records exactly what it came from."""
        return {name: {"path": path, "sha256": sha256_file(path)}
                for name, path in self.source_files().items()}


def _allocate(total: int, sizes: dict[int, int]) -> dict[int, int]:
    """Split ``total`` over classes in proportion to ``sizes`` (largest remainder method),
    leaving every class at least one member for training."""
    count = sum(sizes.values())
    exact = {label: total * size / count for label, size in sizes.items()}
    quotas = {label: min(int(share), sizes[label] - 1) for label, share in exact.items()}
    left = total - sum(quotas.values())
    # Largest fractional share first, then the lower label: deterministic tie-breaking.
    order = sorted(sizes, key=lambda label: (quotas[label] - exact[label], label))
    while left > 0:
        progressed = False
        for label in order:
            if left == 0:
                break
            if quotas[label] < sizes[label] - 1:
                quotas[label] += 1
                left -= 1
                progressed = True
        if not progressed:  # pragma: no cover - excluded by the capacity check
            raise ValueError("test split larger than the training set allows")
    return quotas
