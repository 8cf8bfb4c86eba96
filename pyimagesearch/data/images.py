"""Read one image file and turn it into the image a record stores, without losing it quietly.

Any decodable image becomes 3 channels, one decode both checks and shrinks (a JPEG marker walk
lets plain JPEGs go to OpenCV with DCT scaling, everything else to Pillow), and a file that
cannot be stored raises :class:`UnreadableImage` with the reason. Nothing here imports MXNet:
the build's worker processes run it. The decode policy and its limits: docs/data.md.
"""

from __future__ import annotations

import io
import os
import stat
import struct
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from pyimagesearch import settings

# What Pillow's plugins raise on malformed data besides UnidentifiedImageError.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error,
                  Image.DecompressionBombError)


# Longer side / shorter side beyond which an image is refused (docs/data.md): loose enough
# for photographs and panoramas; at RESIZE=256 the longest stored side is then 5120 px.
DEFAULT_MAX_ASPECT_RATIO: float = settings.default("BUILD_MAX_ASPECT_RATIO")


# The most bytes a pixel of an image file takes (docs/data.md): 8 for four 16-bit channels, the
# widest pixel Pillow reads, and 1 more for headers, metadata and data that does not compress.
_FILE_BYTES_PER_PIXEL = 9


def max_image_file_bytes() -> int | None:
    """The largest file an image within Pillow's decompression-bomb limit can be (Pillow
    refuses above twice ``MAX_IMAGE_PIXELS``); None when the limit is switched off."""
    pixels = Image.MAX_IMAGE_PIXELS
    return None if pixels is None else 2 * pixels * _FILE_BYTES_PER_PIXEL


class UnreadableImage(Exception):
    """A listed file that cannot become a record; ``str(exc)`` is the reason."""


# --- the JPEG layout, read without decoding ----------------------------------------------
# Start-of-frame markers (every coding process); their segment gives the frame's size.
_SOF_MARKERS = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB,
                          0xCD, 0xCE, 0xCF})
# Markers that may stand between two scans (progressive and multi-scan files); any other
# marker inside the image data is a damaged byte, which libjpeg only warns about.
_BETWEEN_SCANS = frozenset({0xC4, 0xCC, 0xDA, 0xDB, 0xDC, 0xDD, 0xFE, *range(0xE0, 0xF0)})
_END_OF_IMAGE = 0xD9
# The DCT scale factors libjpeg offers, largest first, as OpenCV's decode flags.
_REDUCED_DECODE = ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4),
                   (2, cv2.IMREAD_REDUCED_COLOR_2))


@dataclass(frozen=True)
class JpegLayout:
    """What a JPEG's markers say: the frame's size and components."""

    width: int
    height: int
    components: int


def _scans_complete(data: bytes, start: int) -> bool:
    """True when the image data from ``start`` holds only scan markers and ends with EOI
    (a truncated file has none; a damaged byte shows as a marker that does not belong).

    In entropy-coded data a 0xFF byte is followed by 0x00 (stuffing), 0xD0-0xD7 (restart)
    or more 0xFF (fill); anything else is a marker.
    """
    array = np.frombuffer(data, np.uint8)
    follows = array[np.flatnonzero(array[start:-1] == 0xFF) + start + 1]
    markers = follows[(follows != 0) & (follows != 0xFF) & ((follows < 0xD0) | (follows > 0xD7))]
    for marker in markers.tolist():
        if marker == _END_OF_IMAGE:
            return True  # what follows the image (padding, an MPF picture) is not read
        if marker not in _BETWEEN_SCANS:
            return False
    return False


def jpeg_layout(data: bytes) -> JpegLayout | None:
    """The layout of a whole, well-formed JPEG; None (not a verdict) lets Pillow decide:
    another format, a header that needs libjpeg's tolerance, a damaged scan, DNL frames."""
    if data[:3] != b"\xff\xd8\xff":
        return None
    size, position, frame = len(data), 2, None
    while position + 4 <= size:
        if data[position] != 0xFF:
            return None
        marker = data[position + 1]
        if marker == 0xFF:  # fill byte before a marker
            position += 1
            continue
        position += 2
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a segment
            continue
        if marker == _END_OF_IMAGE:
            return None
        (length,) = struct.unpack_from(">H", data, position)
        if length < 2 or position + length > size:
            return None
        if marker in _SOF_MARKERS:
            if length < 8:
                return None
            _, height, width, components = struct.unpack_from(">BHHB", data, position + 2)
            frame = JpegLayout(width, height, components)
        elif marker == 0xDA:  # start of the first scan: the header is over
            if frame is None or frame.width < 1 or frame.height < 1:
                return None
            return frame if _scans_complete(data, position + length) else None
        position += length
    return None


# --- decoding (runs in the worker processes) -----------------------------------------------
def _reduction(width: int, height: int, draft_size: int | None) -> tuple[int, int]:
    """(factor, OpenCV flag): the largest DCT scaling whose shorter side is >= draft_size."""
    if draft_size:
        for factor, flag in _REDUCED_DECODE:
            if min(width, height) >= factor * draft_size:
                return factor, flag
    return 1, cv2.IMREAD_COLOR


def plain_jpeg(data: bytes, max_aspect_ratio: float | None = None) -> JpegLayout | None:
    """The layout of a JPEG that OpenCV reads as Pillow would; None: let Pillow decide.

    Plain: whole and well-formed (:func:`jpeg_layout`), gray or YCbCr (Pillow knows CMYK's
    inverted polarity), within the size limits (Pillow words every refusal).
    """
    layout = jpeg_layout(data)
    if layout is None or layout.components not in (1, 3):
        return None
    width, height = layout.width, layout.height
    if width * height > 2 * (Image.MAX_IMAGE_PIXELS or 1 << 62):
        return None
    if max_aspect_ratio is not None and max(width, height) / min(width, height) > max_aspect_ratio:
        return None
    return layout


def _decode_plain_jpeg(data: bytes, draft_size: int | None,
                       max_aspect_ratio: float | None) -> np.ndarray | None:
    """BGR pixels of a plain JPEG decoded by OpenCV, or None to let Pillow decide."""
    layout = plain_jpeg(data, max_aspect_ratio)
    if layout is None:
        return None
    factor, flag = _reduction(layout.width, layout.height, draft_size)
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    expected = sorted((-(-layout.width // factor), -(-layout.height // factor)))
    if bgr is None or bgr.ndim != 3 or sorted(bgr.shape[:2]) != expected:
        return None
    return bgr


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


def _decode_with_pillow(data: bytes, draft_size: int | None,
                        max_aspect_ratio: float | None) -> np.ndarray:
    """RGB pixels of any format Pillow knows; :class:`UnreadableImage` says why not."""
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


# TIFF tags that say what Pillow's mode does not: bits per sample, and the sample format
# (1 unsigned, 2 signed, 3 float).
_BITS_PER_SAMPLE, _SAMPLE_FORMAT = 258, 339


def _tiff_tag(image: Image.Image, tag: int) -> int | None:
    value = (getattr(image, "tag_v2", None) or {}).get(tag)
    return value[0] if isinstance(value, tuple) and value else value


def _gray_levels(image: Image.Image) -> np.ndarray:
    """8-bit levels of a gray image of wider samples (modes I;16*, I, F), their range
    scaled, not clipped as Pillow's convert("L") clips (the rules: docs/data.md)."""
    values = np.asarray(image)
    if image.mode == "I" and _tiff_tag(image, _SAMPLE_FORMAT) in (None, 1) \
            and _tiff_tag(image, _BITS_PER_SAMPLE) == 32:
        values = values.view(np.uint32)  # Pillow reads unsigned 32-bit samples as signed
    values = values.astype(np.float64)
    if not np.isfinite(values).all():
        raise UnreadableImage("float samples that are NaN or infinite")
    low, high = float(values.min()), float(values.max())
    if image.mode.startswith("I;16"):
        bits = _tiff_tag(image, _BITS_PER_SAMPLE) or 16  # 12-bit TIFFs stay 0..4095
        black, white = 0.0, float(2 ** min(bits, 16) - 1)
    else:
        # Floats in 0..1 or 0..255, integers in 0..65535 (16-bit data, which Pillow gives as
        # I); anything else (signed or 32-bit samples) has no nominal white: its own range.
        whites = (1.0, 255.0, 65535.0) if image.mode == "F" else (65535.0,)
        white = next((w for w in whites if low >= 0 and high <= w), None)
        black, white = (0.0, white) if white is not None else (low, high)
    scale = 255.0 / (white - black) if white > black else 0.0
    return np.clip((values - black) * scale + 0.5, 0, 255).astype(np.uint8)


def _to_rgb(image: Image.Image) -> np.ndarray:
    if image.mode == "RGB":
        return np.asarray(image)
    if image.mode.startswith("I") or image.mode == "F":
        return np.repeat(_gray_levels(image)[:, :, None], 3, axis=2)
    if image.mode == "L" and _tiff_tag(image, _SAMPLE_FORMAT) == 2:
        # Signed 8-bit samples, which Pillow reads as unsigned: -128..127 -> 0..255.
        gray = (np.asarray(image).view(np.int8).astype(np.int16) + 128).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    # CMYK, L, LA, P, PA, RGBA, YCbCr, LAB, ...; alpha is dropped as OpenCV and PIL loaders do.
    try:
        return np.asarray(image.convert("RGB"))
    except ValueError as exc:  # a mode without a conversion
        raise UnreadableImage(f"image mode {image.mode} cannot be converted to RGB "
                              f"({exc})") from None


def decode_bgr(data: bytes, draft_size: int | None = None,
               max_aspect_ratio: float | None = None) -> np.ndarray:
    """Decode image bytes of any format into a BGR ``uint8`` array (OpenCV's order).

    ``draft_size``: decode a JPEG with DCT scaling (1/2, 1/4 or 1/8) to the smallest size
    whose shorter side is still at least this; ``max_aspect_ratio``: refuse images more
    elongated. Raises :class:`UnreadableImage` (empty, not an image, truncated, damaged,
    too large or too elongated).
    """
    if not data:
        raise UnreadableImage("empty file")
    bgr = _decode_plain_jpeg(data, draft_size, max_aspect_ratio)
    if bgr is not None:
        return bgr
    return cv2.cvtColor(_decode_with_pillow(data, draft_size, max_aspect_ratio),
                        cv2.COLOR_RGB2BGR)


def decode_image(data: bytes, draft_size: int | None = None,
                 max_aspect_ratio: float | None = None) -> np.ndarray:
    """:func:`decode_bgr` as an RGB ``uint8`` array."""
    return cv2.cvtColor(decode_bgr(data, draft_size, max_aspect_ratio), cv2.COLOR_BGR2RGB)


def read_image_bytes(path: str | Path) -> bytes:
    """The contents of an image file; :class:`UnreadableImage` says why they cannot be read."""
    try:
        # Non-blocking, so that a FIFO is refused below instead of waiting for a writer.
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise UnreadableImage("file not found") from None
    except OSError as exc:
        raise UnreadableImage(f"cannot be read ({exc.strerror or exc})") from None
    try:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            raise UnreadableImage("not a regular file")
        if info.st_size == 0:
            raise UnreadableImage("empty file")
        limit = max_image_file_bytes()
        if limit is not None and info.st_size > limit:
            pixels = limit // _FILE_BYTES_PER_PIXEL
            raise UnreadableImage(
                f"too large (a file of {info.st_size:,} bytes, above the {limit:,} that an image "
                f"within Pillow's decompression-bomb limit of {pixels:,} pixels can take; "
                f"not read)")
        data = os.read(descriptor, info.st_size)
        while len(data) < info.st_size:  # a read may return less (signals, huge files)
            chunk = os.read(descriptor, info.st_size - len(data))
            if not chunk:
                break
            data += chunk
    except OSError as exc:
        raise UnreadableImage(f"cannot be read ({exc.strerror or exc})") from None
    finally:
        os.close(descriptor)
    return data


def read_image_file(path: str | Path, draft_size: int | None = None,
                    max_aspect_ratio: float | None = None) -> np.ndarray:
    """Read and decode one image file as RGB; :class:`UnreadableImage` says why it cannot be."""
    return decode_image(read_image_bytes(path), draft_size, max_aspect_ratio)


# --- resizing and encoding -----------------------------------------------------------------
def resize_shorter(image: np.ndarray, size: int) -> np.ndarray:
    """Resize so the shorter side is ``size`` (aspect kept, longer side rounded, >= size):
    ``INTER_AREA`` to shrink by 2x or more, ``INTER_LINEAR`` by less, ``INTER_CUBIC`` to
    enlarge (why: docs/data.md)."""
    height, width = image.shape[:2]
    shorter = min(height, width)
    if shorter == size:
        return image
    if height <= width:
        new_height, new_width = size, max(size, int(width * size / height + 0.5))
    else:
        new_height, new_width = max(size, int(height * size / width + 0.5)), size
    if shorter < size:
        interpolation = cv2.INTER_CUBIC
    elif shorter >= 2 * size:
        interpolation = cv2.INTER_AREA
    else:
        interpolation = cv2.INTER_LINEAR
    return cv2.resize(image, (new_width, new_height), interpolation=interpolation)


def _encode(extension: str, bgr: np.ndarray, params: list[int]) -> bytes:
    ok, buffer = cv2.imencode(extension, bgr, params)
    if not ok:  # pragma: no cover - OpenCV only fails on invalid arguments
        raise RuntimeError("cv2.imencode failed")
    return buffer.tobytes()


def encode_bgr_jpeg(bgr: np.ndarray, quality: int) -> bytes:
    """Encode a BGR array as a JPEG, as ``mx.recordio.pack_img`` does."""
    return _encode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])


def encode_bgr_png(bgr: np.ndarray) -> bytes:
    """Encode a BGR array as a lossless, uncompressed PNG (it decodes faster: docs/data.md)."""
    return _encode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 0])


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    """Encode an RGB array as a JPEG."""
    return encode_bgr_jpeg(cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR), quality)


def encode_png(rgb: np.ndarray) -> bytes:
    """Encode an RGB array as a lossless PNG (see :func:`encode_bgr_png`)."""
    return encode_bgr_png(cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR))


# How a record stores its image (the config's RECORD_ENCODING): BGR pixels, quality -> bytes.
ENCODERS: dict[str, Callable[[np.ndarray, int], bytes]] = {
    "jpeg": encode_bgr_jpeg,
    "png": lambda bgr, quality: encode_bgr_png(bgr),
}


@dataclass(frozen=True)
class StoredImage:
    """What a record stores for one file: the encoded image, and what the mean needs of it."""

    data: bytes
    mean_rgb: tuple[float, float, float] | None
    # The (H, W, 3) RGB pixels encoded, for a per-pixel mean (``with_pixels``).
    pixels: np.ndarray | None = None


def prepare_stored_image(path: str | Path, resize: int, quality: int,
                         max_aspect_ratio: float | None = DEFAULT_MAX_ASPECT_RATIO,
                         with_mean: bool = False, encoding: str = "jpeg",
                         with_pixels: bool = False) -> StoredImage:
    """Read, check, decode (DCT-scaled), resize and encode one file, in one decode.

    The stored image's shorter side is ``resize`` (a smaller image is enlarged); ``encoding``
    is ``"jpeg"`` (at ``quality``) or lossless ``"png"``. ``with_mean`` adds the (R, G, B)
    mean of the resized pixels, ``with_pixels`` the pixels, both taken before encoding
    (for JPEG, within a few hundredths of a level of the stored image's: docs/data.md).
    Raises :class:`UnreadableImage`, also for an image above ``max_aspect_ratio``.
    """
    bgr = resize_shorter(decode_bgr(read_image_bytes(path), resize, max_aspect_ratio), resize)
    mean = None
    if with_mean:
        blue, green, red = cv2.mean(bgr)[:3]
        mean = (red, green, blue)
    pixels = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB) if with_pixels else None
    return StoredImage(ENCODERS[encoding](bgr, quality), mean, pixels)


def prepare_image(path: str | Path, resize: int, quality: int,
                  max_aspect_ratio: float | None = DEFAULT_MAX_ASPECT_RATIO,
                  encoding: str = "jpeg") -> bytes:
    """The bytes a record stores for one image file (see :func:`prepare_stored_image`)."""
    return prepare_stored_image(path, resize, quality, max_aspect_ratio,
                                encoding=encoding).data


def stored_image_problem(data: bytes, min_side: int | None = None) -> tuple[str | None, int]:
    """Why a stored image would not reach the network as 3 channels of the stored size
    (``None`` when it would), and its shorter side (0 when it does not decode)."""
    array = np.frombuffer(data, np.uint8)
    if array[:2].tobytes() == b"\xff\xd8" and array[-2:].tobytes() != b"\xff\xd9":
        return "the JPEG has no end-of-image marker (truncated image data)", 0
    # Unchanged, not IMREAD_COLOR: the channel count as stored, which the iterator's
    # colour conversion would hide.
    decoded = cv2.imdecode(array, cv2.IMREAD_UNCHANGED)
    if decoded is None:
        return "the image cannot be decoded by OpenCV (not an image, or damaged)", 0
    channels = 1 if decoded.ndim == 2 else decoded.shape[2]
    height, width = decoded.shape[:2]
    if channels != 3:
        return f"the image has {channels} channel(s), not 3", min(height, width)
    if min_side is not None and min(height, width) < min_side:
        return (f"the image is {width}x{height}, its shorter side below the {min_side} px "
                f"the dataset stores"), min(height, width)
    return None, min(height, width)


def stored_image_mean(jpeg: bytes) -> tuple[float, float, float]:
    """Per-channel (R, G, B) mean of a stored image, decoded as ImageRecordIter's OpenCV does."""
    bgr = cv2.imdecode(np.frombuffer(jpeg, dtype=np.uint8), cv2.IMREAD_COLOR)
    blue, green, red = cv2.mean(bgr)[:3]
    return red, green, blue
