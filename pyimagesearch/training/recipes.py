"""Training recipes of the book, the papers and the public reproductions, as data.

A config picks one (``RECIPE = recipes.BOOK_GOOGLENET_ADAM``) and may adjust it with
``dataclasses.replace``. Each recipe names its source so a run's config snapshot says
which published experiment it reproduces.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from pyimagesearch.training.schedules import (
    Constant,
    EpochTable,
    MultiStep,
    Schedule,
    ScheduleSpec,
    StepDecay,
    Warmup,
)


@dataclass(frozen=True)
class Recipe:
    """Optimizer, its settings and the learning-rate schedule of one experiment.

    ``momentum`` follows MXNet's (and Caffe's) convention: the momentum buffer holds
    rate-scaled steps. ``batch_per_device`` is the per-device batch the source used,
    for reference; the config's ``BATCH_SIZE`` is what a run uses.
    """

    name: str
    source: str
    optimizer: str
    base_lr: float
    num_epochs: int
    weight_decay: float = 0.0
    momentum: float | None = None
    optimizer_params: dict[str, float] = field(default_factory=dict)
    schedule: Schedule = field(default_factory=Constant)
    warmup: Warmup | None = None

    def schedule_spec(self, overrides: tuple = ()) -> ScheduleSpec:
        return ScheduleSpec(base_lr=self.base_lr, schedule=self.schedule,
                            warmup=self.warmup, overrides=tuple(overrides))

    def with_epochs(self, num_epochs: int) -> Recipe:
        return replace(self, num_epochs=num_epochs)


# ImageNet Bundle, GoogLeNet chapter, experiment #1: SGD at 1e-2, the rate lowered by
# hand (stop, then resume with --lr) when validation accuracy stalls.
BOOK_GOOGLENET_SGD = Recipe(
    name="book-googlenet-sgd",
    source="Deep Learning for Computer Vision with Python, ImageNet Bundle: GoogLeNet experiment #1",
    optimizer="sgd", base_lr=1e-2, momentum=0.9, weight_decay=2e-4, num_epochs=50,
    schedule=Constant(),
)

# Experiment #3: Adam at 1e-3, with the book's drops written as a table so the run
# needs no manual stop-and-resume.
BOOK_GOOGLENET_ADAM = Recipe(
    name="book-googlenet-adam",
    source="Deep Learning for Computer Vision with Python, ImageNet Bundle: GoogLeNet experiment #3",
    optimizer="adam", base_lr=1e-3, weight_decay=2e-4, num_epochs=50,
    schedule=EpochTable({0: 1e-3, 30: 1e-4, 45: 1e-5}),
)

# Szegedy et al. 2016 (arXiv 1602.07261), section 4: RMSProp, decay 0.9, epsilon 1.0,
# rate 0.045 decayed by 0.94 every two epochs.
PAPER_IRV2_RMSPROP = Recipe(
    name="paper-inception-resnet-v2-rmsprop",
    source="Szegedy et al. 2016, Inception-v4, Inception-ResNet and the Impact of Residual Connections",
    optimizer="rmsprop", base_lr=0.045, num_epochs=160, weight_decay=4e-5,
    optimizer_params={"gamma1": 0.9, "epsilon": 1.0},
    schedule=StepDecay(factor=0.94, every_epochs=2),
)

# He et al. 2016 (arXiv 1512.03385), section 4.2: SGD 0.1, momentum 0.9, weight decay
# 1e-4, batch 128, divided by 10 at 32k and 48k iterations, stopped at 64k (~182 epochs
# of 45k images).
PAPER_CIFAR_RESNET = Recipe(
    name="paper-cifar-resnet",
    source="He et al. 2016, Deep Residual Learning for Image Recognition, section 4.2",
    optimizer="sgd", base_lr=0.1, momentum=0.9, weight_decay=1e-4, num_epochs=182,
    schedule=MultiStep(factor=0.1, at_updates=(32000, 48000)),
)

RECIPES = {recipe.name: recipe for recipe in (
    BOOK_GOOGLENET_SGD, BOOK_GOOGLENET_ADAM, PAPER_IRV2_RMSPROP, PAPER_CIFAR_RESNET)}
