"""SimCLR specifics: the view recipe, option checks and learning on a fixed batch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from lt_core import ConfigError, ConfigTypeError, from_dict
from lt_methods import SimCLR, SimCLRArgs, SimCLRTransformArgs

Factory = Callable[..., Any]


def _view(**values: Any) -> Any:
    (view,) = SimCLR.view_recipe(from_dict(SimCLRTransformArgs, values, "transform_args"))
    return view


def test_defaults() -> None:
    assert SimCLR.default_optimizer == "sgd"
    args = SimCLRArgs()
    assert (args.output_dim, args.temperature, args.num_layers) == (128, 0.1, 2)
    assert (args.lr_scale_method, args.reference_batch_size) == ("linear", 256)


def test_recipe_is_the_papers_two_views_at_image_size() -> None:
    view = _view(image_size=[40, 48])
    assert view.num_views == 2 and view.size == (40, 48)
    assert view.crop_scale == (0.08, 1.0) and view.crop_ratio == pytest.approx((3 / 4, 4 / 3))
    assert view.hflip_prob == 0.5 and view.grayscale_prob == 0.2
    assert view.color_jitter is not None
    jitter = view.color_jitter
    assert (jitter.prob, jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue) == (
        0.8,
        0.8,
        0.8,
        0.8,
        0.2,
    )
    assert view.blur_prob == 0.5 and view.solarize_prob == 0.0


@pytest.mark.parametrize(
    ("size", "sigma"), [((224, 224), (0.1, 2.0)), ((32, 32), (0.1, 2.0)), ((448, 224), (0.1, 2.0))]
)
def test_blur_sigma_is_relative_to_the_image(
    size: tuple[int, int], sigma: tuple[float, float]
) -> None:
    # The view is the image, so ViewConfig's scaling (x max(size) / 224) is the same.
    view = _view(image_size=list(size), gaussian_blur={"prob": 0.3, "sigmas": [0.1, 2.0]})
    assert view.blur_prob == 0.3 and view.blur_sigma == pytest.approx(sigma)


def test_peer_keys_map_to_the_view() -> None:
    view = _view(
        random_resize={"min_scale": 0.2, "max_scale": 0.9, "min_ratio": 0.5, "max_ratio": 2.0},
        random_flip={"horizontal_prob": 0.7, "vertical_prob": 0.0},
        random_rotation={"prob": 0.0, "degrees": 30},
        color_jitter={"prob": 0.5, "strength": 0.5, "brightness": 0.4, "hue": 0.1},
        random_gray_scale=0.1,
        gaussian_blur={"prob": 0.2, "sigmas": [0.5, 1.0], "blur_limit": [3, 7]},
        solarize={"prob": 0.3, "threshold": 0.5},
        normalize={"mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]},
        channel_drop=None,
        num_channels=3,
    )
    assert (view.crop_scale, view.crop_ratio) == ((0.2, 0.9), (0.5, 2.0))
    assert view.hflip_prob == 0.7 and view.grayscale_prob == 0.1
    assert view.color_jitter is not None
    jitter = view.color_jitter
    assert (jitter.prob, jitter.brightness, jitter.contrast, jitter.hue) == pytest.approx(
        (0.5, 0.2, 0.4, 0.05)
    )
    assert (view.blur_prob, view.blur_sigma, view.solarize_prob) == (0.2, (0.5, 1.0), 0.3)
    assert (view.mean, view.std) == ((0.5, 0.5, 0.5), (0.25, 0.25, 0.25))


def test_none_switches_an_augmentation_off() -> None:
    view = _view(
        image_size=[30, 60],
        random_resize=None,
        random_flip=None,
        color_jitter=None,
        random_gray_scale=None,
        gaussian_blur=None,
    )
    # The whole image: area 1 at the image's aspect ratio (width / height).
    assert view.crop_scale == (1.0, 1.0) and view.crop_ratio == (2.0, 2.0)
    assert view.hflip_prob == view.grayscale_prob == view.blur_prob == 0.0
    assert view.color_jitter is None
    assert _view(color_jitter={"strength": 0.0}).color_jitter is None
    assert _view(color_jitter={"prob": 0.0}).color_jitter is None


@pytest.mark.parametrize(
    ("cls", "values", "message"),
    [
        (SimCLRArgs, {"temperature": 0.0}, r"method_args\.temperature must be > 0"),
        (SimCLRArgs, {"num_layers": 1}, r"num_layers must be an int >= 2"),
        (SimCLRArgs, {"output_dim": 0}, r"output_dim must be an int >= 1"),
        (
            SimCLRArgs,
            {"out_dim": 8},
            r"Unknown key 'method_args\.out_dim'. Did you mean 'output_dim'",
        ),
        (SimCLRArgs, {"lr_scale_method": "log"}, r"must be one of 'linear', 'sqrt'"),
        (SimCLRArgs, {"reference_batch_size": 0}, r"reference_batch_size must be an int >= 1"),
        (
            SimCLRTransformArgs,
            {"random_resize": {"min_scale": 0.5, "max_scale": 0.2}},
            r"random_resize: min_scale and max_scale must satisfy",
        ),
        (
            SimCLRTransformArgs,
            {"gaussian_blur": {"prob": 1.5}},
            r"transform_args\.gaussian_blur\.prob must be a probability",
        ),
        (SimCLRTransformArgs, {"image_size": [0, 32]}, r"image_size must be \(height, width\)"),
        (SimCLRTransformArgs, {"image_size": 32}, r"image_size must be a list or tuple"),
        (
            SimCLRTransformArgs,
            {"color_jitter": {"strength": -1}},
            r"color_jitter\.strength must be >= 0",
        ),
        (
            SimCLRTransformArgs,
            {"color_jitter": {"strength": 3.0}},
            r"strength \* hue must be at most 0\.5",
        ),
        (SimCLRTransformArgs, {"hflip_prob": 0.5}, r"Unknown key 'transform_args\.hflip_prob'"),
    ],
)
def test_invalid_values(cls: type, values: dict[str, Any], message: str) -> None:
    with pytest.raises((ConfigError, ConfigTypeError), match=message):
        from_dict(cls, values, "method_args" if cls is SimCLRArgs else "transform_args")


def test_loss_decreases_on_a_fixed_batch(method_factory: Factory, views_factory: Factory) -> None:
    method = method_factory("simclr")
    views = views_factory(method)
    optimizer = torch.optim.SGD(method.param_groups(), lr=0.1, momentum=0.9)
    losses = []
    for step in range(8):
        loss = method(views, step=step, max_steps=8, steps_per_epoch=8)["loss"]
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]


def test_views_of_different_sizes(method_factory: Factory) -> None:
    method = method_factory("simclr")
    views = [torch.randn(4, 3, 32, 32), torch.randn(4, 3, 24, 24)]
    assert torch.isfinite(
        method.training_step(views, step=0, max_steps=1, steps_per_epoch=1)["loss"]
    )
