"""Options of DINO: ``method_args`` (:class:`DINOArgs`) and ``transform_args``
(:class:`DINOTransformArgs`, with the second global view and the local views).

The names, nesting and meanings are LightlyTrain 0.18's. Options that are automatic there
(``"auto"``) are automatic here too (``"auto"`` or ``None``); :meth:`DINOArgs.resolve` sets
the ones that follow the dataset size and run length, and the schedules resolve the ones
that need the epoch length. Where our automatic rule differs, the attribute says so.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, TypeVar

from torch import Tensor

from lt_core import ConfigError, check_callable
from lt_methods._checks import (
    check_int,
    check_lr_scaling,
    check_positive,
    check_range,
    check_size,
    not_supported,
    scale_size,
)
from lt_methods._ema import auto_momentum
from lt_methods._transform_args import (
    ColorJitterArgs,
    GaussianBlurArgs,
    MethodTransformArgs,
    RandomResizeArgs,
    SolarizeArgs,
)

__all__ = [
    "DINOArgs",
    "DINOColorJitterArgs",
    "DINOGaussianBlurArgs",
    "DINOGlobalView1Args",
    "DINOGlobalView1GaussianBlurArgs",
    "DINOLocalViewArgs",
    "DINOLocalViewRandomResizeArgs",
    "DINORandomResizeArgs",
    "DINOTransformArgs",
]

Auto = Literal["auto"]
T = TypeVar("T", int, float)

#: ImageNet's 1.28M images over the paper's 65536 prototypes, about 20 images each.
_IMAGES_PER_PROTOTYPE = 20
_MIN_OUTPUT_DIM = 1024
_MAX_OUTPUT_DIM = 65536
#: The paper's EMA momentum of the teacher at the first step.
_PAPER_MOMENTUM = 0.996
#: From this dataset size on, the paper's teacher temperature 0.07 applies.
_LARGE_DATASET = 200_000
#: The paper's teacher-temperature warm-up and last-layer freeze, in epochs.
_WARMUP_TEACHER_TEMP_EPOCHS = 30
_FREEZE_LAST_LAYER_EPOCHS = 1
_AUTO_FIELDS = (
    "output_dim",
    "student_freeze_last_layer_steps",
    "teacher_temp",
    "warmup_teacher_temp",
    "warmup_teacher_temp_steps",
    "momentum_start",
    "weight_decay_start",
    "weight_decay_end",
    "warmup_steps",
)


@dataclass(kw_only=True)
class DINOArgs:
    """Options of :class:`DINO` (``method_args``).

    ``"auto"`` and ``None`` both mean automatic (``None`` is stored as ``"auto"``).

    Attributes:
        hidden_dim: Width of the two hidden layers of the projection head (paper: 2048).
        bottleneck_dim: Dimension before the weight-normalized last layer (paper: 256).
        output_dim: Number of prototypes ``K``, the dimension of the softmax the loss
            compares. Auto: about one prototype per 20 training images, rounded to a power
            of two and clamped to 1024-65536 (the paper's 65536 for ImageNet's 1.28M
            images, 1024 up to about 29k images). A head much wider than the data wastes
            memory and compute on prototypes no image selects.
        student_freeze_last_layer_epochs: Epochs at the start during which the head's last
            layer is not updated; ``None`` uses ``student_freeze_last_layer_steps``.
        student_freeze_last_layer_steps: The same in optimizer steps. Auto: 1 epoch (the
            paper), or ``student_freeze_last_layer_epochs`` when that is set.
        batch_norm: Batch norm in the projection head; the paper leaves it out (ViTs).
        norm_last_layer: Fix the norm of the last layer's weights (paper default, more
            stable); ``False`` can work better but may be unstable.
        teacher_temp: Teacher temperature after the warm-up. Auto: 0.07, the paper's
            ImageNet value, for datasets of at least 200k images (or of unknown size), else
            0.04, the reference implementation's default, whose sharper targets keep short
            runs on small datasets from collapsing to a uniform output.
        warmup_teacher_temp: Teacher temperature at the first step. Auto: the smaller of
            0.04 (paper) and ``teacher_temp``.
        warmup_teacher_temp_epochs: Epochs of the linear teacher-temperature warm-up;
            ``None`` uses ``warmup_teacher_temp_steps``.
        warmup_teacher_temp_steps: The same in optimizer steps. Auto: 30 epochs (the
            paper), or ``warmup_teacher_temp_epochs`` when that is set.
        warmup_teacher_temp_max_steps_fraction: An epoch-based warm-up (auto or
            ``warmup_teacher_temp_epochs``) lasts at most this fraction of the run, so a
            short run still reaches ``teacher_temp``. Explicit steps are not capped.
        student_temp: Softmax temperature of the student (paper: 0.1).
        center_momentum: EMA momentum of the teacher-output center (paper: 0.9).
        momentum_start: EMA momentum of the teacher at the first step. Auto: the paper's
            0.996, lowered for short runs so that the teacher averages over about a tenth
            of the run (``1 - 10 / total_steps``), but not below 0.99: at 0.996 a run of
            under 2,500 steps ends with a teacher that barely moved.
        momentum_end: EMA momentum at the last step, reached by a cosine (paper: 1.0).
        weight_decay_start: Only auto: the weight decay is the optimizer's
            (``optim_args.weight_decay``) throughout; a schedule is not supported yet.
        weight_decay_end: Only auto, as ``weight_decay_start``.
        warmup_steps: Learning-rate warm-up; only auto, the trainer's warm-up
            (``optim_args.warmup_epochs``, by default 10 epochs but at most 10% of the run).
        warmup_max_steps_fraction: Longest learning-rate warm-up as a fraction of the run;
            only 0.1 (the trainer's cap) is supported.
        lr_scale_method: How the trainer scales the base learning rate (``optim_args.lr``
            or the method's default) to the effective batch (``batch_size *
            gradient_accumulation_steps``): ``"linear"`` (``lr * batch /
            reference_batch_size``) or ``"sqrt"`` (``lr * sqrt(batch /
            reference_batch_size)``).
        reference_batch_size: Batch size the base learning rate is given for.
    """

    hidden_dim: int = 2048
    bottleneck_dim: int = 256
    output_dim: int | Auto | None = "auto"
    student_freeze_last_layer_epochs: int | None = None
    student_freeze_last_layer_steps: int | Auto | None = "auto"
    batch_norm: bool = False
    norm_last_layer: bool = True
    teacher_temp: float | Auto | None = "auto"
    warmup_teacher_temp: float | Auto | None = "auto"
    warmup_teacher_temp_epochs: int | None = None
    warmup_teacher_temp_steps: int | Auto | None = "auto"
    warmup_teacher_temp_max_steps_fraction: float = 0.3
    student_temp: float = 0.1
    center_momentum: float = 0.9
    momentum_start: float | Auto | None = "auto"
    momentum_end: float = 1.0
    weight_decay_start: float | Auto | None = "auto"
    weight_decay_end: float | Auto | None = "auto"
    warmup_steps: int | Auto | None = "auto"
    warmup_max_steps_fraction: float = 0.1
    lr_scale_method: Literal["linear", "sqrt"] = "linear"
    reference_batch_size: int = 256

    def __post_init__(self) -> None:
        for key in _AUTO_FIELDS:
            if getattr(self, key) is None:
                setattr(self, key, "auto")
        for key in ("hidden_dim", "bottleneck_dim", "output_dim"):
            if getattr(self, key) != "auto":
                check_int(f"method_args.{key}", getattr(self, key), 1)
        for key in (
            "student_freeze_last_layer_epochs",
            "student_freeze_last_layer_steps",
            "warmup_teacher_temp_epochs",
            "warmup_teacher_temp_steps",
        ):
            if getattr(self, key) not in (None, "auto"):
                check_int(f"method_args.{key}", getattr(self, key), 0)
        for key in ("student_temp", "teacher_temp", "warmup_teacher_temp"):
            if getattr(self, key) != "auto":
                check_positive(f"method_args.{key}", getattr(self, key))
        for key in (
            "center_momentum",
            "momentum_start",
            "momentum_end",
            "warmup_teacher_temp_max_steps_fraction",
        ):
            if getattr(self, key) != "auto":
                check_range(f"method_args.{key}", getattr(self, key), 0.0, 1.0)
        for steps, epochs in (
            ("student_freeze_last_layer_steps", "student_freeze_last_layer_epochs"),
            ("warmup_teacher_temp_steps", "warmup_teacher_temp_epochs"),
        ):
            if getattr(self, steps) != "auto" and getattr(self, epochs) is not None:
                raise ConfigError(
                    f"method_args.{steps} and method_args.{epochs} cannot both be set; set "
                    f"only {steps} (or set it to 'auto' to use {epochs})."
                )
        self._check_not_supported()

    def _check_not_supported(self) -> None:
        for key in ("weight_decay_start", "weight_decay_end"):
            if getattr(self, key) != "auto":
                raise not_supported(
                    f"method_args.{key}",
                    getattr(self, key),
                    "the weight decay is constant, set it with optim_args.weight_decay.",
                )
        if self.warmup_steps != "auto":
            raise not_supported(
                "method_args.warmup_steps",
                self.warmup_steps,
                "the trainer sets the learning-rate warm-up; use optim_args.warmup_epochs "
                "(by default 10 epochs, at most 10% of the run).",
            )
        if self.warmup_max_steps_fraction != 0.1:
            raise not_supported(
                "method_args.warmup_max_steps_fraction",
                self.warmup_max_steps_fraction,
                "the trainer's learning-rate warm-up lasts at most 10% of the run; use "
                "optim_args.warmup_epochs to set its length.",
            )
        check_lr_scaling(self.lr_scale_method, self.reference_batch_size)

    def resolve(self, num_images: int | None = None, total_steps: int | None = None) -> DINOArgs:
        """A copy with the automatic ``output_dim``, ``teacher_temp``,
        ``warmup_teacher_temp`` and ``momentum_start`` set from the dataset size and the run
        length. The step-based options that follow the epoch length stay ``"auto"`` and are
        resolved by the schedules (:meth:`teacher_temp_warmup_steps`,
        :meth:`freeze_last_layer_steps`).

        Args:
            num_images: Number of training images; ``None`` (unknown, e.g. a stream) picks
                the paper's ImageNet-scale values.
            total_steps: Optimizer steps of the whole run; ``None`` keeps the paper's EMA
                momentum.
        """
        output_dim = self.output_dim
        if output_dim == "auto":
            output_dim = _MAX_OUTPUT_DIM
            if num_images is not None:
                target = max(1.0, num_images / _IMAGES_PER_PROTOTYPE)
                output_dim = 2 ** round(math.log2(target))
                output_dim = min(_MAX_OUTPUT_DIM, max(_MIN_OUTPUT_DIM, output_dim))
        teacher_temp = self.teacher_temp
        if teacher_temp == "auto":
            small = num_images is not None and num_images < _LARGE_DATASET
            teacher_temp = 0.04 if small else 0.07
        warmup_teacher_temp = self.warmup_teacher_temp
        if warmup_teacher_temp == "auto":
            warmup_teacher_temp = min(0.04, resolved(teacher_temp, "teacher_temp"))
        momentum_start = self.momentum_start
        if momentum_start == "auto":
            momentum_start = auto_momentum(_PAPER_MOMENTUM, total_steps)
        return dataclasses.replace(
            self,
            output_dim=output_dim,
            teacher_temp=teacher_temp,
            warmup_teacher_temp=warmup_teacher_temp,
            momentum_start=momentum_start,
        )

    def teacher_temp_warmup_steps(self, max_steps: int, steps_per_epoch: int) -> int:
        """Length of the teacher-temperature warm-up in optimizer steps."""
        if self.warmup_teacher_temp_steps != "auto":
            return resolved(self.warmup_teacher_temp_steps, "warmup_teacher_temp_steps")
        epochs = self.warmup_teacher_temp_epochs
        if epochs is None:
            epochs = _WARMUP_TEACHER_TEMP_EPOCHS
        cap = int(max_steps * self.warmup_teacher_temp_max_steps_fraction)
        return min(epochs * steps_per_epoch, cap)

    def freeze_last_layer_steps(self, steps_per_epoch: int) -> int:
        """Optimizer steps at the start during which the head's last layer is frozen."""
        if self.student_freeze_last_layer_steps != "auto":
            return resolved(self.student_freeze_last_layer_steps, "student_freeze_last_layer_steps")
        epochs = self.student_freeze_last_layer_epochs
        if epochs is None:
            epochs = _FREEZE_LAST_LAYER_EPOCHS
        return epochs * steps_per_epoch


def resolved(value: T | str | None, name: str) -> T:
    """``value`` once it is no longer automatic."""
    if value is None or isinstance(value, str):
        raise ConfigError(
            f"method_args.{name} is still {value!r}; resolve the options first "
            "(Method.resolve_args, which a method built directly calls itself)."
        )
    return value


# Views. Each block subclasses the shared one with DINO's defaults, so a partial block
# (e.g. {"color_jitter": {"prob": 0.5}}) keeps DINO's other values.


@dataclass(kw_only=True)
class DINORandomResizeArgs(RandomResizeArgs):
    """Global views' random resized crop: area 0.14-1 (the DINO repository's ResNet recipe;
    its ViT recipe uses 0.4-1)."""

    min_scale: float = 0.14


@dataclass(kw_only=True)
class DINOLocalViewRandomResizeArgs(RandomResizeArgs):
    """Local views' random resized crop: area 0.05-0.14 (ViT recipe: 0.05-0.4)."""

    min_scale: float = 0.05
    max_scale: float = 0.14


@dataclass(kw_only=True)
class DINOColorJitterArgs(ColorJitterArgs):
    """The paper's color jitter, p=0.8: brightness 0.4, contrast 0.4, saturation 0.2, hue
    0.1, written as strength 0.5 times (0.8, 0.8, 0.4, 0.2)."""

    strength: float = 0.5
    saturation: float = 0.4


@dataclass(kw_only=True)
class DINOGaussianBlurArgs(GaussianBlurArgs):
    """Blur of global view 0: always (paper)."""

    prob: float = 1.0


@dataclass(kw_only=True)
class DINOGlobalView1GaussianBlurArgs(GaussianBlurArgs):
    """Blur of the second global view: p=0.1 (paper)."""

    prob: float = 0.1


@dataclass(kw_only=True)
class DINOGlobalView1Args:
    """What the second global view does differently from the first (``global_view_1``).

    Attributes:
        gaussian_blur: Its blur (p=0.1), or ``None`` for none.
        solarize: Its solarization (p=0.2, the paper), or ``None`` for none.
        augment: Its own augmentation instead of ``transform_args.augment`` (Python API
            only); ``None`` uses that one, ``torch.nn.Identity()`` switches it off.
    """

    gaussian_blur: DINOGlobalView1GaussianBlurArgs | None = field(
        default_factory=DINOGlobalView1GaussianBlurArgs
    )
    solarize: SolarizeArgs | None = field(default_factory=SolarizeArgs)
    augment: Callable[[Tensor], Tensor] | None = None

    def check(self, name: str) -> None:
        if self.augment is not None:
            check_callable(f"{name}.augment", self.augment)
        if self.gaussian_blur is not None:
            self.gaussian_blur.check(f"{name}.gaussian_blur")
        if self.solarize is not None:
            self.solarize.check(f"{name}.solarize")


@dataclass(kw_only=True)
class DINOLocalViewArgs:
    """The small local views (multi-crop), seen by the student only (``local_view``).

    They share the flip, color jitter, grayscale, solarization and normalization of
    ``transform_args``.

    Attributes:
        num_views: Number of local views per image (paper: 6 or 10); 0 disables them.
        view_size: ``(height, width)`` of the views. ``"auto"`` scales the paper's 96
            pixels for 224-pixel images to ``image_size``: ``round(side * 96 / 224)``, at
            least 8 pixels (14 for 32-pixel images).
        random_resize: Their random resized crop, or ``None`` for the whole image.
        gaussian_blur: Their blur (p=0.5, the paper), or ``None`` for none.
        augment: Their own augmentation instead of ``transform_args.augment`` (Python API
            only); ``None`` uses that one, ``torch.nn.Identity()`` switches it off.
    """

    num_views: int = 6
    view_size: tuple[int, int] | Auto = "auto"
    random_resize: DINOLocalViewRandomResizeArgs | None = field(
        default_factory=DINOLocalViewRandomResizeArgs
    )
    gaussian_blur: GaussianBlurArgs | None = field(default_factory=GaussianBlurArgs)
    augment: Callable[[Tensor], Tensor] | None = None

    def check(self, name: str) -> None:
        check_int(f"{name}.num_views", self.num_views, 0)
        if self.augment is not None:
            check_callable(f"{name}.augment", self.augment)
        if self.view_size != "auto":
            check_size(f"{name}.view_size", self.view_size)
        if self.random_resize is not None:
            self.random_resize.check(f"{name}.random_resize")
        if self.gaussian_blur is not None:
            self.gaussian_blur.check(f"{name}.gaussian_blur")


@dataclass(kw_only=True)
class DINOTransformArgs(MethodTransformArgs):
    """Options of DINO's views (``transform_args``): global view 0, global view 1, then
    ``local_view.num_views`` local views. See :class:`MethodTransformArgs` for the shared
    keys; here they set global view 0 and, except for the blur, the other views too.

    Attributes:
        random_resize: Crop of both global views (area 0.14-1).
        color_jitter: The paper's jitter, for every view.
        gaussian_blur: Blur of global view 0 (always).
        solarize: Solarization of global view 0 and of the local views (none).
        global_view_1: Blur (p=0.1) and solarization (p=0.2) of global view 1; cannot be
            ``None``.
        local_view: The local views, or ``None`` for none.
    """

    random_resize: DINORandomResizeArgs | None = field(default_factory=DINORandomResizeArgs)
    color_jitter: DINOColorJitterArgs | None = field(default_factory=DINOColorJitterArgs)
    gaussian_blur: DINOGaussianBlurArgs | None = field(default_factory=DINOGaussianBlurArgs)
    # Optional only so that None fails in __post_init__ (see MethodTransformArgs.normalize).
    global_view_1: DINOGlobalView1Args | None = field(default_factory=DINOGlobalView1Args)
    local_view: DINOLocalViewArgs | None = field(default_factory=DINOLocalViewArgs)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.global_view_1 is None:
            raise ConfigError(
                "transform_args.global_view_1 cannot be None; set its gaussian_blur or "
                "solarize to None instead."
            )
        self.global_view_1.check("transform_args.global_view_1")
        if self.local_view is not None:
            self.local_view.check("transform_args.local_view")

    def local_size(self) -> tuple[int, int]:
        """Size of the local views: ``local_view.view_size`` or ``image_size * 96 / 224``."""
        size = self.local_view.view_size if self.local_view is not None else "auto"
        return scale_size(self.image_size, 96, 224) if size == "auto" else size
