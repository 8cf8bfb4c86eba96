"""The book's ``rotate=15`` against ``max_rotate_angle=15``, on real decoded pixels.

The records hold one L-shaped image, many times, so whatever order the shuffle gives,
every position of a batch shows the same image before augmentation. The rotation each
position got is then read off the pixels by matching OpenCV's rotations of the original.
"""

from __future__ import annotations

import cv2
import mxnet as mx
import numpy as np
import pytest

from pyimagesearch.config import ConfigError
from pyimagesearch.data.dataset import DatasetInfo, RecordSplit
from pyimagesearch.data.iterators import training_iterator
from pyimagesearch.settings import validate

SIZE, COPIES = 40, 8


def l_shape() -> np.ndarray:
    """An RGB image with no symmetry: a red bar across the top, a green bar down the right."""
    image = np.full((SIZE, SIZE, 3), 30, np.uint8)
    image[6:16, 4:36] = (250, 40, 40)
    image[16:36, 26:34] = (40, 220, 60)
    return image


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rotate")
    rec, idx = str(folder / "train.rec"), str(folder / "train.idx")
    writer = mx.recordio.MXIndexedRecordIO(idx, rec, "w")
    for i in range(COPIES):
        # PNG: lossless, so the decoded pixels are the image's own.
        writer.write_idx(i, mx.recordio.pack_img(mx.recordio.IRHeader(0, 0, i, 0),
                                                 l_shape()[:, :, ::-1], img_fmt=".png"))
    writer.close()
    return DatasetInfo(splits={"train": RecordSplit(rec, idx, COPIES)}, mean={},
                       image_size=SIZE, manifest={})


def batch(records, augmentation, epoch=0, seed=0) -> np.ndarray:
    """One training batch of the project's iterator, as (N, H, W, RGB) uint8."""
    config = validate({"INPUT_SIZE": SIZE, "DECODE_THREADS": 1,
                       "AUGMENTATION": augmentation}, "rotate-test")
    data = training_iterator(config, records, COPIES, epoch, seed).next().data[0]
    return data.asnumpy().transpose(0, 2, 3, 1).astype(np.int32)


def rotated(angle: float) -> np.ndarray:
    """The original turned counter-clockwise by ``angle`` degrees about its centre, the
    uncovered corners filled with ImageRecordIter's default fill value (255)."""
    matrix = cv2.getRotationMatrix2D((SIZE / 2, SIZE / 2), angle, 1.0)
    return cv2.warpAffine(l_shape(), matrix, (SIZE, SIZE), flags=cv2.INTER_LINEAR,
                          borderValue=(255, 255, 255)).astype(np.int32)


def angle_of(image: np.ndarray) -> int:
    """The whole-degree rotation in -30..30 whose OpenCV rendering matches ``image`` best."""
    return min(range(-30, 31), key=lambda a: np.abs(rotated(a) - image).mean())


def test_rotate_turns_every_image_by_exactly_that_angle(records):
    images = batch(records, {"rotate": 15})
    # Pixel for pixel the original turned by +15 degrees, at every position ...
    for image in images:
        assert np.abs(image - rotated(15)).max() <= 1
    assert np.abs(images[0] - rotated(0)).mean() > 20  # (and not the unrotated image)
    # ... whatever the epoch's augmentation seed.
    np.testing.assert_array_equal(batch(records, {"rotate": 15}, epoch=3, seed=9), images)


def test_rotate_overrides_max_rotate_angle(records):
    literal = batch(records, {"rotate": 15})
    both = batch(records, {"rotate": 15, "max_rotate_angle": 15})
    np.testing.assert_array_equal(both, literal)


def test_max_rotate_angle_draws_a_random_angle_per_image(records):
    angles = [angle_of(image) for epoch in (0, 1) for image in batch(records,
                                                                       {"max_rotate_angle": 15},
                                                                       epoch=epoch)]
    assert all(-15 <= a <= 15 for a in angles)
    assert len(set(angles)) >= 4, angles       # 16 draws from 31 angles
    assert any(a < 0 for a in angles) and any(a > 0 for a in angles)


def test_rotate_is_a_declared_augmentation_key():
    assert validate({"AUGMENTATION": {"rotate": 15}}, "c").AUGMENTATION == {"rotate": 15}
    for bad in (-1, 360, 7.5):
        with pytest.raises(ConfigError, match="AUGMENTATION"):
            validate({"AUGMENTATION": {"rotate": bad}}, "c")
