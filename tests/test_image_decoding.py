"""One decode that validates and resizes: the JPEG marker walk that lets OpenCV decode a file
never accepts one that Pillow refuses; DCT-scaled decoding, EXIF orientation and the resize
rule agree with what they replace."""

from __future__ import annotations

import io
import os
import random

import cv2
import numpy as np
import pytest
from conftest import jpeg_bytes, odd_file_bytes, tree_image
from PIL import Image, ImageOps

from pyimagesearch.data.images import (
    UnreadableImage,
    _decode_with_pillow,
    decode_image,
    jpeg_layout,
    max_image_file_bytes,
    plain_jpeg,
    prepare_stored_image,
    resize_shorter,
)


def textured(width: int, height: int, seed: int = 0) -> np.ndarray:
    """An RGB image with detail at every scale, so that JPEG's scans are long."""
    rng = np.random.RandomState(seed)
    image = cv2.resize(rng.uniform(0, 255, (6, 8, 3)), (width, height))
    image += rng.normal(0, 30, (height, width, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def damaged_copies(data: bytes, rng: random.Random) -> list[tuple[str, bytes]]:
    scan = data.index(b"\xff\xda")
    copies = [("cut", data[:end]) for end in range(scan + 20, len(data) - 1, 97)]
    copies += [("cut", data[:-k]) for k in (1, 2, 3)]
    for _ in range(300):
        flipped = bytearray(data)
        flipped[rng.randrange(2, len(data) - 2)] = rng.randrange(256)
        copies.append(("flip", bytes(flipped)))
    return copies


def test_a_damaged_jpeg_gets_pillows_verdict_whichever_decoder_reads_it():
    """Truncations, cuts and byte flips: a file OpenCV decodes after the walk is one Pillow
    reads too, and every other file gets Pillow's own verdict and reason."""
    rng = random.Random(0)
    through_opencv = refused = 0
    for seed, (width, height) in enumerate([(120, 90), (64, 96)]):
        for quality in (75, 95):
            data = jpeg_bytes(textured(width, height, seed), quality)
            assert plain_jpeg(data) is not None
            for kind, copy in damaged_copies(data, rng):
                try:
                    _decode_with_pillow(copy, None, None)
                    expected = None
                except UnreadableImage as exc:
                    expected = str(exc)
                try:
                    decode_image(copy)
                    got = None
                except UnreadableImage as exc:
                    got = str(exc)
                assert got == expected, (kind, seed, quality)
                through_opencv += expected is None and plain_jpeg(copy) is not None
                refused += expected is not None
    assert refused > 100 and through_opencv > 100  # both paths were taken often


def test_a_stray_marker_in_the_image_data_is_damage_that_opencv_would_keep():
    data = bytearray(jpeg_bytes(textured(120, 90)))
    stuffed = data.index(b"\xff\x00", data.index(b"\xff\xda") + 20)
    data[stuffed + 1] = 0x7A  # a stuffed 0xFF becomes a marker that cannot be there
    data = bytes(data)
    assert data.rstrip(b"\0")[-2:] == b"\xff\xd9"  # the end-of-image marker is there
    assert cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) is not None
    assert plain_jpeg(data) is None
    with pytest.raises(UnreadableImage, match="damaged JPEG"):
        decode_image(data)


def test_plain_jpegs_only_go_to_opencv():
    rgb = tree_image((200, 90, 40), 40, 30, np.random.RandomState(0))
    assert plain_jpeg(jpeg_bytes(rgb)).components == 3
    assert plain_jpeg(odd_file_bytes("gray", rgb)).components == 1
    assert jpeg_layout(odd_file_bytes("cmyk", rgb)).components == 4
    for kind in ("cmyk", "png", "rgba", "palette", "truncated", "text"):
        assert plain_jpeg(odd_file_bytes(kind, rgb)) is None, kind
    layout = jpeg_layout(jpeg_bytes(tree_image((1, 2, 3), 61, 1, np.random.RandomState(0))))
    assert (layout.width, layout.height) == (61, 1)
    assert plain_jpeg(jpeg_bytes(tree_image((1, 2, 3), 61, 1, np.random.RandomState(0))),
                      max_aspect_ratio=20) is None


@pytest.mark.parametrize(("size", "draft", "shape"), [
    ((800, 600), 100, (150, 200)),  # 1/4: 1/8 would leave 75 < 100
    ((800, 600), 300, (300, 400)),  # 1/2
    ((800, 600), 301, (600, 800)),  # none
    ((801, 601), 75, (76, 101)),    # 1/8, sizes rounded up as libjpeg does
])
def test_dct_scaled_decoding_matches_pillows_draft(size, draft, shape):
    data = jpeg_bytes(textured(*size))
    ours = decode_image(data, draft_size=draft)
    assert ours.shape == (*shape, 3)
    image = Image.open(io.BytesIO(data))
    image.draft("RGB", (draft, draft))
    pillow = np.asarray(image.convert("RGB"))
    assert pillow.shape == ours.shape
    assert np.abs(pillow.astype(float) - ours).mean() < 1.5  # two libjpeg builds


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_as_pillow_applies_it(orientation):
    rgb = tree_image((30, 160, 220), 80, 48, np.random.RandomState(1))
    rgb[:10, :20] = (250, 10, 10)  # a corner to follow
    image = Image.fromarray(rgb)
    exif = image.getexif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=95, exif=exif)
    data = buffer.getvalue()
    assert plain_jpeg(data) is not None
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    for draft in (None, 24):
        ours = decode_image(data, draft_size=draft)
        reference = cv2.resize(expected, ours.shape[1::-1], interpolation=cv2.INTER_AREA)
        assert np.abs(reference.astype(float) - ours).mean() < 4, (orientation, draft)


def test_resize_uses_area_from_2x_linear_below_and_cubic_to_enlarge():
    image = textured(400, 300)
    for shorter, interpolation in ((150, cv2.INTER_AREA), (100, cv2.INTER_AREA),
                                   (151, cv2.INTER_LINEAR), (256, cv2.INTER_LINEAR),
                                   (400, cv2.INTER_CUBIC)):
        ours = resize_shorter(image, shorter)
        expected = cv2.resize(image, ours.shape[1::-1], interpolation=interpolation)
        assert ours.shape[0] == shorter
        np.testing.assert_array_equal(ours, expected)


def test_a_file_larger_than_any_image_is_decided_from_its_size_without_reading_it(
        tmp_path, monkeypatch):
    path = tmp_path / "huge.jpg"
    path.write_bytes(jpeg_bytes(textured(64, 48))[:-2])  # starts like a JPEG ...
    os.truncate(path, 2 << 30)  # ... and goes on for 2 GiB (sparse: nothing is written)
    requested = []

    def read(descriptor: int, size: int) -> bytes:
        requested.append(size)
        if size > 1 << 20:  # what the build did: read it all (176 s, 4.3 GB at the peak)
            raise AssertionError(f"asked to read {size} bytes")
        return real_read(descriptor, size)

    real_read = os.read
    monkeypatch.setattr(os, "read", read)
    limit = max_image_file_bytes()
    assert limit == 2 * Image.MAX_IMAGE_PIXELS * 9 == 1_610_612_730
    with pytest.raises(UnreadableImage, match=(
            r"^too large \(a file of 2,147,483,648 bytes, above the 1,610,612,730 that an "
            r"image within Pillow's decompression-bomb limit of 178,956,970 pixels can take; "
            r"not read\)$")):
        prepare_stored_image(path, 32, 90)
    assert requested == []
    monkeypatch.setattr(os, "read", real_read)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # the bound follows Pillow's limit
    assert max_image_file_bytes() == 18_000
    small = tmp_path / "small.jpg"
    small.write_bytes(jpeg_bytes(textured(20, 20)))
    assert prepare_stored_image(small, 16, 90).data
    os.truncate(small, 18_001)
    with pytest.raises(UnreadableImage, match=r"^too large \(a file of 18,001 bytes, above "
                                              r"the 18,000 that an image within Pillow's "
                                              r"decompression-bomb limit of 2,000 pixels"):
        prepare_stored_image(small, 16, 90)
