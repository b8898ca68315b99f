"""The view options shared by the methods (``transform_args``).

Names, nesting and meanings follow LightlyTrain 0.18, so its ``transform_args`` work here:
every augmentation is a block that ``None`` switches off, and each method subclasses the
blocks whose defaults differ (DINO's color jitter, for example). Options our view pipeline
(:class:`lt_core.ViewConfig`) cannot honor yet are accepted by name and rejected with a
clear error when they would change the views; docs/migrating.md lists every difference.

Blocks check their values in :meth:`check`, which the enclosing ``transform_args`` calls
with the block's full name, so an error names the exact option
(``transform_args.local_view.gaussian_blur.prob``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from torch import Tensor, nn

from lt_core import IMAGENET_MEAN, IMAGENET_STD, ColorJitter, ConfigError, ViewConfig
from lt_methods._checks import (
    check_callable,
    check_int,
    check_prob,
    check_size,
    not_supported,
)

__all__ = [
    "ColorJitterArgs",
    "GaussianBlurArgs",
    "MethodTransformArgs",
    "NormalizeArgs",
    "RandomFlipArgs",
    "RandomResizeArgs",
    "RandomRotationArgs",
    "SolarizeArgs",
]

#: The only solarization threshold the view pipeline applies.
_SOLARIZE_THRESHOLD = 0.5


@dataclass(kw_only=True)
class RandomResizeArgs:
    """Random resized crop (``random_resize``); ``None`` instead of the block resizes the
    whole image to the view size.

    Attributes:
        min_scale: Smallest crop area, as a fraction of the image area.
        max_scale: Largest crop area, as a fraction of the image area.
        min_ratio: Smallest aspect ratio (width / height) of the crop.
        max_ratio: Largest aspect ratio (width / height) of the crop.
    """

    min_scale: float = 0.08
    max_scale: float = 1.0
    min_ratio: float = 3 / 4
    max_ratio: float = 4 / 3

    def check(self, name: str) -> None:
        if not 0.0 < self.min_scale <= self.max_scale <= 1.0:
            raise ConfigError(
                f"{name}: min_scale and max_scale must satisfy 0 < min_scale <= max_scale <= 1 "
                f"(fractions of the image area), got {self.min_scale!r} and {self.max_scale!r}."
            )
        if not 0.0 < self.min_ratio <= self.max_ratio:
            raise ConfigError(
                f"{name}: min_ratio and max_ratio must satisfy 0 < min_ratio <= max_ratio, got "
                f"{self.min_ratio!r} and {self.max_ratio!r}."
            )


@dataclass(kw_only=True)
class RandomFlipArgs:
    """Random flips (``random_flip``), after the crop.

    Attributes:
        horizontal_prob: Probability of a horizontal flip.
        vertical_prob: Probability of a vertical flip (after the horizontal one).
    """

    horizontal_prob: float = 0.5
    vertical_prob: float = 0.0

    def check(self, name: str) -> None:
        check_prob(f"{name}.horizontal_prob", self.horizontal_prob)
        check_prob(f"{name}.vertical_prob", self.vertical_prob)


@dataclass(kw_only=True)
class RandomRotationArgs:
    """Random rotation (``random_rotation``) of each view about its center, after the crop
    and the flips, as in LightlyTrain.

    The angle is drawn uniformly from the range in degrees; positive turns the view
    counter-clockwise. The view keeps its size, and its corners show the image around the
    crop (mirrored at the image's border where they reach past it), where LightlyTrain
    mirrors the view at its own border (``cv2.BORDER_REFLECT_101``).

    Attributes:
        prob: Probability of a rotation.
        degrees: Largest angle ``d >= 0`` (drawn from ``[-d, d]``) or a range ``(low,
            high)``, within ``[-360, 360]``.
        interpolation: An OpenCV interpolation flag (LightlyTrain's default: 3, area).
            Accepted and ignored, as LightlyTrain 0.18 ignores it (it always rotates with
            ``cv2.INTER_AREA``, which a rotation runs as bilinear): the views are always
            sampled bilinearly.
    """

    prob: float
    degrees: float | tuple[float, float]
    interpolation: int = 3

    def check(self, name: str) -> None:
        check_prob(f"{name}.prob", self.prob)
        check_int(f"{name}.interpolation", self.interpolation, 0)
        single = isinstance(self.degrees, (int, float))
        low, high = self.range()
        if (single and float(self.degrees) < 0) or not -360.0 <= low <= high <= 360.0:  # type: ignore[arg-type]
            raise ConfigError(
                f"{name}.degrees must be an angle d in [0, 360] (the range [-d, d]) or a range "
                f"(low, high) with -360 <= low <= high <= 360, got {self.degrees!r}."
            )

    def range(self) -> tuple[float, float]:
        """``(low, high)`` of the angle in degrees: ``(-d, d)`` for a single ``d``."""
        if isinstance(self.degrees, (int, float)):
            d = abs(float(self.degrees))  # a negative d fails the check
            return (-d, d)
        low, high = self.degrees
        return (float(low), float(high))


@dataclass(kw_only=True)
class ColorJitterArgs:
    """Random color jitter (``color_jitter``), SimCLR's defaults (the paper's strength 1).

    Each applied value is ``strength`` times the option: brightness, contrast and
    saturation factors are drawn from ``[1 - v, 1 + v]``, the hue shift from ``[-v, v]``.

    Attributes:
        prob: Probability of jittering a view.
        strength: Multiplier of the four values below.
        brightness: Brightness before ``strength``.
        contrast: Contrast before ``strength``.
        saturation: Saturation before ``strength``.
        hue: Hue before ``strength``; ``strength * hue`` must be at most 0.5.
    """

    prob: float = 0.8
    strength: float = 1.0
    brightness: float = 0.8
    contrast: float = 0.8
    saturation: float = 0.8
    hue: float = 0.2

    def check(self, name: str) -> None:
        check_prob(f"{name}.prob", self.prob)
        for key in ("strength", "brightness", "contrast", "saturation", "hue"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{name}.{key} must be >= 0, got {getattr(self, key)!r}.")
        if self.strength * self.hue > 0.5:
            raise ConfigError(
                f"{name}: strength * hue must be at most 0.5 (a hue shift of half the color "
                f"circle), got {self.strength!r} * {self.hue!r}."
            )

    def to_view(self) -> ColorJitter | None:
        """The applied jitter, or ``None`` when it never changes a view."""
        values = [self.strength * v for v in (self.brightness, self.contrast, self.saturation)]
        hue = self.strength * self.hue
        if self.prob == 0 or not any([*values, hue]):
            return None
        b, c, s = values
        return ColorJitter(prob=self.prob, brightness=b, contrast=c, saturation=s, hue=hue)


@dataclass(kw_only=True)
class GaussianBlurArgs:
    """Random Gaussian blur (``gaussian_blur``), SimCLR's defaults.

    Attributes:
        prob: Probability of blurring a view.
        sigmas: Range of the blur's standard deviation in pixels, for views of a
            224-pixel image; other image sizes scale it by ``max(image_size) / 224``, so
            that a 32-pixel image gets a proportionally small blur. A view smaller than
            its image (DINO's local views) keeps the image's sigma in pixels.
        blur_limit: LightlyTrain's kernel size limit (0: from sigma). Accepted for
            compatibility; the kernel here is always about 10% of the view size (odd, at
            least 3), as in the SimCLR paper, and ``blur_limit`` does not change it.
    """

    prob: float = 0.5
    sigmas: tuple[float, float] = (0.1, 2.0)
    blur_limit: int | tuple[int, int] = 0

    def check(self, name: str) -> None:
        check_prob(f"{name}.prob", self.prob)
        if len(self.sigmas) != 2 or not 0.0 < self.sigmas[0] <= self.sigmas[1]:
            raise ConfigError(
                f"{name}.sigmas must be (low, high) with 0 < low <= high, got {self.sigmas!r}."
            )
        limits = self.blur_limit if isinstance(self.blur_limit, tuple) else (self.blur_limit,)
        for i, limit in enumerate(limits):
            check_int(f"{name}.blur_limit" + (f"[{i}]" if len(limits) > 1 else ""), limit, 0)
        if len(limits) == 2 and limits[0] > limits[1]:
            raise ConfigError(f"{name}.blur_limit must be (low, high) with low <= high.")


@dataclass(kw_only=True)
class SolarizeArgs:
    """Random solarization (``solarize``): pixels above ``threshold`` are inverted.

    Attributes:
        prob: Probability of solarizing a view.
        threshold: Fraction of the value range; only 0.5 is supported yet.
    """

    prob: float = 0.2
    threshold: float = _SOLARIZE_THRESHOLD

    def check(self, name: str) -> None:
        check_prob(f"{name}.prob", self.prob)
        if self.threshold != _SOLARIZE_THRESHOLD:
            raise not_supported(
                f"{name}.threshold",
                self.threshold,
                f"the views (lt_core.ViewConfig) solarize at {_SOLARIZE_THRESHOLD} only.",
            )


@dataclass(kw_only=True)
class NormalizeArgs:
    """Normalization (``normalize``) of views scaled to ``[0, 1]``.

    Attributes:
        mean: Per-channel mean (ImageNet's by default).
        std: Per-channel standard deviation (ImageNet's by default).
    """

    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def check(self, name: str) -> None:
        if any(s <= 0 for s in self.std):
            raise ConfigError(f"{name}.std must be > 0 for every channel, got {self.std!r}.")


@dataclass(kw_only=True)
class MethodTransformArgs:
    """The view options every method shares (``transform_args``), SimCLR's defaults.

    A method subclasses this to change the defaults (with subclassed blocks) or to add
    view groups, and builds its recipe with :meth:`view`. Images are resized to
    ``image_size`` when they are loaded; views are cut from that image.

    Attributes:
        image_size: ``(height, width)`` images are resized to, and the size of the views
            (DINO: of the global views).
        channel_drop: Only ``None``: channel dropping (multi-channel images) is not
            supported yet.
        num_channels: ``"auto"`` (the length of ``normalize.mean``) or 3; only RGB images
            are supported yet.
        random_resize: Random resized crop, or ``None`` for the whole image.
        random_flip: Random flips, or ``None`` for none.
        random_rotation: Random rotation, or ``None`` (the default) for none.
        color_jitter: Random color jitter, or ``None`` for none.
        random_gray_scale: Probability of converting a view to grayscale, or ``None``.
        normalize: Mean and std of the normalization; cannot be ``None``.
        gaussian_blur: Random Gaussian blur, or ``None`` for none.
        solarize: Random solarization, or ``None`` (the default) for none.
        augment: Your own batched augmentation of every view (Python API only), e.g. a
            ``kornia.augmentation`` pipeline: a callable from a float32 ``(N, 3, H, W)``
            batch in ``[0, 1]`` on the training device to a batch of the same shape. It
            runs after the built-in augmentations above and before ``normalize``, once per
            view group on all its views (see :attr:`lt_core.ViewConfig.augment`). Methods
            with several view groups may set a group's own (DINO: ``global_view_1.augment``,
            ``local_view.augment``); ``torch.nn.Identity()`` there switches it off.
    """

    image_size: tuple[int, int] = (224, 224)
    channel_drop: Any = None
    num_channels: int | Literal["auto"] = "auto"
    random_resize: RandomResizeArgs | None = field(default_factory=RandomResizeArgs)
    random_flip: RandomFlipArgs | None = field(default_factory=RandomFlipArgs)
    random_rotation: RandomRotationArgs | None = None
    color_jitter: ColorJitterArgs | None = field(default_factory=ColorJitterArgs)
    random_gray_scale: float | None = 0.2
    # Optional only so that None reaches __post_init__ and fails there: lt_core.from_dict
    # would turn None for a plain nested dataclass into its defaults.
    normalize: NormalizeArgs | None = field(default_factory=NormalizeArgs)
    gaussian_blur: GaussianBlurArgs | None = field(default_factory=GaussianBlurArgs)
    solarize: SolarizeArgs | None = None
    augment: Callable[[Tensor], Tensor] | None = None

    def __post_init__(self) -> None:
        name = "transform_args"
        if self.augment is not None:
            check_callable(f"{name}.augment", self.augment)
        check_size(f"{name}.image_size", self.image_size)
        if self.channel_drop is not None:
            raise not_supported(
                f"{name}.channel_drop",
                self.channel_drop,
                "the views are built for RGB images; leave channel_drop at None.",
            )
        if self.num_channels not in ("auto", 3):
            raise not_supported(
                f"{name}.num_channels",
                self.num_channels,
                'the views are built for RGB images; use "auto" or 3.',
            )
        if self.normalize is None:
            raise ConfigError(
                f"{name}.normalize cannot be None; give mean and std (or leave it out for "
                "ImageNet's)."
            )
        if self.random_gray_scale is not None:
            check_prob(f"{name}.random_gray_scale", self.random_gray_scale)
        for key in (
            "random_resize",
            "random_flip",
            "random_rotation",
            "color_jitter",
            "normalize",
            "gaussian_blur",
            "solarize",
        ):
            block = getattr(self, key)
            if block is not None:
                block.check(f"{name}.{key}")

    def image_views(self, num_views: int) -> ViewConfig:
        """One group of ``num_views`` identically augmented views at ``image_size``, with
        this block's crop, blur and solarization (the recipe of SimCLR, MoCo v2, DenseCL,
        distillation and SwAV's global views)."""
        return self.view(
            size=self.image_size,
            num_views=num_views,
            random_resize=self.random_resize,
            gaussian_blur=self.gaussian_blur,
            solarize=self.solarize,
        )

    def view(
        self,
        *,
        size: tuple[int, int],
        num_views: int,
        random_resize: RandomResizeArgs | None,
        gaussian_blur: GaussianBlurArgs | None,
        solarize: SolarizeArgs | None,
        augment: Callable[[Tensor], Tensor] | None = None,
    ) -> ViewConfig:
        """One view group of ``num_views`` views at ``size`` with the shared flips, rotation,
        color jitter, grayscale and normalization and the given crop, blur and solarization.
        ``augment`` is the group's own augmentation, ``None`` for the shared
        ``self.augment``; ``nn.Identity()`` for none."""
        h, w = self.image_size
        assert self.normalize is not None  # checked in __post_init__
        if random_resize is None:  # the whole image: area 1, the image's aspect ratio
            crop_scale, crop_ratio = (1.0, 1.0), (w / h, w / h)
        else:
            crop_scale = (random_resize.min_scale, random_resize.max_scale)
            crop_ratio = (random_resize.min_ratio, random_resize.max_ratio)
        blur_prob, blur_sigma = 0.0, (0.1, 2.0)
        if gaussian_blur is not None:
            # ViewConfig's sigma is relative to the view (x max(size) / 224); ours to the image.
            factor = max(self.image_size) / max(size)
            blur_prob = gaussian_blur.prob
            blur_sigma = (gaussian_blur.sigmas[0] * factor, gaussian_blur.sigmas[1] * factor)
        return ViewConfig(
            size=size,
            num_views=num_views,
            crop_scale=crop_scale,
            crop_ratio=crop_ratio,
            hflip_prob=self.random_flip.horizontal_prob if self.random_flip else 0.0,
            vflip_prob=self.random_flip.vertical_prob if self.random_flip else 0.0,
            rotation_prob=self.random_rotation.prob if self.random_rotation else 0.0,
            rotation_degrees=self.random_rotation.range() if self.random_rotation else (0.0, 0.0),
            color_jitter=self.color_jitter.to_view() if self.color_jitter else None,
            grayscale_prob=self.random_gray_scale or 0.0,
            blur_prob=blur_prob,
            blur_sigma=blur_sigma,
            solarize_prob=solarize.prob if solarize else 0.0,
            mean=self.normalize.mean,
            std=self.normalize.std,
            augment=_augment(augment if augment is not None else self.augment),
        )


def _augment(fn: Callable[[Tensor], Tensor] | None) -> Callable[[Tensor], Tensor] | None:
    """A view group's augmentation: ``nn.Identity()`` (which switches it off) is none."""
    return None if isinstance(fn, nn.Identity) else fn
