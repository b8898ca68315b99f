"""Batched, on-device view augmentations built from a method's view recipe.

A recipe is a sequence of :class:`lt_core.ViewConfig`. :func:`build_view_transform` turns it
into a module that takes a uint8 batch (on the CPU or an accelerator) and returns the views
as normalized float tensors, built from ``kornia.augmentation`` ops.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from lt_core import ConfigError, ConfigTypeError, DataError, ViewConfig

__all__ = ["ViewTransform", "build_view_transform"]

# Reference resolution of ``ViewConfig.blur_sigma`` and of the ~10% blur kernel.
_REFERENCE_SIZE = 224


def build_view_transform(recipe: Sequence[ViewConfig]) -> ViewTransform:
    """Build the batched augmentation module of a view recipe.

    For each :class:`lt_core.ViewConfig` in ``recipe`` the module applies, in this order:
    a random resized crop to ``cfg.size`` (``cfg.crop_scale``, ``cfg.crop_ratio``), a
    horizontal flip, a color jitter (torchvision's formulas, skipped when
    ``cfg.color_jitter`` is ``None``), a random grayscale, a Gaussian blur, a solarization
    with threshold 0.5 and the normalization with ``cfg.mean`` and ``cfg.std``. Ops with
    probability 0 are left out. Every image gets independent random parameters in every
    view, also in eval mode. The randomness comes from torch's global RNG, so
    ``torch.manual_seed`` makes the views reproducible.

    The blur kernel is about 10% of the view size (odd, at least 3) and the sigma range is
    ``cfg.blur_sigma`` scaled by ``max(cfg.size) / 224``.

    Args:
        recipe: The view groups, in order. Must not be empty.

    Returns:
        A module whose ``forward(images)`` takes a ``(B, 3, H, W)`` uint8 batch (a float
        batch is taken as already scaled to ``[0, 1]``) on any device and returns a list of
        ``sum(cfg.num_views for cfg in recipe)`` float32 tensors: for each group in order,
        ``cfg.num_views`` tensors of shape ``(B, 3, *cfg.size)``. Move it to the batch's
        device with ``.to(device)``.

    Raises:
        ConfigError: The recipe is empty.
        ConfigTypeError: An element of the recipe is not a ``ViewConfig``.
    """
    return ViewTransform(recipe)


class ViewTransform(nn.Module):
    """The module returned by :func:`build_view_transform` (see there)."""

    def __init__(self, recipe: Sequence[ViewConfig]) -> None:
        super().__init__()
        recipe = list(recipe)
        if not recipe:
            raise ConfigError(
                "The view recipe is empty. Pass at least one lt_core.ViewConfig, for example "
                "[ViewConfig(size=(224, 224), num_views=2)]."
            )
        for i, cfg in enumerate(recipe):
            if not isinstance(cfg, ViewConfig):
                raise ConfigTypeError(
                    f"recipe[{i}] must be an lt_core.ViewConfig, got {type(cfg).__name__}: "
                    f"{cfg!r}. Fix: build the recipe from ViewConfig(size=..., ...) objects."
                )
        self.recipe = tuple(recipe)
        self.groups = nn.ModuleList(_group_pipeline(cfg) for cfg in recipe)

    def forward(self, images: Tensor) -> list[Tensor]:
        if images.ndim != 4 or images.shape[1] != 3:
            raise DataError(
                f"The view transform expects a batch of RGB images of shape (B, 3, H, W), got "
                f"shape {tuple(images.shape)}. Fix: stack decoded (3, H, W) images into a batch."
            )
        if images.dtype == torch.uint8:
            x = images.float().div_(255.0)  # once per batch, shared by all views
        elif images.is_floating_point():
            x = images.float()
        else:
            raise DataError(
                f"The view transform expects uint8 images (or floats in [0, 1]), got {images.dtype}."
            )
        views: list[Tensor] = []
        for cfg, pipeline in zip(self.recipe, self.groups):
            # All views of a group go through the pipeline in one call: each row of the
            # repeated batch draws its own random parameters, so every view differs.
            batch = x if cfg.num_views == 1 else x.repeat(cfg.num_views, 1, 1, 1)
            views.extend(pipeline(batch).chunk(cfg.num_views))
        return views


def _group_pipeline(cfg: ViewConfig) -> nn.Sequential:
    """The kornia ops of one view group, with ops of probability 0 left out."""
    import kornia.augmentation as K  # imported here: it adds ~1.5 s to `import lt_data`

    ops: list[nn.Module] = [
        K.RandomResizedCrop(
            size=cfg.size,
            scale=cfg.crop_scale,
            ratio=cfg.crop_ratio,
            resample="bilinear",
            align_corners=False,
            cropping_mode="resample",  # one batched warp instead of a loop over images
        )
    ]
    if cfg.hflip_prob > 0:
        ops.append(K.RandomHorizontalFlip(p=cfg.hflip_prob))
    cj = cfg.color_jitter
    if cj is not None and cj.prob > 0 and any((cj.brightness, cj.contrast, cj.saturation, cj.hue)):
        ops.append(
            K.ColorJitter(
                brightness=cj.brightness,
                contrast=cj.contrast,
                saturation=cj.saturation,
                hue=cj.hue,
                p=cj.prob,
            )
        )
    if cfg.grayscale_prob > 0:
        ops.append(K.RandomGrayscale(p=cfg.grayscale_prob))
    if cfg.blur_prob > 0:
        scale = max(cfg.size) / _REFERENCE_SIZE
        lo, hi = cfg.blur_sigma
        k = _blur_kernel_size(cfg.size)
        ops.append(
            K.RandomGaussianBlur(
                kernel_size=(k, k), sigma=(lo * scale, hi * scale), p=cfg.blur_prob
            )
        )
    if cfg.solarize_prob > 0:
        ops.append(
            K.RandomSolarize(thresholds=(0.5, 0.5), additions=(0.0, 0.0), p=cfg.solarize_prob)
        )
    ops.append(
        K.Normalize(
            mean=torch.tensor(cfg.mean, dtype=torch.float32),
            std=torch.tensor(cfg.std, dtype=torch.float32),
        )
    )
    return nn.Sequential(*ops)


def _blur_kernel_size(size: tuple[int, int]) -> int:
    """Odd Gaussian blur kernel size of about 10% of the view size, at least 3."""
    k = max(3, math.ceil(0.1 * max(size)))
    return k if k % 2 == 1 else k + 1
