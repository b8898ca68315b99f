"""Batched, on-device view augmentations built from a method's view recipe.

A recipe is a sequence of :class:`lt_core.ViewConfig`. :func:`build_view_transform` turns it
into a module that takes a uint8 batch (on the CPU or an accelerator) and returns the views
as normalized float tensors. All views of one output size go through a fixed handful of
batched torch ops (one ``torch.rand`` for all their random parameters, one ``roi_align`` for
all crops, ...), so the host work per call does not grow with the batch or the views.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
from torch import Tensor, nn

from lt_core import ConfigError, ConfigTypeError, DataError, ViewConfig, describe_callable
from lt_data import _view_ops as ops
from lt_data._view_plan import Consts, GroupPlan, build_consts, make_plan

__all__ = ["ViewTransform", "build_view_transform"]

_PERMUTATIONS = tuple(itertools.permutations(range(4)))
_STEP_OPS: dict[str, Callable[[Tensor, Tensor, Consts], Tensor]] = {
    "brightness": ops.brightness,
    "contrast": ops.contrast,
    "saturation": ops.saturation,
    "hue": ops.hue,
}
_STEP_NAMES = tuple(_STEP_OPS)
_CACHE_SIZE = 8  # constant tables kept per (group, batch size, input size, device)


def build_view_transform(recipe: Sequence[ViewConfig]) -> ViewTransform:
    """Build the batched augmentation module of a view recipe.

    For each :class:`lt_core.ViewConfig` in ``recipe`` the module applies, in this order:
    a random resized crop to ``cfg.size`` (``cfg.crop_scale``, ``cfg.crop_ratio``; the
    scale and ratio distribution of torchvision's ``RandomResizedCrop`` with its 10 tries
    and its central fallback: whole-pixel sizes, uniform sub-pixel positions; bilinear,
    without antialias), a horizontal flip, a vertical flip, a rotation about the view's
    center (``cfg.rotation_prob``, ``cfg.rotation_degrees``; its corners sample the image
    beyond the crop, mirrored at the image's border), a color
    jitter (torchvision's formulas, skipped when ``cfg.color_jitter`` is ``None``), a random
    grayscale, a Gaussian blur, a solarization with threshold 0.5, the group's own
    augmentation ``cfg.augment`` (if any) and the normalization with ``cfg.mean`` and
    ``cfg.std``. Ops with probability 0 are left out. Every image
    gets independent random parameters in every view, also in eval mode; as in kornia's
    ``ColorJitter``, the order of the four jitter steps is drawn once per call (for all
    views of one size). The randomness comes from torch's global RNG (the batch's device
    for the parameters, the CPU for the jitter order), so ``torch.manual_seed`` makes the
    views reproducible.

    ``cfg.augment`` (e.g. a ``kornia.augmentation`` pipeline) is called once per call with
    all views of its group, a float32 ``(cfg.num_views * B, 3, *cfg.size)`` batch in ``[0,
    1]`` (view-major), and must return a float32 tensor of that shape on that device. An
    ``nn.Module`` pipeline becomes a submodule, so ``.to(device)`` moves its tensors. A
    recipe without any runs exactly the ops (and draws the random numbers) it ran before
    ``augment`` existed; a pipeline's draws come after those of its group's built-in ops.

    The blur kernel is about 10% of the view size (odd, at least 3) and the sigma range is
    ``cfg.blur_sigma`` scaled by ``max(cfg.size) / 224``. Outer taps that weigh less than
    1e-8 of the center at the largest sigma are left out (no output moves by more than
    3e-8), so small views get a shorter kernel: with the default ``blur_sigma``, 3 taps at
    32 px and none at all (no blur op) up to 18 px.

    Args:
        recipe: The view groups, in order. Must not be empty.

    Returns:
        A module whose ``forward(images)`` takes a ``(B, 3, H, W)`` uint8 batch (a float
        batch is taken as already scaled to ``[0, 1]``) on any device and returns a list of
        ``sum(cfg.num_views for cfg in recipe)`` contiguous float32 tensors: for each group
        in order, ``cfg.num_views`` tensors of shape ``(B, 3, *cfg.size)``. It holds no
        tensors of its own: ``.to(device)`` is accepted, and the batch's device is used.

    Raises:
        ConfigError: The recipe is empty.
        ConfigTypeError: An element of the recipe is not a ``ViewConfig``.
        ConfigError: (when called) An ``augment`` returned something other than a float32
            tensor of its input's shape and device.
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
        # Registers torch.ops.torchvision.roi_align; imported here, it takes ~0.5 s.
        import torchvision  # type: ignore[import-untyped]  # noqa: F401

        self.recipe = tuple(recipe)
        self.plans = _plans(self.recipe)
        self._num_views = sum(cfg.num_views for cfg in recipe)
        self._jittered = [i for i, p in enumerate(self.plans) if len(p.steps) > 1]
        self._augments = _augment_spans(self.recipe, self.plans)
        # nn.Module pipelines as submodules: .to(device) moves their tensors.
        modules = {id(a.fn): a.fn for spans in self._augments for a in spans}
        self.augments = nn.ModuleList(m for m in modules.values() if isinstance(m, nn.Module))
        self._consts: OrderedDict[tuple[object, ...], Consts] = OrderedDict()
        # None: the CPU kernels on the CPU (see build_consts); tests set True or False.
        self._cpu_kernels: bool | None = None

    def forward(self, images: Tensor) -> list[Tensor]:
        if images.ndim != 4 or images.shape[1] != 3:
            raise DataError(
                f"The view transform expects a batch of RGB images of shape (B, 3, H, W), got "
                f"shape {tuple(images.shape)}. Fix: stack decoded (3, H, W) images into a batch."
            )
        if images.dtype == torch.uint8:
            x = torch.div(images, _scalar(255.0))  # float32, once per batch for all views
        elif images.is_floating_point():
            x = images if images.dtype == torch.float32 else images.float()
        else:
            raise DataError(
                f"The view transform expects uint8 images (or floats in [0, 1]), got {images.dtype}."
            )
        orders = self._draw_orders()
        views: list[Tensor] = [x] * self._num_views
        for i, plan in enumerate(self.plans):
            c, order = self._constants(i, x), orders.get(i, plan.steps)
            out = _run_group(plan, x, c, order, self._augments[i])
            for slot, view in zip(plan.slots, out):
                views[slot] = view
        return views

    def _draw_orders(self) -> dict[int, tuple[str, ...]]:
        """A random order of the jitter steps for each group (kornia: one per call)."""
        if not self._jittered:
            return {}
        n = len(self._jittered)
        if 24**n < 2**62:
            code = int(torch.randint(24**n, ()).item())
            codes = [code // 24**g % 24 for g in range(n)]
        else:
            codes = torch.randint(24, (n,)).tolist()
        return {
            i: tuple(s for j in _PERMUTATIONS[c] if (s := _STEP_NAMES[j]) in self.plans[i].steps)
            for i, c in zip(self._jittered, codes)
        }

    def _constants(self, index: int, x: Tensor) -> Consts:
        b, _, h, w = x.shape
        key = (index, b, h, w, x.device, self._cpu_kernels)
        consts = self._consts.get(key)
        if consts is None:
            consts = build_consts(self.plans[index], b, h, w, x.device, self._cpu_kernels)
            self._consts[key] = consts
            if len(self._consts) > _CACHE_SIZE * len(self.plans):
                self._consts.popitem(last=False)
        return consts


def _plans(recipe: tuple[ViewConfig, ...]) -> tuple[GroupPlan, ...]:
    """One plan per view size: groups of the same size share their batched ops."""
    rows: dict[tuple[int, int], tuple[list[ViewConfig], list[int]]] = {}
    slot = 0
    for cfg in recipe:
        views, slots = rows.setdefault(tuple(cfg.size), ([], []))  # type: ignore[arg-type]
        views.extend([cfg] * cfg.num_views)
        slots.extend(range(slot, slot + cfg.num_views))
        slot += cfg.num_views
    return tuple(make_plan(size, v, s) for size, (v, s) in rows.items())


class _Augment(NamedTuple):
    """A recipe group's ``augment`` and the views ``[first, end)`` of its plan it runs on."""

    first: int
    end: int
    fn: Callable[[Tensor], Tensor]
    group: int  # index in the recipe, for error messages


def _augment_spans(
    recipe: tuple[ViewConfig, ...], plans: tuple[GroupPlan, ...]
) -> tuple[tuple[_Augment, ...], ...]:
    """For each plan, the groups with an ``augment`` (their views are consecutive there)."""
    spans: list[list[_Augment]] = [[] for _ in plans]
    index = {plan.size: i for i, plan in enumerate(plans)}
    filled = [0] * len(plans)
    for group, cfg in enumerate(recipe):
        i = index[tuple(cfg.size)]  # type: ignore[index]
        first, filled[i] = filled[i], filled[i] + cfg.num_views
        if cfg.augment is not None:
            spans[i].append(_Augment(first, filled[i], cfg.augment, group))
    return tuple(tuple(s) for s in spans)


def _augment(y: Tensor, fn: Callable[[Tensor], Tensor], group: int) -> None:
    """Apply a group's own augmentation to its rows ``y`` (in place)."""
    out = fn(y)
    if out is y:
        return
    if (
        not isinstance(out, Tensor)
        or out.shape != y.shape
        or out.dtype != y.dtype
        or out.device != y.device
    ):
        got = (
            f"a {out.dtype} tensor of shape {tuple(out.shape)} on {out.device}"
            if isinstance(out, Tensor)
            else f"a {type(out).__name__}"
        )
        raise ConfigError(
            f"The augment of view group {group} ({describe_callable(fn).splitlines()[0]}) "
            f"returned {got} for a {y.dtype} batch of shape {tuple(y.shape)} on {y.device}; "
            "it must return a tensor of the same shape, dtype and device. Fix: keep the "
            "size (set it with the view size, e.g. transform_args image_size, not in the "
            "pipeline) and return the augmented batch itself, not a tuple or its parameters."
        )
    if out.untyped_storage().data_ptr() == y.untyped_storage().data_ptr():
        out = out.clone()  # a view of y (e.g. a transpose): copy before overwriting y
    y.copy_(out)


def _run_group(
    plan: GroupPlan,
    x: Tensor,
    c: Consts,
    order: tuple[str, ...],
    augments: tuple[_Augment, ...] = (),
) -> tuple[Tensor, ...]:
    """All views of one plan: ``(B, 3, *plan.size)`` tensors in view order."""
    rois, misc = ops.draw_params(c, x.device)
    p = dict(zip(plan.misc, ops.blend_misc(misc, c)))
    y = ops.crop(x, rois, plan.size, c, ops.rotation(p["angle"]) if plan.rotate else None)
    for step in order:
        y = _STEP_OPS[step](y, p[step], c)
    if plan.gray:
        y = ops.grayscale(y, p["gray"], c)
    if plan.blur and c.taps.shape[0] > 1:  # 1 tap: sigmas too small to change a pixel
        y = ops.gaussian_blur(y, p["sigma"], c)
    if plan.solarize:  # in place, in the rows of the views that may be solarized
        first, end = (i * (y.shape[0] // len(plan.views)) for i in plan.solarize_span)
        ops.solarize(y[first:end], p["solarize"][first:end], c)  # all rows: views of y
    rows = y.shape[0] // len(plan.views)
    for a in augments:  # the groups' own augmentations, on their rows of y
        _augment(y[a.first * rows : a.end * rows], a.fn, a.group)
    y = ops.normalize(y, c)
    return y.chunk(len(plan.views)) if len(plan.views) > 1 else (y,)


_SCALARS: dict[float, Tensor] = {}


def _scalar(value: float) -> Tensor:
    """A float32 CPU scalar tensor: usable with tensors on any device, sets float32 math."""
    if value not in _SCALARS:
        _SCALARS[value] = torch.tensor(value, dtype=torch.float32)
    return _SCALARS[value]
