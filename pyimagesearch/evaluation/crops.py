"""10-crop evaluation: the four corners and the center, and their mirrors, softmax averaged.

The ten windows are cut on the device from each stored image's center square, and the
average is returned as a log-probability, so the ordinary ``evaluate`` scores it. Why so:
docs/design_reporting.md, "10-crop evaluation".
"""

from __future__ import annotations

import mxnet as mx
from mxnet import gluon

from pyimagesearch.config import ConfigError, Settings
from pyimagesearch.data.dataset import DatasetInfo
from pyimagesearch.data.iterators import evaluation_iterator

CROPS = (1, 10)
WINDOW_NAMES = ("top-left", "top-right", "bottom-left", "bottom-right", "center")


def ten_crop_windows(size: int, crop: int) -> list[tuple[int, int]]:
    """(top, left) of the four corner windows and the center one, in ``WINDOW_NAMES`` order."""
    if crop > size:
        raise ValueError(f"a {crop} px crop does not fit a {size} px image")
    far, middle = size - crop, (size - crop) // 2
    return [(0, 0), (0, far), (far, 0), (far, far), (middle, middle)]


def ten_crops(images: mx.nd.NDArray, crop: int) -> list[mx.nd.NDArray]:
    """The ten ``crop`` x ``crop`` views of a ``(N, C, S, S)`` batch: five, then mirrored."""
    size = images.shape[2]
    if images.shape[3] != size:
        raise ValueError(f"10-crop needs square images, got {images.shape}")
    windows = [images[:, :, top:top + crop, left:left + crop]
               for top, left in ten_crop_windows(size, crop)]
    return windows + [mx.nd.flip(window, axis=3) for window in windows]


class TenCropAverage:
    """Wraps a network: called on a batch of squares, returns log(mean softmax over 10 crops),
    as a log-sum-exp of the crops' log-softmax (an underflow in one crop stays finite)."""

    def __init__(self, net: gluon.Block, crop: int) -> None:
        self.net, self.crop = net, crop

    def __call__(self, images: mx.nd.NDArray) -> mx.nd.NDArray:
        crops = ten_crops(images, self.crop)
        log_probs = mx.nd.stack(*[mx.nd.log_softmax(self.net(c), axis=-1) for c in crops])
        peak = log_probs.max(axis=0)
        return peak + mx.nd.log(mx.nd.exp(log_probs - peak).mean(axis=0))


def check_ten_crop(config: Settings, info: DatasetInfo) -> int:
    """The side of the stored squares; a clear error where 10-crop does not apply."""
    if info.mean_image is not None:
        raise ConfigError(
            f"{config.source}: 10-crop evaluation needs a per-channel mean, but "
            f"this config subtracts a per-pixel MEAN_IMAGE ({info.mean_image}) of the crop's "
            f"size, which cannot be applied to the stored {info.image_size} px square before "
            f"cropping; use --crops 1")
    size, crop = info.image_size, int(config.INPUT_SIZE)
    if size <= crop:
        raise ConfigError(
            f"{config.source}: the records store {size} px images and the crop "
            f"is {crop} px, so the ten crops would all be the same window; use --crops 1 (or "
            f"rebuild with RESIZE > INPUT_SIZE)")
    return size


def ten_crop_caveats(config: Settings) -> list[str]:
    """Where 10-crop applies but misleads: a network trained without mirroring."""
    if dict(config.AUGMENTATION).get("rand_mirror", False):
        return []
    return [f"{config.source} trains without rand_mirror, so 5 of the 10 crops "
            f"are mirror images the network never saw; for classes that are not "
            f"mirror-symmetric (the digits demo) they lower the score"]


def ten_crop_iterator(config: Settings, info: DatasetInfo, split: str,
                      batch_size: int) -> mx.io.DataIter:
    """Center squares of side ``RESIZE`` (mean subtracted), in record order, with
    ``batch.pad`` marking the wrap-around of the last batch."""
    size = check_ten_crop(config, info)
    return evaluation_iterator(config, info, split, batch_size, size=size)


def describe_crops(crops: int, config: Settings) -> str:
    if crops == 1:
        return f"center {config.INPUT_SIZE} px crop"
    return f"10 crops of {config.INPUT_SIZE} px (corners, center, mirrored), softmax averaged"
