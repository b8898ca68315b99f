"""Options of DINO: ``method_args`` (:class:`DINOArgs`) and ``transform_args``
(:class:`DINOTransformArgs`, with its global and local view groups)."""

from __future__ import annotations

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
            The paper uses 65536 for ImageNet-scale training. The default 16384 cuts the
            head's last layer (its teacher copy, optimizer state and the softmax over all
            views) to a quarter, which matters on a CPU or a small GPU and suits the smaller
            datasets such runs use. Set 65536 for the paper's setup.
        batch_norm: Batch norm in the projection head; the paper leaves it out (ViTs).
        norm_last_layer: Fix the norm of the last layer's weights (paper default, more
            stable); ``False`` can work better but may be unstable.
        student_temp: Softmax temperature of the student (paper: 0.1).
        teacher_temp: Teacher temperature after the warm-up (paper: 0.04 to 0.07).
        warmup_teacher_temp: Teacher temperature at the first step (paper: 0.04).
        warmup_teacher_temp_epochs: Epochs of the linear teacher-temperature warm-up
            (paper: 30). Clipped to the run length, so a short run still ends at
            ``teacher_temp``.
        center_momentum: EMA momentum of the teacher-output center (paper: 0.9).
        momentum_start: EMA momentum of the teacher at the first step (paper: 0.996).
        momentum_end: EMA momentum at the last step, reached by a cosine schedule
            (paper: 1.0).
        freeze_last_layer_epochs: Epochs at the start during which the last layer of the
            head is not updated (paper: 1).
    """

    hidden_dim: int = 2048
    bottleneck_dim: int = 256
    out_dim: int = 16384
    batch_norm: bool = False
    norm_last_layer: bool = True
    student_temp: float = 0.1
    teacher_temp: float = 0.07
    warmup_teacher_temp: float = 0.04
    warmup_teacher_temp_epochs: int = 30
    center_momentum: float = 0.9
    momentum_start: float = 0.996
    momentum_end: float = 1.0
    freeze_last_layer_epochs: int = 1

    def __post_init__(self) -> None:
        for name in ("hidden_dim", "bottleneck_dim", "out_dim"):
            check_int(f"method_args.{name}", getattr(self, name), 1)
        for name in ("student_temp", "teacher_temp", "warmup_teacher_temp"):
            check_positive(f"method_args.{name}", getattr(self, name))
        for name in ("center_momentum", "momentum_start", "momentum_end"):
            check_range(f"method_args.{name}", getattr(self, name), 0.0, 1.0)
        check_int("method_args.warmup_teacher_temp_epochs", self.warmup_teacher_temp_epochs, 0)
        check_int("method_args.freeze_last_layer_epochs", self.freeze_last_layer_epochs, 0)


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
