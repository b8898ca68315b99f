"""SimCLR specifics: the view recipe, option checks and learning on a fixed batch."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from lt_core import ConfigError, from_dict
from lt_methods import SimCLR, SimCLRArgs, SimCLRTransformArgs

Factory = Callable[..., Any]


def test_defaults() -> None:
    assert SimCLR.default_optimizer == "sgd"
    args = SimCLRArgs()
    assert (args.out_dim, args.temperature, args.num_layers) == (128, 0.1, 2)


def test_recipe_is_two_views_at_image_size() -> None:
    (view,) = SimCLR.view_recipe(SimCLRTransformArgs(image_size=(40, 48)))
    assert view.num_views == 2 and view.size == (40, 48)
    assert view.crop_scale == (0.08, 1.0) and view.grayscale_prob == 0.2
    assert view.color_jitter is not None
    jitter = view.color_jitter
    assert (jitter.prob, jitter.brightness, jitter.hue) == (0.8, 0.8, 0.2)
    assert view.solarize_prob == 0.0


@pytest.mark.parametrize(
    ("size", "blur", "expected"),
    [
        ((32, 32), None, 0.0),
        ((63, 224), None, 0.0),
        ((64, 64), None, 0.5),
        ((224, 224), None, 0.5),
        ((32, 32), 0.3, 0.3),
    ],
)
def test_blur_default_depends_on_image_size(
    size: tuple[int, int], blur: float | None, expected: float
) -> None:
    (view,) = SimCLR.view_recipe(SimCLRTransformArgs(image_size=size, blur_prob=blur))
    assert view.blur_prob == expected


def test_color_jitter_strength() -> None:
    (view,) = SimCLR.view_recipe(SimCLRTransformArgs(color_jitter_strength=0.5))
    assert view.color_jitter is not None and view.color_jitter.brightness == pytest.approx(0.4)
    (view,) = SimCLR.view_recipe(SimCLRTransformArgs(color_jitter_strength=0.0))
    assert view.color_jitter is None
    (view,) = SimCLR.view_recipe(SimCLRTransformArgs(color_jitter_prob=0.0))
    assert view.color_jitter is None


@pytest.mark.parametrize(
    ("cls", "values", "message"),
    [
        (SimCLRArgs, {"temperature": 0.0}, r"method_args\.temperature must be > 0"),
        (SimCLRArgs, {"num_layers": 1}, r"num_layers must be an int >= 2"),
        (SimCLRArgs, {"out_dim": 0}, r"out_dim must be an int >= 1"),
        (SimCLRTransformArgs, {"crop_scale": [0.5, 0.2]}, r"crop_scale must be \(min, max\)"),
        (SimCLRTransformArgs, {"blur_prob": 1.5}, r"blur_prob must be a probability"),
        (SimCLRTransformArgs, {"image_size": [0, 32]}, r"image_size must be \(height, width\)"),
        (SimCLRTransformArgs, {"color_jitter_strength": -1}, r"color_jitter_strength must be >= 0"),
    ],
)
def test_invalid_values(cls: type, values: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
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
