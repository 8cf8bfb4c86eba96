"""MXNet's own ``tools/im2rec.py`` as a packer (``PACKER = "im2rec"``): the book's path.

The book builds its records with im2rec; this runs the copy that ships in the installed
MXNet wheel (``mx.test_utils.get_im2rec_path()``) with the config's resize (shorter side),
JPEG quality and thread count, over the project's checked list, so that the dataset and
its manifest stay as true as with the project's own writer:

1. **Check** (worker processes, no decoding for a plain JPEG): a file that cannot be read
   is skipped with its reason, as the project's packer skips it (im2rec would print a
   line for an absent, empty or non-image file, leave it out and still exit 0, and keep
   a truncated JPEG with a grey bottom); a file that OpenCV would not read as Pillow
   does (PNG, GIF, CMYK, 16-bit, a JPEG with anything unusual, see
   :func:`pyimagesearch.data.images.plain_jpeg`) is
   converted first, by the project's decoder, to a lossless PNG of the stored size, and
   im2rec packs that; plain JPEGs go to im2rec as they are.
2. **im2rec** runs in a folder of its own beside the records (``<rec>.im2rec``), as a
   subprocess in its own process group, with a watchdog: no byte written for
   ``BUILD_WORKER_TIMEOUT`` seconds stops it (:class:`~pyimagesearch.data.workers.WorkerError`),
   and so does Ctrl-C. It resizes with ``cv2.INTER_LINEAR`` from the full-size decode and
   rounds the longer side down, where the project's packer uses DCT scaling and rounds to
   nearest, so the two packers' images differ by a pixel of width and a little aliasing.
3. **Reconcile**: im2rec writes records in list order under the list's indices; a listed
   image missing from its ``.idx`` that OpenCV cannot decode either is skipped with that
   reason; one that decodes means im2rec lost it (a worker died), and the build fails.
4. **Mean** (training split): im2rec computes none, so the stored JPEGs are decoded once
   more, by the worker processes, as ``mx.io.ImageRecordIter`` will decode them.

im2rec writes with MXNet's C++ writer, which drops its buffered tail silently when the
disk fills; the build's header walk of what was written
(:func:`pyimagesearch.data.verify.verify_split`) catches that.
"""

from __future__ import annotations

import logging
import mmap
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pyimagesearch.data.images import (
    UnreadableImage,
    decode_bgr,
    plain_jpeg,
    read_image_bytes,
    resize_shorter,
    stored_image_mean,
)
from pyimagesearch.data.lists import ListEntry, write_list
from pyimagesearch.data.packing import PackResult, PackSettings
from pyimagesearch.data.progress import Progress
from pyimagesearch.data.records import image_bytes_at, naming_errors
from pyimagesearch.data.workers import BuildError, ImageWorkers, WorkerError

logger = logging.getLogger(__name__)

_POLL_SECONDS = 0.2
_COUNT_LINE = re.compile(rb"count:\s*(\d+)")


def im2rec_path() -> str:
    """The ``im2rec.py`` of the installed MXNet wheel."""
    import mxnet as mx

    return mx.test_utils.get_im2rec_path()


def work_folder(rec_path: str | Path) -> Path:
    """The folder im2rec works in: beside the records, so its output is renamed, not copied."""
    rec_path = Path(rec_path)
    return rec_path.with_name(f"{rec_path.name}.im2rec")


# --- 1. check (in the worker processes) --------------------------------------------------
@dataclass(frozen=True)
class _CheckSettings:
    pack: PackSettings
    converted: str  # folder for the converted files


# (index, path for im2rec or None, skip reason or None)
_Checked = tuple[int, str | None, str | None]


def _check_one(settings: _CheckSettings, entry: ListEntry) -> _Checked:
    pack = settings.pack
    path = os.path.join(pack.image_root, entry.path)
    try:
        data = read_image_bytes(path)
        if plain_jpeg(data, pack.max_aspect_ratio) is not None:
            return entry.index, entry.path, None
        bgr = resize_shorter(decode_bgr(data, pack.resize, pack.max_aspect_ratio),
                             pack.resize)
    except UnreadableImage as exc:
        return entry.index, None, str(exc)
    except MemoryError:
        return entry.index, None, "out of memory while converting it"
    except cv2.error as exc:
        message = str(exc).strip().splitlines()[-1] if str(exc).strip() else "error"
        return entry.index, None, f"cannot be converted (OpenCV: {message})"
    converted = os.path.join(settings.converted, f"{entry.index}.png")
    png = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 1])[1]
    with open(converted, "wb") as handle, naming_errors(converted):  # a full disk says so
        handle.write(png.tobytes())
    return entry.index, converted, None


# --- 2. run im2rec --------------------------------------------------------------------------
def _run_im2rec(list_path: Path, image_root: str, settings: PackSettings, threads: int,
                timeout: float | None, progress: Progress, total: int) -> None:
    """Run im2rec on ``list_path``; it writes ``<stem>.rec``/``.idx`` beside the list."""
    folder = list_path.parent
    rec = list_path.with_suffix(".rec")
    command = [sys.executable, im2rec_path(), "--resize", str(settings.resize),
               "--quality", str(settings.quality), "--num-thread", str(threads),
               str(list_path.with_suffix("")), image_root]
    log_path = folder / "im2rec.log"
    with open(log_path, "wb") as log:
        # Its own session, so that its worker processes can be stopped with it; unbuffered,
        # so that its "count:" lines arrive as it goes.
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, cwd=folder,
                                   env={**os.environ, "PYTHONUNBUFFERED": "1"},
                                   start_new_session=True)
    try:
        size, changed, reported = -1, time.monotonic(), 0
        while process.poll() is None:
            time.sleep(_POLL_SECONDS)
            now = time.monotonic()
            current = rec.stat().st_size if rec.exists() else 0
            if current != size:
                size, changed = current, now
            elif timeout is not None and now - changed > timeout:
                raise WorkerError(
                    f"im2rec has written nothing to {rec.name} for {timeout:g} s "
                    f"(BUILD_WORKER_TIMEOUT): it hangs or an image takes pathologically "
                    f"long; it was stopped")
            counts = _COUNT_LINE.findall(_tail(log_path))
            if counts and int(counts[-1]) > reported:
                progress.update(int(counts[-1]) - reported)
                reported = int(counts[-1])
        progress.update(max(total - reported, 0))
    finally:
        if process.poll() is None:  # an error above, or Ctrl-C: stop it and its workers
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    if process.returncode != 0 or not list_path.with_suffix(".idx").is_file():
        tail = _tail(log_path).decode(errors="replace").strip().splitlines()[-3:]
        what = (f"exited with status {process.returncode}" if process.returncode
                else f"wrote no {list_path.with_suffix('.idx').name}")
        raise BuildError(f"im2rec ({command[1]}) {what}: {' | '.join(tail) or 'no output'}")


def _tail(path: Path, size: int = 4096) -> bytes:
    with open(path, "rb") as handle:
        handle.seek(max(path.stat().st_size - size, 0))
        return handle.read()


# --- 3. reconcile ----------------------------------------------------------------------------
def _written_keys(idx_path: Path) -> list[int]:
    with open(idx_path, encoding="ascii") as handle:
        return [int(line.split("\t", 1)[0]) for line in handle if line.strip()]


def _why_dropped(path: str, settings: PackSettings) -> str | None:
    """Why im2rec dropped ``path``: the project's reason, or OpenCV's; None if it should not have.

    A file that passed the check and still fails is one that only a full decode shows as
    damaged (a bogus Huffman table, say): the project's packer would skip it too.
    """
    try:
        data = read_image_bytes(path)
        decode_bgr(data, settings.resize, settings.max_aspect_ratio)
    except UnreadableImage as exc:
        return str(exc)
    if cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) is None:
        return "OpenCV, im2rec's decoder, cannot decode it"
    return None


# --- 4. the mean, from the stored JPEGs (in the worker processes) ------------------------
@dataclass(frozen=True)
class _StoredRecord:
    path: str  # the listed image, named in messages
    offset: int


def _stored_mean(rec_path: str, record: _StoredRecord) -> tuple[float, float, float]:
    with open(rec_path, "rb") as handle, \
            mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as buffer:
        return stored_image_mean(image_bytes_at(buffer, record.offset))


def _stored_records(idx_path: Path, entries: Sequence[ListEntry]) -> list[_StoredRecord]:
    paths = {entry.index: entry.path for entry in entries}
    with open(idx_path, encoding="ascii") as handle:
        return [_StoredRecord(paths[int(key)], int(offset))
                for key, offset in (line.split("\t") for line in handle if line.strip())]


def pack_with_im2rec(entries: Sequence[ListEntry], settings: PackSettings,
                     rec_path: str | Path, idx_path: str | Path, pool: ImageWorkers,
                     description: str) -> PackResult:
    """:func:`pyimagesearch.data.packing.pack_records` with ``packer="im2rec"``."""
    result = PackResult(listed=len(entries), packer="im2rec")
    result.count_listed(entries)
    work = work_folder(rec_path)
    shutil.rmtree(work, ignore_errors=True)
    converted = work / "converted"
    converted.mkdir(parents=True)
    try:
        reasons: dict[int, str] = {}
        to_pack: list[ListEntry] = []
        progress = Progress(len(entries), f"{description}: checking for im2rec")
        try:
            check = _CheckSettings(settings, str(converted))
            for entry, (_, path, reason) in zip(entries, pool.map(_check_one, check, entries)):
                if path is None:
                    reasons[entry.index] = str(reason)
                else:
                    to_pack.append(ListEntry(entry.index, entry.label, path))
                progress.update()
        finally:
            progress.close()
        logger.info("%s: %d of %d images converted for im2rec", description,
                    sum(os.path.isabs(item.path) for item in to_pack), len(entries))

        list_path = work / "records.lst"
        with naming_errors(list_path):
            write_list(list_path, to_pack)
        progress = Progress(len(to_pack), f"{description}: im2rec")
        try:
            _run_im2rec(list_path, settings.image_root, settings, pool.workers, pool.timeout,
                        progress, len(to_pack))
        finally:
            progress.close()

        written = set(_written_keys(list_path.with_suffix(".idx")))
        lost = []
        for item in to_pack:
            if item.index not in written:
                reason = _why_dropped(os.path.join(settings.image_root, item.path), settings)
                if reason is None:
                    lost.append(item.path)
                else:
                    reasons[item.index] = reason
        if lost:
            raise BuildError(f"im2rec did not write {len(lost)} image(s) that decode "
                             f"(first: {lost[0]}): one of its processes died?")
        os.replace(list_path.with_suffix(".rec"), rec_path)
        os.replace(list_path.with_suffix(".idx"), idx_path)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    for entry in entries:
        if entry.index in reasons:
            result.add_skipped(entry.path, reasons[entry.index], description)
        else:
            result.add_written(entry.label)
    if settings.compute_mean and result.written:
        records = _stored_records(Path(idx_path), entries)
        progress = Progress(len(records), f"{description}: mean of the stored images")
        try:
            for mean in pool.map(_stored_mean, str(rec_path), records):
                result.mean_sum += mean
                progress.update()
        finally:
            progress.close()
    return result
