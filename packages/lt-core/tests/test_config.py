from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import pytest
import torch
from torch import Tensor, nn

from lt_core import (
    ColorJitter,
    ConfigError,
    ConfigTypeError,
    ViewConfig,
    describe_callable,
    from_dict,
    to_dict,
)


@dataclass(kw_only=True)
class Inner:
    view_size: tuple[int, int] | None = None
    num_views: int = 6


@dataclass(kw_only=True)
class Outer:
    lr: float = 0.1
    name: Literal["sgd", "adamw"] = "sgd"
    image_size: tuple[int, int] = (32, 32)
    local_view: Inner = field(default_factory=Inner)
    flag: bool = False


def test_from_dict_converts_and_nests() -> None:
    cfg = from_dict(
        Outer, {"lr": 1, "image_size": [64, 48], "local_view": {"view_size": [14, 14]}}, "args"
    )
    assert cfg.lr == 1.0 and isinstance(cfg.lr, float)
    assert cfg.image_size == (64, 48)
    assert cfg.local_view.view_size == (14, 14) and cfg.local_view.num_views == 6
    assert to_dict(cfg)["local_view"] == {"view_size": [14, 14], "num_views": 6}


def test_none_and_instance_pass_through() -> None:
    assert from_dict(Outer, None, "args") == Outer()
    inst = Outer(lr=0.5)
    assert from_dict(Outer, inst, "args") is inst


@pytest.mark.parametrize(
    ("values", "error", "message"),
    [
        (
            {"lrr": 1},
            ConfigError,
            r"Unknown key 'args.lrr'. Did you mean 'lr'\? Valid keys of args: lr, name",
        ),
        (
            {"local_view": {"view_sise": 3}},
            ConfigError,
            r"Unknown key 'args.local_view.view_sise'. Did you mean 'view_size'\?",
        ),
        ({"lr": "fast"}, ConfigTypeError, r"args.lr must be of type float, got str: 'fast'"),
        ({"flag": 1}, ConfigTypeError, r"args.flag must be of type bool"),
        (
            {"name": "adam"},
            ConfigError,
            r"args.name must be one of 'sgd', 'adamw', got 'adam'. Did you mean 'adamw'\?",
        ),
        ({"image_size": [32]}, ConfigTypeError, r"args.image_size must have 2 elements"),
        (
            {"local_view": {"num_views": 2.5}},
            ConfigTypeError,
            r"args.local_view.num_views must be of type int",
        ),
        ({"local_view": 3}, ConfigTypeError, r"args.local_view must be a dict"),
    ],
)
def test_from_dict_errors(values: dict[str, object], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        from_dict(Outer, values, "args")


def test_view_config_validates() -> None:
    v = ViewConfig(size=(32, 32), num_views=2, color_jitter=ColorJitter(prob=0.5))
    assert v.color_jitter is not None and v.color_jitter.prob == 0.5
    with pytest.raises(ConfigError, match="num_views must be >= 1"):
        ViewConfig(size=(32, 32), num_views=0)
    with pytest.raises(ConfigError, match="crop_scale"):
        ViewConfig(size=(32, 32), crop_scale=(0.5, 0.2))
    with pytest.raises(ConfigError, match="blur_prob must be in"):
        ViewConfig(size=(32, 32), blur_prob=2.0)
    assert ViewConfig(size=(32, 32), augment=torch.flipud).augment is torch.flipud
    with pytest.raises(ConfigTypeError, match=r"ViewConfig.augment must be a callable.*Fix: pass"):
        ViewConfig(size=(32, 32), augment="RandomRotation(30)")  # type: ignore[arg-type]


@dataclass(kw_only=True)
class WithCallable:
    augment: Callable[[Tensor], Tensor] | None = None
    size: int = 1


def double(x: Tensor) -> Tensor:
    return 2 * x


def test_callable_options_from_python_and_in_records() -> None:
    module = nn.Sequential(nn.Identity(), nn.Hardtanh(0.0, 1.0))
    assert from_dict(WithCallable, {"augment": module}, "t").augment is module
    # What config.json and the resume fingerprint hold: readable strings that two runs
    # with the same pipeline share (no memory addresses).
    record = to_dict({"a": WithCallable(augment=module), "f": double, "t": (1, 2)})
    assert record == {
        "a": {"augment": repr(module), "size": 1},
        "f": f"{__name__}.double",
        "t": [1, 2],
    }
    assert "Hardtanh(min_val=0.0, max_val=1.0)" in json.dumps(record)
    partial = functools.partial(double)
    assert "0x" not in describe_callable(partial) and "double" in describe_callable(partial)
    assert describe_callable(nn.Sequential(nn.Identity())) == describe_callable(
        nn.Sequential(nn.Identity())
    )


@pytest.mark.parametrize("value", ["kornia.augmentation.RandomRotation(30)", 3])
def test_callable_option_from_the_command_line_names_the_fix(value: object) -> None:
    with pytest.raises(
        ConfigTypeError,
        match=r"t.augment must be a callable .* Fix: pass the object itself from Python",
    ):
        from_dict(WithCallable, {"augment": value}, "t")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"prob": 1.5}, r"ColorJitter.prob must be in \[0, 1\]"),
        ({"contrast": -0.1}, "ColorJitter.contrast must be >= 0"),
        ({"hue": 0.6}, r"ColorJitter.hue must be in \[0, 0.5\]"),
        ({"hue": -0.1}, r"ColorJitter.hue must be in \[0, 0.5\]"),
    ],
)
def test_color_jitter_validates(kwargs: dict[str, float], message: str) -> None:
    assert ColorJitter(hue=0.5, brightness=0.0).hue == 0.5
    with pytest.raises(ConfigError, match=message):
        ColorJitter(**kwargs)
