"""The batched view ops: host op counts, torchvision's formulas and the distributions."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import pytest
import torch
import torchvision.transforms.v2.functional as TF
from torch.profiler import ProfilerActivity, profile
from torchvision.transforms import RandomResizedCrop

from lt_core import ColorJitter, ViewConfig
from lt_data import _view_ops as ops
from lt_data import build_view_transform
from lt_data._view_plan import Consts, build_consts, make_plan

CPU = torch.device("cpu")
# These mirror the default view recipes of lt_methods (lt-data must not import it):
# SimCLR().view_recipe(SimCLRTransformArgs()) and DINO().view_recipe(DINOTransformArgs()).
SIMCLR = [
    ViewConfig(
        size=(224, 224),
        num_views=2,
        crop_scale=(0.08, 1.0),
        color_jitter=ColorJitter(prob=0.8, brightness=0.8, contrast=0.8, saturation=0.8, hue=0.2),
        grayscale_prob=0.2,
        blur_prob=0.5,
    )
]
_DINO_JITTER = ColorJitter(prob=0.8, brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1)
DINO = [
    ViewConfig(size=(224, 224), crop_scale=(0.4, 1.0), color_jitter=_DINO_JITTER, blur_prob=1.0),
    ViewConfig(
        size=(224, 224),
        crop_scale=(0.4, 1.0),
        color_jitter=_DINO_JITTER,
        blur_prob=0.1,
        solarize_prob=0.2,
    ),
    ViewConfig(
        size=(96, 96),
        num_views=6,
        crop_scale=(0.05, 0.4),
        color_jitter=_DINO_JITTER,
        blur_prob=0.5,
    ),
]


def turning(recipe: list[ViewConfig]) -> list[ViewConfig]:
    """``recipe`` with LightlyTrain's ``random_flip.vertical_prob=0.5`` and
    ``random_rotation={"prob": 0.5, "degrees": 30}`` in every view."""
    return [
        dataclasses.replace(cfg, vflip_prob=0.5, rotation_prob=0.5, rotation_degrees=(-30.0, 30.0))
        for cfg in recipe
    ]


def top_level_ops(fn: Callable[[], Any]) -> int:
    """Operators one call dispatches from Python: the profiler's operator events (names
    ``aten::...``, and ``torchvision::roi_align``) that are not nested in another operator
    event. The kornia pipeline this replaced dispatched 756 (SimCLR) and 2,293 (DINO)."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    count = 0
    for event in prof.events():
        if not event.name.startswith(("aten::", "torchvision::")):
            continue
        parent = event.cpu_parent
        while parent is not None and "::" not in parent.name:
            parent = parent.cpu_parent
        count += parent is None
    return count


def small(recipe: list[ViewConfig], side: int) -> list[ViewConfig]:
    """``recipe`` with views of ``side`` pixels (DINO's local views: ``side // 2``)."""
    return [
        dataclasses.replace(cfg, size=(side, side) if cfg.size[0] == 224 else (side // 2,) * 2)
        for cfg in recipe
    ]


# Accelerator kernels: each op is a launch, so the count bounds the host time of a call.
# CPU kernels (32 px): more, cheaper ops (binary instead of ternary, no remainder); a CPU op
# costs its pass over the data, and the count only guards against ops per view or per image.
# The vertical flip adds no op; a rotation (measured, per view size): 16 on an accelerator
# (the crop becomes a grid_sample: SimCLR 59 -> 75, DINO 119 -> 151), 5 on the CPU.
@pytest.mark.parametrize(
    ("recipe", "cpu_kernels", "side", "limit"),
    [
        (SIMCLR, False, 64, 60),
        (DINO, False, 64, 150),
        (small(SIMCLR, 32), True, 32, 120),
        (small(DINO, 32), True, 32, 230),
        (turning(SIMCLR), False, 64, 76),
        (turning(DINO), False, 64, 152),
        (turning(small(SIMCLR, 32)), True, 32, 120),
        (turning(small(DINO, 32)), True, 32, 230),
    ],
    ids=[
        "simclr",
        "dino",
        "simclr-cpu-32px",
        "dino-cpu-32px",
        "simclr-turned",
        "dino-turned",
        "simclr-turned-cpu-32px",
        "dino-turned-cpu-32px",
    ],
)
def test_op_count_is_small_and_independent_of_the_batch_size(
    recipe: list[ViewConfig], cpu_kernels: bool, side: int, limit: int
) -> None:
    transform = build_view_transform(recipe)
    transform._cpu_kernels = cpu_kernels
    counts = []
    for batch in (2, 8):
        images = torch.randint(0, 256, (batch, 3, side, side), dtype=torch.uint8)
        transform(images)  # builds the constant tables of this batch size
        counts.append(top_level_ops(lambda: transform(images)))  # noqa: B023
    assert counts[0] == counts[1] <= limit, counts


@pytest.mark.parametrize(
    "recipe",
    [SIMCLR, DINO, turning(SIMCLR), turning(DINO)],
    ids=["simclr", "dino", "simclr-turned", "dino-turned"],
)
@pytest.mark.parametrize("side", [32, 96])
def test_cpu_and_accelerator_kernels_make_the_same_views(
    recipe: list[ViewConfig], side: int
) -> None:
    # 32 px: the crop as matrix products on the CPU; 96 px: roi_align in both.
    transform = build_view_transform(small(recipe, side))
    images = torch.randint(0, 256, (16, 3, side, side), dtype=torch.uint8)
    views = []
    for cpu_kernels in (True, False):
        transform._cpu_kernels = cpu_kernels
        torch.manual_seed(3)
        views.append(transform(images))
    for cpu, accelerator in zip(*views):
        assert (cpu - accelerator).abs().max() <= 4e-4  # normalized: about 1e-4 of [0, 1]


@pytest.mark.parametrize(
    ("height", "width", "size"),
    [
        (32, 32, (32, 32)),
        (32, 32, (14, 14)),
        (40, 24, (16, 20)),
        (17, 33, (33, 8)),
        (256, 192, (224, 224)),
        (224, 224, (96, 96)),
    ],
)
def test_cpu_crop_is_roi_align(height: int, width: int, size: tuple[int, int]) -> None:
    cfg = ViewConfig(size=size, num_views=3, crop_scale=(0.05, 1.0), crop_ratio=(0.5, 2.0))
    plan = make_plan(size, [cfg] * 3, [0, 1, 2])
    x = torch.rand(5, 3, height, width, generator=torch.Generator().manual_seed(0))
    grid = build_consts(plan, 5, height, width, CPU, cpu=True)
    roi = build_consts(plan, 5, height, width, CPU, cpu=False)
    assert grid.grid is not None and roi.grid is None
    torch.manual_seed(0)
    rois, _ = ops.draw_params(roi, CPU)
    expected = ops.crop(x, rois, size, roi)
    # grid_sample's normalized coordinates: float32 rounding of about 1e-5 pixel at 256 px.
    assert (ops.crop(x, rois, size, grid) - expected).abs().max() <= 1e-4


def consts(
    cfg: ViewConfig, batch: int = 4, height: int = 16, width: int = 16, cpu: bool = True
) -> Consts:
    plan = make_plan(cfg.size, [cfg], [0])
    return build_consts(plan, batch, height, width, CPU, cpu=cpu)


def color_images() -> torch.Tensor:
    x = torch.rand(6, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    x[0] = x[0, :1]  # gray
    x[1, :, :4] = 0.5  # flat region
    x[2, 0] = x[2, 1]  # r == g: torchvision's tie-break of the hue
    x[3, :, :2] = torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1)  # saturated
    x[4, 2] = x[4, 0]  # r == b: where the hue wraps around (h = -1 or 5 sixths)
    x[5, 2] = x[5, 1]  # g == b
    return x


@pytest.mark.parametrize("factor", [0.0, 0.3, 1.0, 1.8])
def test_brightness_contrast_saturation_are_torchvisions(factor: float) -> None:
    x, c = color_images(), consts(ViewConfig(size=(16, 16)), batch=6)
    f = torch.full((6, 3, 1, 1), factor)
    for ours, theirs in [
        (ops.brightness, TF.adjust_brightness),
        (ops.contrast, TF.adjust_contrast),
        (ops.saturation, TF.adjust_saturation),
    ]:
        assert (ours(x.clone(), f, c) - theirs(x, factor)).abs().max() <= 1e-5, ours.__name__


@pytest.mark.parametrize("cpu_kernels", [True, False], ids=["cpu", "accelerator"])
@pytest.mark.parametrize("hue", [-0.5, -0.37, -0.1, 0.0, 0.05, 0.25, 0.5])
def test_hue_is_torchvisions(hue: float, cpu_kernels: bool) -> None:
    x, c = color_images(), consts(ViewConfig(size=(16, 16)), batch=6, cpu=cpu_kernels)
    shift = (torch.tensor([5.0, 3.0, 1.0]) + 6 * hue).view(1, 3, 1, 1).expand(6, 3, 1, 1)
    assert (ops.hue(x.clone(), shift, c) - TF.adjust_hue(x, hue)).abs().max() <= 1e-5


def test_grayscale_and_normalize() -> None:
    x = color_images()
    cfg = ViewConfig(size=(16, 16), mean=(0.1, 0.2, 0.3), std=(0.5, 0.25, 2.0))
    c = consts(cfg, batch=6)
    assert (
        ops.grayscale(x.clone(), torch.ones(6, 3, 1, 1), c) - TF.rgb_to_grayscale(x, 3)
    ).abs().max() <= 1e-5
    assert (ops.grayscale(x.clone(), torch.zeros(6, 3, 1, 1), c) - x).abs().max() <= 1e-6
    expected = TF.normalize(x, list(cfg.mean), list(cfg.std))
    assert (ops.normalize(x.clone(), c) - expected).abs().max() <= 1e-5


def test_blur_is_a_normalized_gaussian_with_reflect_padding() -> None:
    x = color_images()
    # A sigma range reaching 5 px: the whole 3-tap kernel of a 16 px view (see blur_taps).
    c = consts(ViewConfig(size=(16, 16), blur_prob=1.0, blur_sigma=(0.1, 70.0)), batch=6)
    assert c.taps.shape[0] == 3
    sigma = torch.tensor([1e-3, 0.5, 1.0, 2.0, 3.0, 5.0]).view(6, 1, 1, 1).expand(6, 3, 1, 1)
    out = ops.gaussian_blur(x, sigma, c)
    assert torch.equal(out[0], x[0])  # a tiny sigma is the identity
    k = c.taps.shape[0]
    for i in range(1, 6):
        expected = TF.gaussian_blur(x[i], [k, k], [sigma[i, 0, 0, 0].item()] * 2)
        assert (out[i] - expected).abs().max() <= 1e-5


def sample(cfg: ViewConfig, rows: int, height: int, width: int) -> dict[str, torch.Tensor]:
    """The parameters of ``rows`` views of one image: box size, position and misc values."""
    c = consts(cfg, batch=rows, height=height, width=width)
    rois, misc = ops.draw_params(c, CPU)
    x1, y1, x2, y2 = (rois[:, i] * width for i in range(1, 5))
    out = {"b": rois[:, 0], "w": (x2 - x1).abs(), "h": y2 - y1, "flip": (x1 > x2).float()}
    out |= {"x": torch.minimum(x1, x2), "y": torch.minimum(y1, y2), "vflip": (y1 > y2).float()}
    plan = make_plan(cfg.size, [cfg], [0])
    if plan.misc:
        raw = dict(zip(plan.misc, misc[:, :, 0].unbind(-1)))
        blended = dict(zip(plan.misc, (v[:, :, 0, 0] for v in ops.blend_misc(misc, c))))
        out |= {f"raw_{k}": v for k, v in raw.items()} | blended
    return out


@pytest.mark.parametrize(
    ("scale", "ratio", "height", "width"),
    [((0.08, 1.0), (3 / 4, 4 / 3), 256, 256), ((0.4, 1.0), (0.5, 2.0), 200, 300)],
)
def test_crop_matches_torchvision_random_resized_crop(
    scale: tuple[float, float], ratio: tuple[float, float], height: int, width: int
) -> None:
    torch.manual_seed(0)
    cfg = ViewConfig(size=(32, 32), crop_scale=scale, crop_ratio=ratio)
    p = sample(cfg, 20_000, height, width)
    assert torch.equal(p["b"], torch.arange(20_000.0))
    w, h = p["w"].round(), p["h"].round()  # whole pixels, as torchvision's
    assert ((p["w"] - w).abs() < 1e-3).all() and ((p["h"] - h).abs() < 1e-3).all()
    assert (w >= 1).all() and (w <= width).all() and (h >= 1).all() and (h <= height).all()
    assert (p["x"] >= 0).all() and (p["x"] + w <= width + 1e-3).all()
    assert (p["y"] >= 0).all() and (p["y"] + h <= height + 1e-3).all()
    area, log_ratio = w * h / (height * width), (w / h).log()
    # Within the configured ranges up to the rounding to whole pixels.
    assert area.min() >= scale[0] * 0.97 and area.max() <= scale[1] * 1.03
    slack = 2 / min(height, width) / min(scale[0], 0.5)
    assert log_ratio.min() >= math.log(ratio[0]) - slack
    assert log_ratio.max() <= math.log(ratio[1]) + slack
    # The position is uniform over the valid offsets.
    free = width - w
    assert abs((p["x"][free > 0] / free[free > 0]).mean() - 0.5) < 0.01
    reference = torch.tensor(
        [
            RandomResizedCrop.get_params(torch.empty(1, height, width), list(scale), list(ratio))
            for _ in range(8000)
        ],
        dtype=torch.float,
    )
    ref_area = reference[:, 2] * reference[:, 3] / (height * width)
    ref_log_ratio = (reference[:, 3] / reference[:, 2]).log()
    assert abs(area.mean() - ref_area.mean()) < 0.015
    assert abs(area.std() - ref_area.std()) < 0.015
    assert abs(log_ratio.mean() - ref_log_ratio.mean()) < 0.02


def test_crop_without_rejection_is_uniform_in_area_and_log_ratio() -> None:
    torch.manual_seed(1)
    # Every try is valid: the area and the log aspect ratio are uniform.
    cfg = ViewConfig(size=(32, 32), crop_scale=(0.05, 0.4))
    p = sample(cfg, 20_000, 512, 512)
    area, log_ratio = p["w"] * p["h"] / 512**2, (p["w"] / p["h"]).log()
    assert abs(area.mean() - 0.225) < 0.005
    assert abs(log_ratio.mean()) < 0.01
    assert abs(log_ratio.std() - math.log(16 / 9) / math.sqrt(12)) < 0.01


def test_crop_fallback_is_torchvisions_central_crop() -> None:
    # No try can be valid: a full-area crop whose aspect ratio cannot be 2.
    cfg = ViewConfig(size=(32, 32), crop_scale=(1.0, 1.0), crop_ratio=(3 / 4, 4 / 3))
    p = sample(cfg, 100, 60, 120)
    # torchvision: in_ratio 2 > 4/3, so h = H = 60, w = round(60 * 4/3) = 80, centered.
    for key, value in {"w": 80.0, "h": 60.0, "x": 20.0, "y": 0.0}.items():
        assert (p[key] - value).abs().max() < 1e-3, key


def test_vertical_flip_and_rotation_parameters() -> None:
    torch.manual_seed(5)
    cfg = ViewConfig(
        size=(32, 32),
        vflip_prob=0.3,
        rotation_prob=0.6,
        rotation_degrees=(-20.0, 50.0),
        color_jitter=None,
        grayscale_prob=0.0,
    )
    p = sample(cfg, 40_000, 48, 64)  # not square: the flip's corner is a mask times H / W
    assert torch.equal(p["raw_rotate"][:, 0], p["rotate"][:, 0])
    for key, prob in {"vflip": 0.3, "rotate": 0.6}.items():
        value = p[key] if p[key].ndim == 1 else p[key][:, 0]
        assert torch.equal(value, value.round()), key  # exactly 0 or 1
        assert abs(value.mean() - prob) < 0.01, key
    # The box keeps its size and position with the flip (y is the top edge either way).
    assert (p["y"] >= 0).all() and (p["y"] + p["h"] <= 48 + 1e-3).all()
    trig = ops.rotation(p["angle"].view(-1, 3, 1, 1)).view(-1, 3)
    turned = p["rotate"][:, 0] == 1
    assert (trig[~turned] == torch.tensor([1.0, 1.0, 0.0])).all()  # exactly no turn
    assert (trig[turned, 0] == 1).all()
    degrees = torch.rad2deg(torch.atan2(trig[turned, 2], trig[turned, 1]))
    assert degrees.min() >= -20.0 - 1e-3 and degrees.max() <= 50.0 + 1e-3
    assert abs(degrees.mean() - 15.0) < 0.5 and abs(degrees.std() - 70 / math.sqrt(12)) < 0.5


def test_probabilities_and_factor_ranges() -> None:
    torch.manual_seed(2)
    jitter = ColorJitter(prob=0.7, brightness=0.8, contrast=0.4, saturation=0.2, hue=0.1)
    cfg = ViewConfig(
        size=(96, 96),
        hflip_prob=0.3,
        color_jitter=jitter,
        grayscale_prob=0.2,
        blur_prob=0.4,
        blur_sigma=(0.1, 2.0),
        solarize_prob=0.1,
    )
    p = sample(cfg, 40_000, 64, 64)
    for key, prob in {
        "flip": 0.3,
        "raw_jitter": 0.7,
        "gray": 0.2,
        "raw_blur": 0.4,
        "solarize": 0.1 + 2 * 0.9,  # the limit is 1 (solarize) or 2 (identity)
    }.items():
        value = p[key] if p[key].ndim == 1 else p[key][:, 0]
        assert torch.equal(value, value.round()), key  # exactly 0 or 1 (1 or 2)
        assert abs(value.mean() - prob) < 0.01, key
    applied = p["raw_jitter"][:, 0] == 1
    for step, strength in [("brightness", 0.8), ("contrast", 0.4), ("saturation", 0.2)]:
        f = p[step][:, 0]
        assert (f[~applied] == 1).all()
        assert f[applied].min() >= 1 - strength and f[applied].max() <= 1 + strength
        assert abs(f[applied].mean() - 1) < 0.01
    shift = p["hue"] - torch.tensor([5.0, 3.0, 1.0])  # 6 * hue factor, the same per channel
    assert (shift[~applied] == 0).all() and (shift.std(dim=1) < 1e-5).all()
    assert shift.min() >= -0.6 - 1e-5 and shift.max() <= 0.6 + 1e-5
    assert abs(shift[applied, 0].std() - 0.6 / math.sqrt(3)) < 0.01  # uniform on [-0.6, 0.6]
    blurred = p["raw_blur"][:, 0] == 1
    sigma = p["sigma"][:, 0]
    lo, hi = 0.1 * 96 / 224, 2.0 * 96 / 224  # scaled by max(size) / 224
    assert (sigma[~blurred] == 1e-3).all()
    assert sigma[blurred].min() >= lo - 1e-6 and sigma[blurred].max() <= hi + 1e-6
    assert abs(sigma[blurred].mean() - (lo + hi) / 2) < 0.01


@pytest.mark.parametrize(
    ("extra", "prob"),
    [
        ({"hflip_prob": 0.3}, 0.3),
        ({"grayscale_prob": 0.3}, 0.3),
        ({"solarize_prob": 0.4}, 0.4),
        ({"blur_prob": 0.4, "blur_sigma": (20.0, 40.0)}, 0.4),
        (
            {
                "color_jitter": ColorJitter(
                    prob=0.6, brightness=0.5, contrast=0, saturation=0, hue=0
                )
            },
            0.6,
        ),
        (
            {
                "color_jitter": ColorJitter(
                    prob=0.6, brightness=0, contrast=0, saturation=0, hue=0.3
                )
            },
            0.6,
        ),
    ],
)
def test_application_rates_of_the_transform(extra: dict[str, Any], prob: float) -> None:
    torch.manual_seed(3)
    base: dict[str, Any] = {
        "size": (8, 8),
        "crop_scale": (1.0, 1.0),
        "crop_ratio": (1.0, 1.0),
        "hflip_prob": 0.0,
        "color_jitter": None,
        "grayscale_prob": 0.0,
        "mean": (0.0, 0.0, 0.0),
        "std": (1.0, 1.0, 1.0),
    }
    images = torch.randint(0, 256, (4000, 3, 8, 8), dtype=torch.uint8)
    (view,) = build_view_transform([ViewConfig(**{**base, **extra})])(images)
    changed = ((view - images / 255).abs().flatten(1).amax(1) > 1e-3).float()
    assert abs(changed.mean() - prob) < 0.04


def test_jitter_order_is_random_per_call() -> None:
    transform = build_view_transform(SIMCLR)
    torch.manual_seed(4)
    orders = {transform._draw_orders()[0] for _ in range(300)}
    steps = ["brightness", "contrast", "hue", "saturation"]
    assert len(orders) == 24 and all(sorted(o) == steps for o in orders)
