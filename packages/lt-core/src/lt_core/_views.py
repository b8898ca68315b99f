"""View recipes: the augmentations a method asks for, as plain data.

SSL methods (``lt_methods``) declare the views they need with these dataclasses, and the
data package (``lt_data``) turns them into batched augmentations. Keeping the recipe here,
in torch-free plain data, lets the two packages agree without importing each other and lets
users pair any method with their own augmentation code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from torch import Tensor

from lt_core._config import check_callable
from lt_core._errors import ConfigError

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "ColorJitter", "ViewConfig"]

IMAGENET_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
IMAGENET_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)


@dataclass(frozen=True, kw_only=True)
class ColorJitter:
    """Random color jitter applied with probability ``prob``, with the usual strengths."""

    prob: float = 0.8
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.2
    hue: float = 0.1

    def __post_init__(self) -> None:
        if not 0.0 <= self.prob <= 1.0:
            raise ConfigError(f"ColorJitter.prob must be in [0, 1], got {self.prob}.")
        for name in ("brightness", "contrast", "saturation"):
            if getattr(self, name) < 0:
                raise ConfigError(f"ColorJitter.{name} must be >= 0, got {getattr(self, name)}.")
        if not 0.0 <= self.hue <= 0.5:
            raise ConfigError(
                f"ColorJitter.hue must be in [0, 0.5] (0.5 shifts the hue by half the color "
                f"circle, the most there is), got {self.hue}."
            )


@dataclass(frozen=True, kw_only=True)
class ViewConfig:
    """One group of ``num_views`` identically distributed views of each image.

    The views of a recipe (a sequence of ``ViewConfig``) are produced in order: all views
    of the first group, then all views of the second group, and so on.

    Attributes:
        size: ``(height, width)`` of each view in pixels.
        num_views: How many views of this kind to produce per image.
        crop_scale: Area range of the random resized crop, relative to the image.
        crop_ratio: Aspect ratio range of the random resized crop.
        hflip_prob: Probability of a horizontal flip.
        vflip_prob: Probability of a vertical flip (after the horizontal one).
        rotation_prob: Probability of a rotation of the view about its center, after the
            flips (LightlyTrain's order). The rotated view samples the image around its
            crop, so its corners show the image beyond the crop, mirrored at the image's
            border where they reach past it (not a fill colour).
        rotation_degrees: ``(low, high)`` range of the rotation angle in degrees, drawn
            uniformly; positive angles turn the view counter-clockwise (torchvision's
            ``rotate``). A range of ``(0, 0)`` never rotates.
        color_jitter: Color jitter settings, or ``None`` for none.
        grayscale_prob: Probability of converting to grayscale.
        blur_prob: Probability of a Gaussian blur.
        blur_sigma: Range of the blur's standard deviation, as a fraction of 224 pixels
            scaled to the view size (so a 32-pixel view gets a proportionally small blur).
        solarize_prob: Probability of solarization (threshold 0.5).
        augment: Your own batched augmentation of these views, or ``None``: a callable
            (e.g. a ``kornia.augmentation`` pipeline or any ``nn.Module``) that takes a
            float32 ``(N, 3, *size)`` batch with values in ``[0, 1]`` on the training
            device and returns a float32 batch of the same shape, device and range. It runs
            after the built-in ops above and before the normalization, once per batch on
            all ``N = num_views * batch_size`` views of the group (view-major: the first
            view of every image, then the second, ...), and draws its randomness from
            torch's global RNG as the built-in ops do.
        mean: Per-channel mean for normalization (inputs scaled to [0, 1] first).
        std: Per-channel standard deviation for normalization.
    """

    size: tuple[int, int]
    num_views: int = 1
    crop_scale: tuple[float, float] = (0.08, 1.0)
    crop_ratio: tuple[float, float] = (3 / 4, 4 / 3)
    hflip_prob: float = 0.5
    vflip_prob: float = 0.0
    rotation_prob: float = 0.0
    rotation_degrees: tuple[float, float] = (0.0, 0.0)
    color_jitter: ColorJitter | None = field(default_factory=ColorJitter)
    grayscale_prob: float = 0.2
    blur_prob: float = 0.0
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    solarize_prob: float = 0.0
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    augment: Callable[[Tensor], Tensor] | None = None

    def __post_init__(self) -> None:
        if len(self.size) != 2 or min(self.size) <= 0:
            raise ConfigError(f"ViewConfig.size must be (height, width) > 0, got {self.size}.")
        if self.num_views < 1:
            raise ConfigError(f"ViewConfig.num_views must be >= 1, got {self.num_views}.")
        lo, hi = self.crop_scale
        if not 0 < lo <= hi <= 1:
            raise ConfigError(
                f"ViewConfig.crop_scale must satisfy 0 < min <= max <= 1, got {self.crop_scale}."
            )
        for name in (
            "hflip_prob",
            "vflip_prob",
            "rotation_prob",
            "grayscale_prob",
            "blur_prob",
            "solarize_prob",
        ):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ConfigError(f"ViewConfig.{name} must be in [0, 1], got {p}.")
        degrees = self.rotation_degrees
        if (
            len(degrees) != 2
            or not all(isinstance(d, (int, float)) and -360 <= d <= 360 for d in degrees)
            or degrees[0] > degrees[1]
        ):
            raise ConfigError(
                "ViewConfig.rotation_degrees must be (low, high) in degrees with "
                f"-360 <= low <= high <= 360, got {degrees!r}. Fix: e.g. (-30.0, 30.0)."
            )
        if self.augment is not None:
            check_callable("ViewConfig.augment", self.augment)

    @property
    def rotates(self) -> bool:
        """Whether the views may rotate: ``rotation_prob > 0`` and a range other than 0."""
        return self.rotation_prob > 0 and tuple(self.rotation_degrees) != (0.0, 0.0)
