"""The published numbers each experiment is measured against, keyed by network and recipe.

Accuracies in percent. Each entry says what it was measured on, because the protocols
differ: the book scores its test split carved from the training set, the Inception-ResNet-v2
paper the non-blacklisted ILSVRC 2012 validation images, the CIFAR paper the 10,000 CIFAR-10
test images.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Published:
    """One published result: rank-1 (a range where the source gives one) and rank-5."""

    source: str
    protocol: str
    rank1: tuple[float, float] | None
    rank5: float | None = None

    def rank1_text(self) -> str:
        if self.rank1 is None:
            return "-"
        low, high = self.rank1
        return f"{low:.1f}%" if low == high else f"{low:.0f}-{high:.0f}%"

    def rank5_text(self) -> str:
        return "-" if self.rank5 is None else f"{self.rank5:.1f}%"


@dataclass(frozen=True)
class Comparison:
    """What to compare a run with: published rows, and a note when there is nothing to compare."""

    rows: list[Published]
    note: str = ""


BOOK_GOOGLENET = Published(
    source="Deep Learning for Computer Vision with Python, ImageNet Bundle: GoogLeNet",
    protocol="its test split carved from ILSVRC train, single center crop",
    rank1=(63.0, 66.0))
BOOK_NOTE = "The book's VGGNet reaches about 71% rank-1 with the same pipeline."

PAPER_IRV2 = Published(
    source="Szegedy et al. 2016 (arXiv:1602.07261), Inception-ResNet-v2",
    protocol="ILSVRC 2012 validation (non-blacklisted), single model, single crop "
             "(top-1/top-5 error 19.9% / 4.9%)",
    rank1=(80.1, 80.1), rank5=95.1)
TORCH_IRV2 = Published(
    source="Torch reproduction (lim0606/torch-inception-resnet-v2), 90 epochs",
    protocol="ILSVRC 2012 validation, single crop (error 24.4% / 7.4%)",
    rank1=(75.6, 75.6), rank5=92.6)

CIFAR_SOURCE = "He et al. 2016 (arXiv:1512.03385), Table 6, {depth} layers"
CIFAR_PROTOCOL = "CIFAR-10 test set (10,000 images), error {error:.2f}%"


def _cifar(model_params: dict[str, Any]) -> Comparison:
    from pyimagesearch.evaluation.statistics import PAPER_TABLE6, TORCH_REPRODUCTION

    depth = model_params.get("depth")
    if int(model_params.get("num_classes", 10)) != 10:
        return Comparison([], "No published CIFAR-100 figure for these ResNets in He et al.")
    if model_params.get("shortcut", "A") != "A" \
            or model_params.get("variant", "original") != "original":
        return Comparison([], "He et al.'s Table 6 reports the option-A shortcut with the "
                              "original block only; this setting has no published number.")
    rows = []
    if depth in PAPER_TABLE6:
        error = PAPER_TABLE6[depth]
        rows.append(Published(CIFAR_SOURCE.format(depth=depth),
                              CIFAR_PROTOCOL.format(error=error), (100 - error, 100 - error)))
    if depth in TORCH_REPRODUCTION:
        error = TORCH_REPRODUCTION[depth]
        rows.append(Published(f"Torch reproduction (fb.resnet.torch), {depth} layers",
                              CIFAR_PROTOCOL.format(error=error), (100 - error, 100 - error)))
    return Comparison(rows, "" if rows else f"No published number for depth {depth}.")


def is_demo(config: dict[str, Any]) -> str:
    """Which demo a run's config snapshot belongs to ("" for a real experiment)."""
    recipe = config.get("RECIPE") or {}
    name = str(recipe.get("name", "")) if isinstance(recipe, dict) else str(recipe)
    source = str(config.get("__source__", ""))
    if config.get("FAKE_CIFAR"):
        return "fake-CIFAR demo (class-coloured noise)"
    if name.startswith("demo-") or "/demo_" in source or source.startswith("demo_"):
        return "digits demo (scikit-learn's handwritten digits as a mini-ILSVRC)"
    return ""


def comparison(model: str, config: dict[str, Any],
               model_params: dict[str, Any] | None = None) -> Comparison:
    """The published rows for a run of ``model`` with this config snapshot."""
    demo = is_demo(config)
    if demo:
        return Comparison([], f"This run is the {demo}: no published number exists for it; "
                              f"the papers' figures are for ImageNet or CIFAR.")
    if model == "googlenet":
        return Comparison([BOOK_GOOGLENET], BOOK_NOTE)
    if model == "inception_resnet_v2":
        return Comparison([PAPER_IRV2, TORCH_IRV2])
    if model == "cifar_resnet":
        return _cifar(model_params or dict(config.get("MODEL_PARAMS") or {}))
    return Comparison([], f"No published number on file for model {model!r}.")
