from __future__ import annotations

import dataclasses
from typing import Any

import pytest
import torch
import torchvision.transforms.v2.functional as TF
from torch import nn

from lt_core import ColorJitter, ConfigError, ConfigTypeError, DataError, ViewConfig
from lt_data import build_view_transform
from lt_data._view_plan import blur_kernel_size as _blur_kernel_size
from lt_data._view_plan import blur_taps, make_plan

RECIPE = [
    ViewConfig(size=(32, 32), num_views=2, blur_prob=0.5, solarize_prob=0.2),
    ViewConfig(size=(16, 16), num_views=6, crop_scale=(0.05, 0.4), blur_prob=0.5),
]
MEAN = torch.tensor(RECIPE[0].mean).view(1, 3, 1, 1)
STD = torch.tensor(RECIPE[0].std).view(1, 3, 1, 1)
# A view that only crops the whole image and normalizes with mean 0, std 1.
PLAIN: dict[str, Any] = {
    "size": (32, 32),
    "crop_scale": (1.0, 1.0),
    "crop_ratio": (1.0, 1.0),
    "hflip_prob": 0.0,
    "color_jitter": None,
    "grayscale_prob": 0.0,
    "mean": (0.0, 0.0, 0.0),
    "std": (1.0, 1.0, 1.0),
}


def assert_close(actual: torch.Tensor, expected: torch.Tensor, atol: float = 1e-5) -> None:
    # Not torch.testing.assert_close: its first call takes seconds (it imports numpy).
    assert actual.shape == expected.shape and actual.dtype == expected.dtype
    assert (actual - expected).abs().max() <= atol


def images(b: int = 8, size: int = 32) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return torch.randint(0, 256, (b, 3, size, size), dtype=torch.uint8, generator=g)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32, torch.float16, torch.float64])
def test_outputs_shapes_dtype_range(dtype: torch.dtype) -> None:
    x = images()
    x = x if dtype == torch.uint8 else (x / 255).to(dtype)
    views = build_view_transform(RECIPE)(x)
    assert len(views) == 8
    assert [tuple(v.shape) for v in views] == [(8, 3, 32, 32)] * 2 + [(8, 3, 16, 16)] * 6
    for v in views:
        assert v.dtype == torch.float32 and v.is_contiguous()
        assert torch.isfinite(v).all()
        # Normalized values of pixels in [0, 1].
        assert (v >= (0 - MEAN) / STD - 1e-4).all() and (v <= (1 - MEAN) / STD + 1e-4).all()
        assert -1.5 < v.mean() < 1.5 and v.std() > 0.2


def test_reproducible_with_manual_seed() -> None:
    transform = build_view_transform(RECIPE)
    torch.manual_seed(0)
    a = transform(images())
    torch.manual_seed(0)
    b = transform(images())
    c = transform(images())
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not torch.equal(a[0], c[0])
    state = torch.get_rng_state()
    d = transform(images())
    torch.set_rng_state(state)
    e = transform(images())
    assert all(torch.equal(x, y) for x, y in zip(d, e))
    # The same views for a channels-last batch, as contiguous tensors.
    torch.set_rng_state(state)
    f = transform(images().contiguous(memory_format=torch.channels_last))
    assert all(torch.equal(x, y) and y.is_contiguous() for x, y in zip(d, f))


def test_views_and_images_get_independent_parameters() -> None:
    x = images(1).expand(16, -1, -1, -1)  # the same image 16 times
    views = build_view_transform(RECIPE)(x)
    assert not torch.equal(views[0], views[1])
    for v in (views[0], views[2]):
        distinct = {tuple(row.flatten()[:64].tolist()) for row in v}
        assert len(distinct) > 12


def test_plain_view_is_identity_and_skips_zero_probability_ops() -> None:
    transform = build_view_transform([ViewConfig(**PLAIN)])
    (plan,) = transform.plans
    assert not (plan.flip or plan.steps or plan.gray or plan.blur or plan.solarize)
    assert plan.misc == ()
    x = images()
    (view,) = transform(x)
    assert_close(view, x.float() / 255)
    assert_close(transform(x.float() / 255)[0], x.float() / 255)  # float input


def test_normalization() -> None:
    cfg = ViewConfig(**{**PLAIN, "mean": (0.5, 0.25, 0.0), "std": (0.5, 0.25, 2.0)})
    x = images()
    (view,) = build_view_transform([cfg])(x)
    expected = (x.float() / 255 - torch.tensor([0.5, 0.25, 0.0]).view(1, 3, 1, 1)) / torch.tensor(
        [0.5, 0.25, 2.0]
    ).view(1, 3, 1, 1)
    assert_close(view, expected)


def test_solarize_threshold_and_grayscale() -> None:
    x = images()
    (view,) = build_view_transform([ViewConfig(**{**PLAIN, "solarize_prob": 1.0})])(x)
    f = x.float() / 255
    assert_close(view, torch.where(f >= 0.5, 1 - f, f))
    (view,) = build_view_transform([ViewConfig(**{**PLAIN, "grayscale_prob": 1.0})])(x)
    assert torch.allclose(view[:, 0], view[:, 1]) and torch.allclose(view[:, 1], view[:, 2])


@pytest.mark.parametrize("cpu_kernels", [True, False])
def test_solarize_only_in_the_views_that_ask_for_it(cpu_kernels: bool) -> None:
    # One group of four views of the same size; only the second and third may solarize,
    # so the solarization runs on their rows alone (and the third never solarizes).
    x = images()
    recipe = [
        ViewConfig(**PLAIN),
        ViewConfig(**{**PLAIN, "solarize_prob": 1.0}),
        ViewConfig(**{**PLAIN, "solarize_prob": 1e-9}),
        ViewConfig(**PLAIN),
    ]
    transform = build_view_transform(recipe)
    transform._cpu_kernels = cpu_kernels
    assert transform.plans[0].solarize_span == (1, 3)
    first, second, third, fourth = transform(x)
    f = x.float() / 255
    for view in (first, third, fourth):
        assert_close(view, f)
    assert_close(second, torch.where(f >= 0.5, 1 - f, f))


def test_color_jitter_and_blur_change_the_image() -> None:
    x = images()
    jitter = ColorJitter(prob=1.0, brightness=0.8, contrast=0.8, saturation=0.8, hue=0.2)
    extras: list[dict[str, Any]] = [
        {"color_jitter": jitter},
        {"blur_prob": 1.0, "blur_sigma": (10.0, 20.0)},
    ]
    for extra in extras:
        (view,) = build_view_transform([ViewConfig(**{**PLAIN, **extra})])(x)
        assert (view - x.float() / 255).abs().mean() > 0.02
    (view,) = build_view_transform([ViewConfig(**{**PLAIN, "hflip_prob": 1.0})])(x)
    assert_close(view, x.float().flip(-1) / 255)


def test_blur_kernel_size() -> None:
    assert _blur_kernel_size((224, 224)) == 23
    assert _blur_kernel_size((32, 32)) == 5
    assert _blur_kernel_size((16, 16)) == 3
    assert _blur_kernel_size((8, 8)) == 3
    assert _blur_kernel_size((96, 128)) == 13


@pytest.mark.parametrize("side", [8, 18, 19, 32, 64])
def test_blur_leaves_out_taps_too_light_to_change_a_pixel(side: int) -> None:
    view = ViewConfig(**{**PLAIN, "size": (side, side), "blur_prob": 1.0})
    plan = make_plan(view.size, [view], [0])
    taps = blur_taps(plan)
    # Default blur_sigma (0.1, 2.0) px at 224: the largest sigma is 2 * side / 224 px.
    assert taps == {8: 1, 18: 1, 19: 3, 32: 3, 64: 7}[side] <= _blur_kernel_size(view.size)
    torch.manual_seed(0)
    x = images(4, side)
    (view_out,) = build_view_transform([view])(x)
    if taps == 1:  # the blur is skipped: the view is the image
        assert_close(view_out, x.float() / 255, atol=1e-6)
    # What leaving the taps out changes (torchvision's blur with the whole ~10% kernel
    # against the short one; test_view_ops checks our blur against torchvision's): at the
    # largest sigma, where the outer taps weigh most, on a black and white image.
    sharp = (torch.rand(4, 3, side, side) > 0.5).float()
    k, sigma = _blur_kernel_size(view.size), 2.0 * side / 224
    full = TF.gaussian_blur(sharp, [k, k], [sigma, sigma])
    short = TF.gaussian_blur(sharp, [taps, taps], [sigma, sigma]) if taps > 1 else sharp
    assert (full - short).abs().max() <= 3e-8


def test_bad_recipe_and_input() -> None:
    with pytest.raises(ConfigError, match="empty"):
        build_view_transform([])
    with pytest.raises(ConfigTypeError, match=r"recipe\[0\]"):
        build_view_transform([{"size": (32, 32)}])  # type: ignore[list-item]
    transform = build_view_transform(RECIPE)
    with pytest.raises(DataError, match=r"\(B, 3, H, W\)"):
        transform(images()[0])
    with pytest.raises(DataError, match="uint8"):
        transform(images().int())


def test_groups_of_one_size_share_ops_and_keep_the_recipe_order() -> None:
    recipe = [
        ViewConfig(**PLAIN),
        ViewConfig(**{**PLAIN, "size": (16, 16), "num_views": 2}),
        ViewConfig(**{**PLAIN, "mean": (0.5, 0.5, 0.5), "solarize_prob": 1.0}),
    ]
    transform = build_view_transform(recipe)
    assert [p.size for p in transform.plans] == [(32, 32), (16, 16)]
    x = images()
    views = transform(x)
    assert [tuple(v.shape[-2:]) for v in views] == [(32, 32), (16, 16), (16, 16), (32, 32)]
    f = x.float() / 255
    assert_close(views[0], f)  # the solarization of its group-mate is not applied here
    assert_close(views[3], torch.where(f >= 0.5, 1 - f, f) - 0.5)


def test_module_holds_no_state_and_moves() -> None:
    transform = build_view_transform(RECIPE).to(torch.device("cpu"))
    assert transform.state_dict() == {}
    assert len(transform(images(2))) == 8


class Recorder(nn.Module):
    """A user augmentation that records the batches it gets and maps ``x`` to ``1 - x``."""

    def __init__(self) -> None:
        super().__init__()
        self.shapes: list[tuple[int, ...]] = []
        self.ranges: list[tuple[float, float]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.shapes.append(tuple(x.shape))
        self.ranges.append((x.min().item(), x.max().item()))
        return 1 - x


def test_augment_runs_on_its_groups_rows_after_the_ops_before_normalization() -> None:
    recorder = Recorder()
    mean = (0.5, 0.25, 0.0)
    recipe = [
        ViewConfig(**{**PLAIN, "num_views": 2, "solarize_prob": 1.0, "augment": recorder}),
        ViewConfig(**PLAIN),  # the same size: one plan with the group above
        ViewConfig(**{**PLAIN, "size": (16, 16), "mean": mean, "augment": recorder}),
    ]
    transform = build_view_transform(recipe)
    assert len(transform.plans) == 2 and list(transform.augments) == [recorder]
    x = images(b=4)
    views = transform(x)
    f = x.float() / 255
    # Once per group and call, on all views of the group, in [0, 1] (not normalized).
    assert recorder.shapes == [(8, 3, 32, 32), (4, 3, 16, 16)]
    assert all(0 <= lo and hi <= 1 for lo, hi in recorder.ranges)
    solarized = torch.where(f >= 0.5, 1 - f, f)
    assert_close(views[0], 1 - solarized) and assert_close(views[1], 1 - solarized)
    assert_close(views[2], f)  # the group without an augment
    small = torch.nn.functional.interpolate(f, size=(16, 16), mode="bilinear")
    expected = (1 - small) - torch.tensor(mean).view(1, 3, 1, 1)
    assert_close(views[3], expected, atol=1e-3)  # (our resize is not interpolate's exactly)


@pytest.mark.parametrize("cpu_kernels", [True, False], ids=["cpu", "accelerator"])
def test_augment_leaves_the_other_groups_views_and_random_numbers_as_they_were(
    cpu_kernels: bool,
) -> None:
    import kornia.augmentation as K

    plain = build_view_transform(RECIPE)
    flip = K.RandomVerticalFlip(p=1.0)  # draws no random numbers at p=1
    augmented = build_view_transform([dataclasses.replace(RECIPE[0], augment=flip), RECIPE[1]])
    plain._cpu_kernels = augmented._cpu_kernels = cpu_kernels
    x = images()
    torch.manual_seed(5)
    expected = plain(x)
    after_plain = torch.rand(3)
    torch.manual_seed(5)
    got = augmented(x)
    assert torch.equal(torch.rand(3), after_plain)  # the same random numbers drawn
    assert all(torch.equal(a, b) for a, b in zip(got[2:], expected[2:]))  # bit-identical
    for a, b in zip(got[:2], expected[:2]):  # flipped before the (per-channel) normalization
        assert_close(a, b.flip(-2), atol=1e-6)


@pytest.mark.parametrize(
    ("augment", "message"),
    [
        (lambda x: x[..., :16], r"shape \(16, 3, 32, 16\) on cpu for a torch.float32 batch"),
        (lambda x: x.double(), "returned a torch.float64 tensor"),
        (lambda x: (x, None), "returned a tuple"),
    ],
    ids=["shape", "dtype", "tuple"],
)
def test_augment_with_a_wrong_output_names_the_group_and_the_fix(
    augment: Any, message: str
) -> None:
    transform = build_view_transform([RECIPE[1], dataclasses.replace(RECIPE[0], augment=augment)])
    with pytest.raises(ConfigError, match=rf"augment of view group 1 .*{message}.*Fix: keep"):
        transform(images())


def test_augment_module_moves_with_the_transform_and_may_work_in_place() -> None:
    identity = nn.Conv2d(3, 3, 1, bias=False)  # a module with a weight
    nn.init.eye_(identity.weight.data.view(3, 3))
    recipe = [
        ViewConfig(**{**PLAIN, "augment": identity}),
        ViewConfig(**{**PLAIN, "augment": lambda x: x.transpose(-1, -2)}),  # a view of x
        ViewConfig(**{**PLAIN, "augment": lambda x: x.clamp_(0.0, 0.5)}),  # x itself
    ]
    transform = build_view_transform(recipe).to(torch.device("cpu"), torch.float64)
    assert identity.weight.dtype == torch.float64
    assert list(transform.state_dict()) == ["augments.0.weight"]
    transform.to(torch.float32)
    x = images(2)
    f = x.float() / 255
    with torch.no_grad():
        a, b, c = transform(x)
    assert_close(a, f)
    assert_close(b, f.transpose(-1, -2))
    assert_close(c, f.clamp(0.0, 0.5))


def whole(height: int, width: int, **extra: Any) -> ViewConfig:
    """A view of the whole ``height x width`` image at its size, not normalized."""
    ratio = (width / height, width / height)
    return ViewConfig(**{**PLAIN, "size": (height, width), "crop_ratio": ratio, **extra})


KERNEL_SETS = pytest.mark.parametrize("cpu_kernels", [True, False], ids=["cpu", "accelerator"])


@KERNEL_SETS
@pytest.mark.parametrize(("height", "width"), [(32, 32), (24, 40), (40, 24)])
def test_vertical_flip_is_torchvisions(cpu_kernels: bool, height: int, width: int) -> None:
    # Exact up to float32 rounding of the sample positions (y in units of the width on the
    # CPU; measured: up to 2e-6 on non-square images, 0 on square ones).
    x = torch.randint(0, 256, (4, 3, height, width), dtype=torch.uint8)
    f = x.float() / 255
    for extra, expected in [
        ({"vflip_prob": 1.0}, TF.vertical_flip(f)),
        ({"vflip_prob": 1.0, "hflip_prob": 1.0}, TF.horizontal_flip(TF.vertical_flip(f))),
        ({"vflip_prob": 0.0}, f),
    ]:
        transform = build_view_transform([whole(height, width, **extra)])
        transform._cpu_kernels = cpu_kernels
        (view,) = transform(x)
        assert_close(view, expected, atol=1e-5)


def turned(f: torch.Tensor, degrees: float) -> torch.Tensor:
    """torchvision's bilinear rotation (counter-clockwise for positive degrees)."""
    return TF.rotate(f, degrees, interpolation=TF.InterpolationMode.BILINEAR)


def disk(height: int, width: int, margin: float = 1.5) -> torch.Tensor:
    """The pixels whose rotation stays inside the image (torchvision fills 0 outside)."""
    i = torch.arange(height).view(-1, 1) + 0.5 - height / 2
    j = torch.arange(width).view(1, -1) + 0.5 - width / 2
    return (i**2 + j**2).sqrt() <= min(height, width) / 2 - margin


@KERNEL_SETS
@pytest.mark.parametrize("degrees", [-90.0, -33.0, 10.0, 45.0, 137.0])
def test_rotation_is_torchvisions_rotate(cpu_kernels: bool, degrees: float) -> None:
    # The whole image at its size: a rotation of the image itself. torchvision samples the
    # same positions (affine_grid + grid_sample); float32 rounding of the positions, times
    # the local slope (<= 1 per px): measured 2e-6.
    x = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    f = x.float() / 255
    cfg = whole(32, 32, rotation_prob=1.0, rotation_degrees=(degrees, degrees))
    transform = build_view_transform([cfg])
    transform._cpu_kernels = cpu_kernels
    (view,) = transform(x)
    inside = disk(32, 32)
    assert_close(view * inside, turned(f, degrees) * inside, atol=1e-5)
    # Flips come first (LightlyTrain's order): the rotation of the flipped image.
    cfg = dataclasses.replace(cfg, hflip_prob=1.0, vflip_prob=1.0)
    flipped = build_view_transform([cfg])
    flipped._cpu_kernels = cpu_kernels
    expected = turned(TF.horizontal_flip(TF.vertical_flip(f)), degrees)
    assert_close(flipped(x)[0] * inside, expected * inside, atol=1e-5)


@KERNEL_SETS
def test_rotation_of_a_non_square_view_turns_its_pixels(cpu_kernels: bool) -> None:
    # A 24 x 40 view of a 24 x 40 image, turned by 90 degrees about its center: the central
    # 24 x 24 square is the square's own rotation (torchvision's, on that square).
    x = torch.randint(0, 256, (2, 3, 24, 40), dtype=torch.uint8)
    cfg = whole(24, 40, rotation_prob=1.0, rotation_degrees=(90, 90))
    transform = build_view_transform([cfg])
    transform._cpu_kernels = cpu_kernels
    (view,) = transform(x)
    square = x.float()[..., 8:32] / 255
    assert_close(view[..., 8:32], turned(square, 90.0), atol=1e-5)
    assert_close(view[..., 8:32], square.rot90(1, dims=(-2, -1)), atol=1e-5)


@KERNEL_SETS
def test_rotation_with_probability_0_or_a_range_of_0_changes_nothing(cpu_kernels: bool) -> None:
    x = torch.randint(0, 256, (4, 3, 24, 40), dtype=torch.uint8)
    for extra in [
        {"rotation_prob": 0.0, "rotation_degrees": (-90.0, 90.0)},
        {"rotation_prob": 1.0, "rotation_degrees": (0.0, 0.0)},
    ]:
        transform = build_view_transform([whole(24, 40, **extra)])
        transform._cpu_kernels = cpu_kernels
        assert not transform.plans[0].rotate
        assert_close(transform(x)[0], x.float() / 255)


@KERNEL_SETS
def test_vertical_flip_probability(cpu_kernels: bool) -> None:
    torch.manual_seed(7)
    x = torch.tensor([0, 255], dtype=torch.uint8).view(1, 1, 2, 1).expand(8000, 3, 2, 1)
    for prob in (0.0, 0.3, 1.0):
        transform = build_view_transform([whole(2, 1, vflip_prob=prob)])
        transform._cpu_kernels = cpu_kernels
        (view,) = transform(x.contiguous())
        flipped = view[:, 0, 0, 0] == 1
        assert torch.equal(view[:, 0, 0, 0], flipped.float())  # exactly flipped or not
        assert abs(flipped.float().mean() - prob) < 0.02


def test_rotation_and_vertical_flip_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"ViewConfig.vflip_prob must be in \[0, 1\]"):
        ViewConfig(size=(8, 8), vflip_prob=1.5)
    with pytest.raises(ConfigError, match=r"ViewConfig.rotation_prob must be in \[0, 1\]"):
        ViewConfig(size=(8, 8), rotation_prob=-0.1)
    for degrees in [(30.0, -30.0), (-400.0, 0.0), (0.0, float("nan")), (1.0,)]:
        with pytest.raises(ConfigError, match=r"rotation_degrees must be \(low, high\)"):
            ViewConfig(size=(8, 8), rotation_degrees=degrees)  # type: ignore[arg-type]
    assert not ViewConfig(size=(8, 8), rotation_prob=1.0).rotates  # a range of 0
    assert ViewConfig(size=(8, 8), rotation_prob=1.0, rotation_degrees=(0, 5)).rotates
