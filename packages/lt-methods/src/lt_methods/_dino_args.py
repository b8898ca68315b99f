"""Options of DINO: ``method_args`` (:class:`DINOArgs`) and ``transform_args``
(:class:`DINOTransformArgs`, with its global and local view groups)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from lt_core import IMAGENET_MEAN, IMAGENET_STD, ConfigError
from lt_methods._checks import (
    check_crop_scale,
    check_int,
    check_positive,
    check_prob,
    check_range,
    check_size,
    scale_size,
)

__all__ = ["DINOArgs", "DINOGlobalViewArgs", "DINOLocalViewArgs", "DINOTransformArgs"]


@dataclass(kw_only=True)
class DINOArgs:
    """Options of :class:`DINO` (``method_args``).

    Attributes:
        hidden_dim: Width of the two hidden layers of the projection head (paper: 2048).
        bottleneck_dim: Dimension before the weight-normalized last layer (paper: 256).
        out_dim: Number of prototypes ``K``, the dimension of the softmax the loss compares.
            ``None`` (auto): about one prototype per 20 training images, rounded to a power
            of two and clamped to 1024-65536, which gives the paper's 65536 for ImageNet's
            1.28M images and 1024 for datasets of up to about 29k images. A head much wider
            than the data wastes memory and compute on prototypes no image selects.
        batch_norm: Batch norm in the projection head; the paper leaves it out (ViTs).
        norm_last_layer: Fix the norm of the last layer's weights (paper default, more
            stable); ``False`` can work better but may be unstable.
        student_temp: Softmax temperature of the student (paper: 0.1).
        teacher_temp: Teacher temperature after the warm-up. ``None`` (auto): 0.07, the
            paper's ImageNet value, for datasets of at least 200k images (or an unknown
            size), else 0.04, the reference implementation's default, whose sharper targets
            keep short runs on small datasets from collapsing to a uniform output.
        warmup_teacher_temp: Teacher temperature at the first step. ``None`` (auto): the
            smaller of 0.04 (paper) and ``teacher_temp``.
        warmup_teacher_temp_epochs: Epochs of the linear teacher-temperature warm-up
            (paper: 30). Clipped to the run length, so a short run still ends at
            ``teacher_temp``.
        center_momentum: EMA momentum of the teacher-output center (paper: 0.9).
        momentum_start: EMA momentum of the teacher at the first step. ``None`` (auto):
            the paper's 0.996, lowered for short runs so that the teacher averages over
            about a tenth of the run (``1 - 10 / total_steps``), but not below 0.99: at
            0.996 a run of under 2,500 steps ends with a teacher that barely moved.
        momentum_end: EMA momentum at the last step, reached by a cosine schedule
            (paper: 1.0).
        freeze_last_layer_epochs: Epochs at the start during which the last layer of the
            head is not updated (paper: 1).
    """

    hidden_dim: int = 2048
    bottleneck_dim: int = 256
    out_dim: int | None = None
    batch_norm: bool = False
    norm_last_layer: bool = True
    student_temp: float = 0.1
    teacher_temp: float | None = None
    warmup_teacher_temp: float | None = None
    warmup_teacher_temp_epochs: int = 30
    center_momentum: float = 0.9
    momentum_start: float | None = None
    momentum_end: float = 1.0
    freeze_last_layer_epochs: int = 1

    def __post_init__(self) -> None:
        for name in ("hidden_dim", "bottleneck_dim", "out_dim"):
            if getattr(self, name) is not None:
                check_int(f"method_args.{name}", getattr(self, name), 1)
        for name in ("student_temp", "teacher_temp", "warmup_teacher_temp"):
            if getattr(self, name) is not None:
                check_positive(f"method_args.{name}", getattr(self, name))
        for name in ("center_momentum", "momentum_start", "momentum_end"):
            if getattr(self, name) is not None:
                check_range(f"method_args.{name}", getattr(self, name), 0.0, 1.0)
        check_int("method_args.warmup_teacher_temp_epochs", self.warmup_teacher_temp_epochs, 0)
        check_int("method_args.freeze_last_layer_epochs", self.freeze_last_layer_epochs, 0)

    def resolve(self, num_images: int | None = None, total_steps: int | None = None) -> DINOArgs:
        """A copy with every ``None`` (auto) option set from the dataset size and run length.

        Args:
            num_images: Number of training images; ``None`` (unknown, e.g. a stream) picks
                the paper's ImageNet-scale values.
            total_steps: Optimizer steps of the whole run; ``None`` keeps the paper's EMA
                momentum.
        """
        out_dim = self.out_dim
        if out_dim is None:
            out_dim = _MAX_OUT_DIM
            if num_images is not None:
                target = max(1.0, num_images / _IMAGES_PER_PROTOTYPE)
                out_dim = 2 ** round(math.log2(target))
                out_dim = min(_MAX_OUT_DIM, max(_MIN_OUT_DIM, out_dim))
        teacher_temp = self.teacher_temp
        if teacher_temp is None:
            small = num_images is not None and num_images < _LARGE_DATASET
            teacher_temp = 0.04 if small else 0.07
        warmup_teacher_temp = self.warmup_teacher_temp
        if warmup_teacher_temp is None:
            warmup_teacher_temp = min(0.04, teacher_temp)
        momentum_start = self.momentum_start
        if momentum_start is None:
            momentum_start = 0.996
            if total_steps is not None and total_steps > 0:
                momentum_start = min(0.996, max(0.99, 1.0 - 10.0 / total_steps))
        return dataclasses.replace(
            self,
            out_dim=out_dim,
            teacher_temp=teacher_temp,
            warmup_teacher_temp=warmup_teacher_temp,
            momentum_start=round(momentum_start, 6),
        )


#: ImageNet's 1.28M images over the paper's 65536 prototypes, about 20 images each.
_IMAGES_PER_PROTOTYPE = 20
_MIN_OUT_DIM = 1024
_MAX_OUT_DIM = 65536
#: From this dataset size on, the paper's teacher temperature 0.07 applies.
_LARGE_DATASET = 200_000


@dataclass(kw_only=True)
class DINOGlobalViewArgs:
    """The two global views, seen by the teacher and the student.

    Attributes:
        crop_scale: Area range of the random resized crop (paper code: 0.4 to 1).
        view_size: ``(height, width)`` of the views; ``None`` is ``image_size``.
        blur_prob: Blur probability of the first and of the second global view
            (paper: 1.0 and 0.1).
        solarize_prob: Solarization probability of the first and of the second global view
            (paper: 0 and 0.2).
    """

    crop_scale: tuple[float, float] = (0.4, 1.0)
    view_size: tuple[int, int] | None = None
    blur_prob: tuple[float, float] = (1.0, 0.1)
    solarize_prob: tuple[float, float] = (0.0, 0.2)

    def __post_init__(self) -> None:
        check_crop_scale("transform_args.global_view.crop_scale", self.crop_scale)
        if self.view_size is not None:
            check_size("transform_args.global_view.view_size", self.view_size)
        for name in ("blur_prob", "solarize_prob"):
            for i, p in enumerate(getattr(self, name)):
                check_prob(f"transform_args.global_view.{name}[{i}]", p)


@dataclass(kw_only=True)
class DINOLocalViewArgs:
    """The small local views (multi-crop), seen by the student only.

    Attributes:
        num_views: Number of local views per image (paper: 6 or 10); 0 disables them.
        crop_scale: Area range of the random resized crop (paper code: 0.05 to 0.4).
        view_size: ``(height, width)`` of the views; ``None`` scales the paper's 96 pixels
            for 224-pixel images to ``image_size``: ``round(side * 96 / 224)``, at least 8
            pixels (14 for 32-pixel images), so small images get proportionally small crops.
        blur_prob: Blur probability (paper: 0.5).
    """

    num_views: int = 6
    crop_scale: tuple[float, float] = (0.05, 0.4)
    view_size: tuple[int, int] | None = None
    blur_prob: float = 0.5

    def __post_init__(self) -> None:
        check_int("transform_args.local_view.num_views", self.num_views, 0)
        check_crop_scale("transform_args.local_view.crop_scale", self.crop_scale)
        if self.view_size is not None:
            check_size("transform_args.local_view.view_size", self.view_size)
        check_prob("transform_args.local_view.blur_prob", self.blur_prob)


@dataclass(kw_only=True)
class DINOTransformArgs:
    """Options of DINO's views (``transform_args``): 2 global views, then the local views.

    Every view gets a random resized crop, horizontal flip, color jitter, grayscale, and the
    per-group blur and solarization, then normalization.

    Attributes:
        image_size: ``(height, width)`` images are resized to when loaded; the default view
            sizes follow it.
        global_view: Options of the two global views.
        local_view: Options of the local views.
        hflip_prob: Probability of a horizontal flip.
        color_jitter_prob: Probability of the color jitter (paper: 0.8).
        color_jitter_strength: Multiplies the paper's strengths (brightness 0.4, contrast
            0.4, saturation 0.2, hue 0.1); ``0`` disables the jitter.
        grayscale_prob: Probability of converting to grayscale (paper: 0.2).
        mean: Per-channel mean for normalization.
        std: Per-channel standard deviation for normalization.
    """

    image_size: tuple[int, int] = (224, 224)
    global_view: DINOGlobalViewArgs = field(default_factory=DINOGlobalViewArgs)
    local_view: DINOLocalViewArgs = field(default_factory=DINOLocalViewArgs)
    hflip_prob: float = 0.5
    color_jitter_prob: float = 0.8
    color_jitter_strength: float = 1.0
    grayscale_prob: float = 0.2
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self) -> None:
        check_size("transform_args.image_size", self.image_size)
        for name in ("hflip_prob", "color_jitter_prob", "grayscale_prob"):
            check_prob(f"transform_args.{name}", getattr(self, name))
        if self.color_jitter_strength < 0:
            raise ConfigError(
                f"transform_args.color_jitter_strength must be >= 0, got "
                f"{self.color_jitter_strength!r}."
            )

    def global_size(self) -> tuple[int, int]:
        """Size of the global views: ``global_view.view_size`` or ``image_size``."""
        return self.global_view.view_size or self.image_size

    def local_size(self) -> tuple[int, int]:
        """Size of the local views: ``local_view.view_size`` or ``image_size * 96 / 224``."""
        return self.local_view.view_size or scale_size(self.image_size, 96, 224)
