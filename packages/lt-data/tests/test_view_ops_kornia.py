"""The fused view kernels against kornia's functional ops, the reference where kornia has
the op: fixed parameters, so each comparison is deterministic.

test_view_ops.py compares the same kernels with torchvision's formulas (which they follow,
and which kornia's ``ColorJitter`` also implements); these tests add kornia, the library our
users build their own pipelines with (``ViewConfig.augment``), as an independent reference.

Tolerances (images in ``[0, 1]``): 1e-6 where both sides compute the same formula in float32
in a different op order (a few roundings of up to 6e-8 each), exact where no rounding
differs; a comment gives the reason (and the measured error) of every larger one.
"""

from __future__ import annotations

import math

import kornia as K
import pytest
import torch
import torchvision  # type: ignore[import-untyped]  # noqa: F401  (registers roi_align)

from lt_core import ViewConfig
from lt_data import _view_ops as ops
from lt_data._view_plan import GRAY, Consts, build_consts, make_plan

CPU = torch.device("cpu")
B = 6


def consts(cfg: ViewConfig, cpu: bool, batch: int = B, side: int = 16) -> Consts:
    return build_consts(make_plan(cfg.size, [cfg], [0]), batch, side, side, CPU, cpu=cpu)


def color_images() -> torch.Tensor:
    """Random colors with the hue's corner cases: gray, flat, ties of the max channel."""
    x = torch.rand(B, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    x[0] = x[0, :1]  # gray
    x[1, :, :4] = 0.5  # flat region
    x[2, 0] = x[2, 1]  # r == g
    x[3, :, :2] = torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1)  # saturated
    x[4, 2] = x[4, 0]  # r == b: where the hue wraps around
    x[5, 2] = x[5, 1]  # g == b
    return x


def per_row(values: list[float]) -> torch.Tensor:
    """One parameter per image, as the kernels take it: ``(B, 3, 1, 1)``."""
    return torch.tensor(values).view(B, 1, 1, 1).expand(B, 3, 1, 1)


FACTORS = [0.0, 0.3, 0.75, 1.0, 1.4, 1.8]
KERNELS = pytest.mark.parametrize("cpu", [True, False], ids=["cpu", "accelerator"])


@KERNELS
def test_brightness_is_kornias_adjust_brightness_accumulative(cpu: bool) -> None:
    # kornia.enhance.adjust_brightness adds the factor; the multiplicative one (torchvision's,
    # and kornia ColorJitter's) is adjust_brightness_accumulative.
    x, c = color_images(), consts(ViewConfig(size=(16, 16)), cpu)
    expected = K.enhance.adjust_brightness_accumulative(x, torch.tensor(FACTORS))
    assert (ops.brightness(x.clone(), per_row(FACTORS), c) - expected).abs().max() <= 1e-6


# kornia's gray weights are (0.299, 0.587, 0.114), ours torchvision's (0.2989, ...): the gray
# (mean) differs by at most 1e-4 * r, and a blend by |1 - factor| times that: 1e-4 at factor
# 0 (measured: 4.8e-5 contrast, 9.97e-5 saturation), 1.1e-4 with float rounding.
@KERNELS
def test_contrast_is_kornias_adjust_contrast_with_mean_subtraction(cpu: bool) -> None:
    x, c = color_images(), consts(ViewConfig(size=(16, 16)), cpu)
    expected = K.enhance.adjust_contrast_with_mean_subtraction(x, torch.tensor(FACTORS))
    assert (ops.contrast(x.clone(), per_row(FACTORS), c) - expected).abs().max() <= 1.1e-4


@KERNELS
def test_saturation_is_kornias_adjust_saturation_with_gray_subtraction(cpu: bool) -> None:
    x, c = color_images(), consts(ViewConfig(size=(16, 16)), cpu)
    expected = K.enhance.adjust_saturation_with_gray_subtraction(x, torch.tensor(FACTORS))
    assert (ops.saturation(x.clone(), per_row(FACTORS), c) - expected).abs().max() <= 1.1e-4


@KERNELS
@pytest.mark.parametrize("hue", [-0.5, -0.37, -0.1, 0.0, 0.05, 0.25, 0.5])
def test_hue_is_kornias_adjust_hue(hue: float, cpu: bool) -> None:
    # kornia goes through an HSV image with the hue as an angle in radians (2 pi per turn):
    # more roundings than ours (measured: 1e-6).
    x, c = color_images(), consts(ViewConfig(size=(16, 16)), cpu)
    shift = (torch.tensor([5.0, 3.0, 1.0]) + 6 * hue).view(1, 3, 1, 1).expand(B, 3, 1, 1)
    expected = K.enhance.adjust_hue(x, 2 * math.pi * hue)
    assert (ops.hue(x.clone(), shift, c) - expected).abs().max() <= 3e-6


@KERNELS
def test_grayscale_is_kornias_rgb_to_grayscale(cpu: bool) -> None:
    x, c = color_images(), consts(ViewConfig(size=(16, 16)), cpu)
    mask = per_row([1.0, 0.0, 1.0, 1.0, 0.0, 1.0])
    gray = K.color.rgb_to_grayscale(x, rgb_weights=torch.tensor(GRAY)).expand(-1, 3, -1, -1)
    expected = torch.where(mask > 0, gray, x)
    assert (ops.grayscale(x.clone(), mask, c) - expected).abs().max() <= 1e-6
    # With kornia's default weights (0.299 for red): within 1e-4 * r, plus rounding.
    default = K.color.rgb_to_grayscale(x).expand(-1, 3, -1, -1)
    assert (ops.grayscale(x.clone(), per_row([1.0] * B), c) - default).abs().max() <= 1.1e-4


@KERNELS
def test_blur_is_kornias_gaussian_blur2d(cpu: bool) -> None:
    # A 48 px view: a 5-tap kernel (the CPU's one 2-D convolution) and reflect padding.
    x = torch.rand(B, 3, 48, 48, generator=torch.Generator().manual_seed(1))
    cfg = ViewConfig(size=(48, 48), blur_prob=1.0, blur_sigma=(0.1, 20.0))
    c = consts(cfg, cpu, side=48)
    taps = c.taps.shape[0]
    assert taps == 5
    sigmas = [1e-3, 0.3, 0.7, 1.0, 2.0, 4.0]
    expected = K.filters.gaussian_blur2d(
        x, (taps, taps), torch.tensor(sigmas).view(B, 1).expand(B, 2), border_type="reflect"
    )
    assert (ops.gaussian_blur(x, per_row(sigmas), c) - expected).abs().max() <= 1e-6


def test_solarize_is_kornias() -> None:
    x, c = color_images(), consts(ViewConfig(size=(16, 16)), cpu=True)
    x[1, :, :2] = 0.5  # the threshold itself
    limit = per_row([1.0, 1.0, 2.0, 1.0, 2.0, 1.0])  # 1: solarize, 2: identity
    solarized = K.enhance.solarize(x, thresholds=0.5)
    expected = torch.where(limit < 2, solarized, x)
    # 1 - x is exact for x in [0.5, 1] and min(x, 1 - x) picks it above the threshold.
    assert torch.equal(ops.solarize(x.clone(), limit, c), expected)


@KERNELS
def test_normalize_is_kornias(cpu: bool) -> None:
    x = color_images()
    mean, std = (0.1, 0.2, 0.3), (0.5, 0.25, 2.0)
    c = consts(ViewConfig(size=(16, 16), mean=mean, std=std), cpu)
    expected = K.enhance.normalize(x, torch.tensor(mean), torch.tensor(std))
    # Normalized values reach 3.6, where float32's spacing is 2.4e-7 (measured: 0).
    assert (ops.normalize(x.clone(), c) - expected).abs().max() <= 1e-6


@KERNELS
@pytest.mark.parametrize("flip", [False, True], ids=["", "flipped"])
def test_crop_is_kornias_crop_and_resize(cpu: bool, flip: bool) -> None:
    # Our crop samples output pixel i of a box [x1, x2) (in pixels, edges) at
    # x1 + (i + 0.5) * (x2 - x1) / out - 0.5 (pixel centers); kornia's crop_and_resize maps
    # the corner pixels' centers onto each other (align_corners=True). The same samples:
    # kornia's box runs from the first to the last of ours. The boxes stay inside the
    # image, where both interpolate bilinearly without padding.
    side, out = 32, (12, 20)
    x = torch.rand(B, 3, side, side, generator=torch.Generator().manual_seed(2))
    boxes = torch.tensor(  # x1, y1, x2, y2 in pixels (edges)
        [
            [0, 0, 32, 32],
            [3, 5, 20, 30],
            [10.5, 2, 31, 17.25],
            [1, 1, 9, 7],
            [4, 0, 28, 12],
            [0, 8, 32, 20],
        ]
    )
    x1, y1, x2, y2 = boxes.unbind(1)
    if flip:  # a box from right to left flips the crop
        x1, x2 = x2, x1
    rois = torch.stack([torch.arange(float(B)), x1, y1, x2, y2], 1) / torch.tensor(
        [1.0, side, side, side, side]
    )
    c = consts(ViewConfig(size=out), cpu, side=side)
    ours = ops.crop(x, rois, out, c)

    def centers(lo: torch.Tensor, hi: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        step = (hi - lo) / n
        return lo + 0.5 * step - 0.5, lo + (n - 0.5) * step - 0.5

    (ax, bx), (ay, by) = centers(x1, x2, out[1]), centers(y1, y2, out[0])
    corners = torch.stack([torch.stack(p, -1) for p in ((ax, ay), (bx, ay), (bx, by), (ax, by))], 1)
    expected = K.geometry.transform.crop_and_resize(x, corners, out)
    # kornia maps the points with a float32 perspective matrix (solved per box): sampling
    # positions off by float32 roundings, values by that times the local slope (<= 1 per
    # px); measured: 5e-6.
    assert (ours - expected).abs().max() <= 2e-5
    if flip:  # and the flip is kornia's hflip of the unflipped crop
        unflipped = K.geometry.transform.crop_and_resize(x, corners[:, [1, 0, 3, 2]], out)
        assert (ours - K.geometry.transform.hflip(unflipped)).abs().max() <= 2e-5


@KERNELS
def test_rotated_crop_is_kornias_rotate(cpu: bool) -> None:
    # The central 16 x 16 crop of 32 x 32 images, turned about its center, is the center of
    # the turned image: kornia's rotate (counter-clockwise for positive angles, about the
    # center) of the whole image, cut to the crop; every pixel, as the crop's corners
    # (11.3 px from the center) stay inside. A box from right to left is the rotation of
    # the flipped image (the flip comes first), from bottom to top of the flopped one.
    side, out = 32, (16, 16)
    x = torch.rand(B, 3, side, side, generator=torch.Generator().manual_seed(3))
    degrees = torch.tensor([0.0, 30.0, -45.0, 90.0, 170.0, -12.5])
    flips = [(False, False), (False, False), (True, False), (False, True), (True, True)]
    flips.append((False, False))  # (horizontal, vertical) of each row
    boxes = []
    for i, (h, v) in enumerate(flips):
        x1, x2 = (24.0, 8.0) if h else (8.0, 24.0)
        y1, y2 = (24.0, 8.0) if v else (8.0, 24.0)
        boxes.append([float(i), x1 / side, y1 / side, x2 / side, y2 / side])
    rois = torch.tensor(boxes)
    cfg = ViewConfig(size=out, rotation_prob=1.0, rotation_degrees=(-180.0, 180.0))
    c = consts(cfg, cpu, side=side)
    assert c.grid is not None and c.padding == "reflection"  # the accelerator's too
    a = torch.deg2rad(degrees).view(B, 1, 1, 1)
    trig = ops.rotation(torch.cat([torch.full_like(a, math.pi / 2), a + math.pi / 2, a], 1))
    ours = ops.crop(x, rois, out, c, trig)
    flipped = x.clone()
    for i, (h, v) in enumerate(flips):
        if h:
            flipped[i] = K.geometry.transform.hflip(flipped[i])
        if v:
            flipped[i] = K.geometry.transform.vflip(flipped[i])
    expected = K.geometry.transform.rotate(flipped, degrees)[..., 8:24, 8:24]
    # kornia samples at float32 positions from its normalized rotation matrix, we at ours:
    # roundings of the positions times the local slope (<= 1 per px); measured 2e-6.
    assert (ours - expected).abs().max() <= 1e-5
