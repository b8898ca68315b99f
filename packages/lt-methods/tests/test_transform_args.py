"""The shared ``transform_args`` keys (LightlyTrain 0.18's names) for every method: the
peer's documented examples are accepted, and what the views cannot do yet fails clearly."""

from __future__ import annotations

from typing import Any

import pytest

from lt_core import ConfigError, from_dict
from lt_methods import get_method, list_methods

METHODS = list_methods()

#: The ``transform_args`` examples of LightlyTrain 0.18's documentation (paraphrased).
PEER_EXAMPLES: list[dict[str, Any]] = [
    {"image_size": (128, 128)},
    {"normalize": {"mean": [0.5, 0.4, 0.3], "std": [0.2, 0.2, 0.2]}},
    {"random_resize": {"min_scale": 0.2, "max_scale": 1.0, "min_ratio": 0.75, "max_ratio": 1.33}},
    {"random_flip": {"horizontal_prob": 0.7, "vertical_prob": 0.0}},
    {"random_rotation": {"prob": 0.0, "degrees": 30}},
    {"random_flip": {"horizontal_prob": 0.5, "vertical_prob": 0.5}},
    {"random_rotation": {"prob": 0.5, "degrees": 30}},
    {"random_rotation": {"prob": 1.0, "degrees": [-10, 45], "interpolation": 1}},
    {
        "color_jitter": {
            "prob": 0.8,
            "strength": 2.0,
            "brightness": 0.4,
            "contrast": 0.4,
            "saturation": 0.4,
            "hue": 0.1,
        }
    },
    {"random_gray_scale": 0.2},
    {"gaussian_blur": {"prob": 0.5, "sigmas": (0.1, 2.0), "blur_limit": (3, 7)}},
    {"solarize": {"prob": 0.2, "threshold": 0.5}},
    {"channel_drop": None, "num_channels": "auto"},
]


def _build(name: str, values: dict[str, Any]) -> Any:
    cls = get_method(name)
    args = from_dict(cls.TransformArgs, values, "transform_args")
    return cls.view_recipe(args)


@pytest.mark.parametrize("name", METHODS)
@pytest.mark.parametrize("values", PEER_EXAMPLES)
def test_peer_examples_are_accepted(name: str, values: dict[str, Any]) -> None:
    assert _build(name, values)


@pytest.mark.parametrize("name", METHODS)
@pytest.mark.parametrize(
    "key",
    [
        "random_resize",
        "random_flip",
        "random_rotation",
        "color_jitter",
        "random_gray_scale",
        "gaussian_blur",
        "solarize",
    ],
)
def test_none_disables_a_block(name: str, key: str) -> None:
    recipe = _build(name, {key: None})
    first = recipe[0]
    disabled = {
        "random_resize": first.crop_scale == (1.0, 1.0),
        "random_flip": first.hflip_prob == first.vflip_prob == 0.0,
        "random_rotation": first.rotation_prob == 0.0 and not first.rotates,
        "color_jitter": first.color_jitter is None,
        "random_gray_scale": first.grayscale_prob == 0.0,
        "gaussian_blur": first.blur_prob == 0.0,
        "solarize": first.solarize_prob == 0.0,
    }
    assert disabled[key]


@pytest.mark.parametrize("name", METHODS)
@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"random_flip": {"vertical_prob": 1.2}},
            r"transform_args\.random_flip\.vertical_prob must be a probability",
        ),
        (
            {"random_rotation": {"prob": 1.5, "degrees": 15}},
            r"transform_args\.random_rotation\.prob must be a probability",
        ),
        (
            {"random_rotation": {"prob": 0.5, "degrees": -15}},
            r"transform_args\.random_rotation\.degrees must be an angle d in \[0, 360\].*-15",
        ),
        (
            {"random_rotation": {"prob": 0.5, "degrees": [30, -30]}},
            r"random_rotation\.degrees must be .*got \(30\.0, -30\.0\)",
        ),
        (
            {"random_rotation": {"prob": 0.5, "degrees": 400}},
            r"random_rotation\.degrees must be an angle d in \[0, 360\]",
        ),
        (
            {"solarize": {"prob": 0.2, "threshold": 0.7}},
            r"transform_args\.solarize\.threshold=0\.7 is not supported yet",
        ),
        (
            {"channel_drop": {"num_channels_keep": 3, "weight_drop": [1.0, 1.0, 0.0, 0.0]}},
            r"transform_args\.channel_drop=.* is not supported yet",
        ),
        ({"num_channels": 4}, r"transform_args\.num_channels=4 is not supported yet"),
        ({"random_rotation": {"prob": 0.5}}, r"Missing required key.*random_rotation\.degrees"),
        ({"gaussian_blur": {"blur_limit": -1}}, r"gaussian_blur\.blur_limit must be an int >= 0"),
        ({"gaussian_blur": {"sigmas": [2.0, 1.0]}}, r"gaussian_blur\.sigmas must be \(low, high\)"),
        ({"random_gray_scale": 1.2}, r"random_gray_scale must be a probability"),
        ({"normalize": {"std": [0.2, 0.0, 0.2]}}, r"normalize\.std must be > 0"),
        ({"normalize": None}, r"transform_args\.normalize cannot be None"),
        ({"random_resize": {"min_ratio": 0}}, r"random_resize: min_ratio and max_ratio"),
        ({"color_jitter": {"strenght": 1.0}}, r"color_jitter\.strenght'. Did you mean 'strength'"),
        ({"global_crop_size": 178}, r"Unknown key 'transform_args\.global_crop_size'"),
    ],
)
def test_invalid_or_unsupported(name: str, values: dict[str, Any], message: str) -> None:
    with pytest.raises((ConfigError, TypeError), match=message):
        _build(name, values)


@pytest.mark.parametrize("name", METHODS)
def test_flip_and_rotation_reach_every_view(name: str) -> None:
    recipe = _build(
        name,
        {
            "random_flip": {"horizontal_prob": 0.6, "vertical_prob": 0.3},
            "random_rotation": {"prob": 0.4, "degrees": 25},
        },
    )
    for view in recipe:  # DINO: the global and the local views alike (LightlyTrain's too)
        assert (view.hflip_prob, view.vflip_prob) == (0.6, 0.3)
        assert view.rotation_prob == 0.4 and view.rotation_degrees == (-25.0, 25.0)
        assert view.rotates
    (view, *_) = _build(name, {"random_rotation": {"prob": 1.0, "degrees": (-5, 40)}})
    assert view.rotation_degrees == (-5.0, 40.0)
    (view, *_) = _build(name, {})  # the defaults: neither
    assert view.vflip_prob == view.rotation_prob == 0.0 and not view.rotates
