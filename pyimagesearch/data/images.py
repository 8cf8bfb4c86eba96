"""Read one image file and turn it into the JPEG a record stores, without losing it quietly.

What this does that MXNet's ``im2rec.py`` does not:

* every decodable image becomes a 3-channel JPEG whatever it was (PNG content under a
  ``.JPEG`` name, CMYK with Adobe polarity, grayscale, RGBA, palette), decoded with
  Pillow because OpenCV accepts a truncated JPEG with only a warning;
* every file that cannot be read (absent, empty, not an image, truncated) raises
  :class:`UnreadableImage`, whose message is the reason, so the caller can report it
  by path;
* extreme sizes are decided, not left to chance: a tiny image (1x1) is enlarged to the
  stored size like any other; a huge JPEG (12000x12000) is decoded with DCT scaling, so it
  costs little; an image above Pillow's decompression-bomb limit (about 179 megapixels)
  is refused as "too large" before any pixel is decoded; and an image more elongated
  than ``max_aspect_ratio`` (default 20:1) is refused as an "extreme aspect ratio",
  read from the header, because resizing its shorter side would give an absurd longer
  side (1x60000 at 256 px is 256x15,360,000, 11 GB) and squeezing it would distort it.
  16-bit channels are scaled to 8 bits.

:func:`stored_image_mean` decodes a stored JPEG as ``mx.io.ImageRecordIter``'s OpenCV
does, so the training-set mean is that of the images as stored. Nothing here imports
MXNet: the worker processes of :mod:`pyimagesearch.data.records` run these functions.
"""

from __future__ import annotations

import io
import os
import stat
import struct
import warnings
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from pyimagesearch import settings

# What Pillow's plugins raise on malformed data besides UnidentifiedImageError.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error,
                  Image.DecompressionBombError)


# Longer side / shorter side beyond which an image is refused (see the module docstring),
# loose enough for ordinary photographs and panoramas; at RESIZE=256 the longest stored side
# is then 5120 px. A refused image is listed with the skipped files (--strict: a failure).
DEFAULT_MAX_ASPECT_RATIO: float = settings.default("BUILD_MAX_ASPECT_RATIO")


class UnreadableImage(Exception):
    """A listed file that cannot become a record; ``str(exc)`` is the reason."""


def _open_checked(data: bytes, max_aspect_ratio: float | None) -> Image.Image:
    """``Image.open`` with the size checks made from the header, before any decoding."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # DecompressionBombWarning: decided below
            image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise UnreadableImage("not an image (unrecognised format)") from None
    except Image.DecompressionBombError as exc:
        raise UnreadableImage(f"too large ({exc})") from None
    except _DECODE_ERRORS as exc:
        raise UnreadableImage(f"damaged image header ({exc})") from None
    width, height = image.size
    if width < 1 or height < 1:
        raise UnreadableImage(f"damaged image header (size {width}x{height})")
    if max_aspect_ratio is not None:
        ratio = max(width, height) / min(width, height)
        if ratio > max_aspect_ratio:
            raise UnreadableImage(
                f"extreme aspect ratio ({width}x{height} px, {ratio:.4g}:1, above the "
                f"{max_aspect_ratio:g}:1 limit: its shorter side resized would make the "
                f"longer side absurd)")
    return image


# --- decoding, converting, resizing, encoding (runs in the worker processes) -------------
def decode_image(data: bytes, draft_size: int | None = None,
                 max_aspect_ratio: float | None = None) -> np.ndarray:
    """Decode image bytes of any format Pillow knows into an RGB ``uint8`` array.

    Truncated files raise :class:`UnreadableImage` (Pillow raises on missing data unless
    ``ImageFile.LOAD_TRUNCATED_IMAGES`` is set, which is forced off here). CMYK JPEGs are
    read with Adobe polarity, as Photoshop writes them. EXIF orientation is applied, as
    OpenCV's ``imread`` (and so ``im2rec``) does.

    Parameters
    ----------
    data : bytes
        The file's contents.
    draft_size : int, optional
        If given, a JPEG is decoded with DCT scaling (``Image.draft``) to the smallest size
        whose shorter side is still at least ``draft_size``, which is much cheaper for the
        multi-megapixel photos in ImageNet.
    max_aspect_ratio : float, optional
        Refuse images whose longer side exceeds the shorter one more than this.
    """
    if not data:
        raise UnreadableImage("empty file")
    image = _open_checked(data, max_aspect_ratio)
    kind = image.format or "image"
    previous = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = False
    try:
        with warnings.catch_warnings():
            # Palette transparency and odd EXIF data warn; neither loses the image.
            warnings.simplefilter("ignore")
            if draft_size and kind == "JPEG":
                image.draft("RGB", (draft_size, draft_size))
            image.load()
            if image.getexif().get(0x0112, 1) != 1:
                image = ImageOps.exif_transpose(image)
            return _to_rgb(image)
    except _DECODE_ERRORS as exc:
        what = "truncated" if "truncated" in str(exc) else "damaged"
        raise UnreadableImage(f"{what} {kind} ({exc})") from None
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = previous


def _to_rgb(image: Image.Image) -> np.ndarray:
    if image.mode == "RGB":
        return np.asarray(image)
    if image.mode.startswith("I;16") or image.mode in ("I", "F"):
        # 16-bit (or float) grayscale: Pillow's convert("L") clips instead of scaling.
        values = np.asarray(image, dtype=np.float64)
        if image.mode != "F" or values.max(initial=0) > 255:
            values = values / 257.0
        gray = np.clip(values + 0.5, 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    # CMYK, L, LA, P, PA, RGBA, YCbCr, ...; alpha is dropped as OpenCV and PIL loaders do.
    return np.asarray(image.convert("RGB"))


def resize_shorter(image: np.ndarray, size: int) -> np.ndarray:
    """Resize so the shorter side is ``size`` (aspect kept, longer side rounded, >= size).

    Shrinking uses ``cv2.INTER_AREA`` (no aliasing); enlarging uses ``cv2.INTER_CUBIC``.
    """
    height, width = image.shape[:2]
    if min(height, width) == size:
        return image
    if height <= width:
        new_height, new_width = size, max(size, int(width * size / height + 0.5))
    else:
        new_height, new_width = max(size, int(height * size / width + 0.5)), size
    interpolation = cv2.INTER_AREA if size < min(height, width) else cv2.INTER_CUBIC
    return cv2.resize(image, (new_width, new_height), interpolation=interpolation)


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    """Encode an RGB array as a JPEG with OpenCV (which wants BGR)."""
    bgr = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR)
    ok, buffer = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:  # pragma: no cover - OpenCV only fails on invalid arguments
        raise RuntimeError("cv2.imencode failed")
    return buffer.tobytes()


def read_image_file(path: str | Path, draft_size: int | None = None,
                    max_aspect_ratio: float | None = None) -> np.ndarray:
    """Read and decode one image file; :class:`UnreadableImage` says why it cannot be."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise UnreadableImage("file not found") from None
    except OSError as exc:
        raise UnreadableImage(f"cannot be read ({exc.strerror or exc})") from None
    if not stat.S_ISREG(info.st_mode):
        raise UnreadableImage("not a regular file")
    if info.st_size == 0:
        raise UnreadableImage("empty file")
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        raise UnreadableImage(f"cannot be read ({exc.strerror or exc})") from None
    return decode_image(data, draft_size, max_aspect_ratio)


def prepare_image(path: str | Path, resize: int, quality: int,
                  max_aspect_ratio: float | None = DEFAULT_MAX_ASPECT_RATIO) -> bytes:
    """The JPEG bytes a record stores for one image file: decoded, RGB, resized, encoded.

    The stored image's shorter side is ``resize`` (a smaller image is enlarged); images
    more elongated than ``max_aspect_ratio`` raise :class:`UnreadableImage`.
    """
    rgb = read_image_file(path, draft_size=resize, max_aspect_ratio=max_aspect_ratio)
    return encode_jpeg(resize_shorter(rgb, resize), quality)


def stored_image_mean(jpeg: bytes) -> tuple[float, float, float]:
    """Per-channel (R, G, B) mean of a stored JPEG, decoded as ImageRecordIter's OpenCV does."""
    bgr = cv2.imdecode(np.frombuffer(jpeg, dtype=np.uint8), cv2.IMREAD_COLOR)
    blue, green, red = cv2.mean(bgr)[:3]
    return red, green, blue
