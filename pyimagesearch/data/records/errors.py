"""What can be wrong with a ``.rec``/``.idx`` pair: :class:`RecordError` and its kinds.

Raised by the ``.idx`` parser (:mod:`pyimagesearch.data.records.index`), the record walk
(:mod:`pyimagesearch.data.records.walk`) and the checks against the manifest
(:mod:`pyimagesearch.data.records.verify`).
"""

from __future__ import annotations

from pathlib import Path

from pyimagesearch.data.dataset import DatasetError

# kind -> what it means, for people (docs/faults_data.md lists the same)
KINDS = {
    "missing": "a file is absent",
    "bad_idx_line": "an .idx line is not '<id><TAB><offset>'",
    "duplicate_id": "an id appears twice in the .idx",
    "offset_order": ".idx offsets do not increase",
    "misaligned_idx": "an .idx offset is not a multiple of 4",
    "truncated_rec": "the .rec ends inside a record",
    "stale_idx": "an .idx offset is not where a record starts (index from another build)",
    "short_idx": "the .idx lists fewer records than the manifest and the .rec hold",
    "unindexed_bytes": "the .rec holds bytes that no .idx line points at",
    "damaged_rec": "a multi-part record is broken",
    "short_record": "a record is too short to hold its IRHeader",
    "id_mismatch": "a record's header id differs from its .idx id",
    "label_not_integral": "a label is not a whole number",
    "label_range": "a label lies outside [0, NUM_CLASSES)",
    "count_mismatch": "the record count differs from the manifest's",
    "size_mismatch": "a file's size differs from the manifest's",
    "hash_mismatch": "a file's SHA-256 differs from the manifest's",
    "decode": "an image does not decode to 3 channels of the stored size",
}


class RecordError(DatasetError):
    """A ``.rec``/``.idx`` pair is damaged or does not fit its manifest.

    Attributes
    ----------
    kind : str
        One of :data:`KINDS`.
    path : str
        The file to blame (``.idx`` for index lines, ``.rec`` for records).
    line : int or None
        1-based line within ``path`` (set when ``path`` is the ``.idx``).
    idx_line : int or None
        1-based ``.idx`` line of the record involved, whichever file is blamed.
    record_id : int or None
        The record's id (the ``.idx`` key, which is the ``.lst`` index).
    """

    def __init__(self, kind: str, message: str, path: str | Path, line: int | None = None,
                 record_id: int | None = None, idx_line: int | None = None) -> None:
        self.kind = kind
        self.record_id = record_id
        self.idx_line = line if idx_line is None else idx_line
        super().__init__(message, path, line)
