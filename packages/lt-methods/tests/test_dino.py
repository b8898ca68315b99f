"""DINO specifics: views, teacher, EMA, last-layer freeze, teacher-temperature warm-up."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from lt_core import ConfigError, from_dict
from lt_methods import DINO, DINOArgs, DINOTransformArgs

Factory = Callable[..., Any]


def _recipe(**values: Any) -> list[Any]:
    return DINO.view_recipe(from_dict(DINOTransformArgs, values, "transform_args"))


def test_recipe_defaults_at_224() -> None:
    g0, g1, local = _recipe()
    assert g0.size == g1.size == (224, 224) and local.size == (96, 96)
    assert g0.num_views == g1.num_views == 1 and local.num_views == 6
    assert (g0.blur_prob, g0.solarize_prob) == (1.0, 0.0)
    assert (g1.blur_prob, g1.solarize_prob) == (0.1, 0.2)
    assert (local.blur_prob, local.solarize_prob) == (0.5, 0.0)
    assert g0.crop_scale == g1.crop_scale == (0.14, 1.0) and local.crop_scale == (0.05, 0.14)
    for view in (g0, g1, local):
        assert view.color_jitter is not None
        jitter = view.color_jitter
        assert (jitter.prob, jitter.brightness, jitter.contrast) == pytest.approx((0.8, 0.4, 0.4))
        assert (jitter.saturation, jitter.hue) == pytest.approx((0.2, 0.1))
        assert view.grayscale_prob == 0.2 and view.hflip_prob == 0.5
    # Sigmas are pixels of the 224-pixel image in every view (ViewConfig scales by view size).
    assert g0.blur_sigma == (0.1, 2.0)
    assert local.blur_sigma == pytest.approx((0.1 * 224 / 96, 2.0 * 224 / 96))


@pytest.mark.parametrize(
    ("size", "local"),
    [((32, 32), (14, 14)), ((64, 32), (27, 14)), ((16, 16), (8, 8)), ((8, 8), (8, 8))],
)
def test_local_views_scale_with_image_size(size: tuple[int, int], local: tuple[int, int]) -> None:
    g0, g1, loc = _recipe(image_size=list(size))
    assert g0.size == g1.size == size
    assert loc.size == local


def test_peer_view_options() -> None:
    g0, g1, loc = _recipe(
        image_size=[64, 64],
        solarize={"prob": 0.1, "threshold": 0.5},
        global_view_1={"gaussian_blur": {"prob": 0.3}, "solarize": None},
        local_view={
            "num_views": 2,
            "view_size": [20, 20],
            "random_resize": {"min_scale": 0.05, "max_scale": 0.3},
            "gaussian_blur": {"prob": 0.5, "sigmas": [0.1, 2.0], "blur_limit": 0},
        },
    )
    assert (g0.solarize_prob, g1.solarize_prob, loc.solarize_prob) == (0.1, 0.0, 0.1)
    assert (g0.blur_prob, g1.blur_prob, loc.blur_prob) == (1.0, 0.3, 0.5)
    assert loc.size == (20, 20) and loc.num_views == 2 and loc.crop_scale == (0.05, 0.3)
    # A partial block keeps DINO's other defaults (as in LightlyTrain).
    (g0, *_) = _recipe(color_jitter={"prob": 0.5}, random_resize={"max_scale": 0.9})
    assert g0.color_jitter is not None and g0.color_jitter.brightness == pytest.approx(0.4)
    assert g0.crop_scale == (0.14, 0.9)


def test_no_local_views() -> None:
    assert len(_recipe(local_view=None)) == 2
    assert len(_recipe(local_view={"num_views": 0})) == 2


def test_nested_unknown_key_names_the_path() -> None:
    with pytest.raises(ConfigError, match=r"transform_args\.local_view\.num_view'.*'num_views'"):
        from_dict(DINOTransformArgs, {"local_view": {"num_view": 2}}, "transform_args")
    with pytest.raises(ConfigError, match=r"Unknown key 'transform_args\.global_view'"):
        from_dict(DINOTransformArgs, {"global_view": {}}, "transform_args")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"teacher_temp": 0}, r"method_args\.teacher_temp must be > 0"),
        ({"teacher_temp": "automatic"}, r"method_args\.teacher_temp must be of type"),
        ({"momentum_start": 1.5}, r"momentum_start must be in \[0.0, 1.0\]"),
        ({"warmup_teacher_temp_epochs": -1}, r"warmup_teacher_temp_epochs must be an int >= 0"),
        ({"output_dim": 0}, r"output_dim must be an int >= 1"),
        ({"out_dim": 64}, r"Unknown key 'method_args\.out_dim'. Did you mean 'output_dim'"),
        ({"teacher_momentum": 0.996}, r"Unknown key 'method_args\.teacher_momentum'"),
        (
            {"warmup_teacher_temp_epochs": 10, "warmup_teacher_temp_steps": 100},
            r"warmup_teacher_temp_steps and method_args\.warmup_teacher_temp_epochs cannot both",
        ),
        (
            {"student_freeze_last_layer_epochs": 1, "student_freeze_last_layer_steps": 100},
            r"cannot both be set",
        ),
        ({"weight_decay_start": 0.04}, r"weight_decay_start=0\.04 is not supported yet"),
        ({"weight_decay_end": 0.4}, r"weight_decay_end=0\.4 is not supported yet"),
        ({"warmup_steps": 12500}, r"warmup_steps=12500 is not supported yet.*warmup_epochs"),
        ({"warmup_max_steps_fraction": 0.2}, r"warmup_max_steps_fraction=0\.2 is not supported"),
        ({"reference_batch_size": 0}, r"reference_batch_size must be an int >= 1"),
    ],
)
def test_invalid_method_args(values: dict[str, Any], message: str) -> None:
    with pytest.raises((ConfigError, TypeError), match=message):
        from_dict(DINOArgs, values, "method_args")


def test_auto_and_none_are_the_same() -> None:
    keys = ["output_dim", "teacher_temp", "warmup_teacher_temp", "momentum_start"]
    keys += ["student_freeze_last_layer_steps", "warmup_teacher_temp_steps"]
    keys += ["weight_decay_start", "weight_decay_end", "warmup_steps"]
    from_none = from_dict(DINOArgs, dict.fromkeys(keys), "method_args")
    from_auto = from_dict(DINOArgs, dict.fromkeys(keys, "auto"), "method_args")
    assert from_none == from_auto == DINOArgs()


def test_invalid_transform_args() -> None:
    with pytest.raises(ConfigError, match=r"global_view_1\.gaussian_blur\.prob must be"):
        from_dict(
            DINOTransformArgs, {"global_view_1": {"gaussian_blur": {"prob": 2}}}, "transform_args"
        )
    with pytest.raises(ConfigError, match=r"global_view_1\.solarize\.threshold=0\.3 is not"):
        from_dict(
            DINOTransformArgs, {"global_view_1": {"solarize": {"threshold": 0.3}}}, "transform_args"
        )
    with pytest.raises(ConfigError, match=r"local_view\.random_resize: min_scale"):
        from_dict(
            DINOTransformArgs,
            {"local_view": {"random_resize": {"min_scale": 0}}},
            "transform_args",
        )
    with pytest.raises(ConfigError, match=r"global_view_1 cannot be None"):
        from_dict(DINOTransformArgs, {"global_view_1": None}, "transform_args")
    with pytest.raises(ConfigError, match=r"local_view\.view_size must be"):
        from_dict(DINOTransformArgs, {"local_view": {"view_size": [0, 4]}}, "transform_args")


def test_teacher_is_a_frozen_copy_outside_the_param_groups(method_factory: Factory) -> None:
    method = method_factory("dino")
    teacher = list(method.teacher_model.parameters()) + list(method.teacher_head.parameters())
    assert teacher and not any(p.requires_grad for p in teacher)
    grouped = {id(p) for g in method.param_groups() for p in g["params"]}
    assert not grouped & {id(p) for p in teacher}
    student = method.model.state_dict() | {
        f"head.{k}": v for k, v in method.projection_head.state_dict().items()
    }
    teacher_sd = method.teacher_model.state_dict() | {
        f"head.{k}": v for k, v in method.teacher_head.state_dict().items()
    }
    assert all(torch.equal(student[k], teacher_sd[k]) for k in student)
    assert method.teacher_model.wrapper is not method.model.wrapper


def test_ema_moves_the_teacher_toward_the_student(
    method_factory: Factory, views_factory: Factory
) -> None:
    method = method_factory("dino")
    out = method(views_factory(method), step=0, max_steps=10, steps_per_epoch=5)
    out["loss"].backward()
    torch.optim.SGD(method.param_groups(), lr=0.5).step()
    student = dict(method.model.named_parameters())
    before = {k: p.detach().clone() for k, p in method.teacher_model.named_parameters()}
    method.on_after_optimizer_step(step=0, max_steps=10)
    m = method.ema_momentum(0, 10)
    assert m == pytest.approx(0.996) and float(out["ema_momentum"]) == pytest.approx(m)
    moved = 0
    for k, p in method.teacher_model.named_parameters():
        expected = m * before[k] + (1 - m) * student[k].detach()
        assert torch.allclose(p, expected, atol=1e-7)
        distance_before = (before[k] - student[k]).abs().sum()
        assert (p - student[k]).abs().sum() <= distance_before + 1e-7
        moved += int(not torch.equal(p, before[k]))
    assert moved > 0
    assert method.ema_momentum(9, 10) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("overrides", "frozen_steps"),
    [
        ({}, 5),  # auto: 1 epoch
        ({"student_freeze_last_layer_epochs": 2}, 10),
        ({"student_freeze_last_layer_steps": 3}, 3),
        ({"student_freeze_last_layer_steps": 0}, 0),
    ],
)
def test_last_layer_is_frozen_at_the_start(
    method_factory: Factory, views_factory: Factory, overrides: dict[str, Any], frozen_steps: int
) -> None:
    method = method_factory("dino", norm_last_layer=False, **overrides)
    views = views_factory(method)
    last = list(method.projection_head.last_layer.parameters())
    for step in sorted({0, max(0, frozen_steps - 1), frozen_steps}):
        method.zero_grad(set_to_none=True)
        method(views, step=step, max_steps=20, steps_per_epoch=5)["loss"].backward()
        assert all(p.grad is not None for p in last)
        method.on_before_optimizer_step(step=step, steps_per_epoch=5)
        assert all((p.grad is None) == (step < frozen_steps) for p in last), step
        assert method.projection_head.layers[0].weight.grad is not None


def test_norm_last_layer_freezes_the_weight_norm_gain(method_factory: Factory) -> None:
    method = method_factory("dino")
    assert not method.projection_head.last_layer.weight_g.requires_grad
    assert method.projection_head.last_layer.weight_v.requires_grad


def test_teacher_temperature_warm_up(method_factory: Factory, views_factory: Factory) -> None:
    method = method_factory("dino")  # 0.04 -> 0.07 over 30 epochs, at most 30% of the run
    # A long run: 30 epochs of 10 steps.
    assert method.teacher_temperature(0, 1000, 10) == pytest.approx(0.04)
    assert method.teacher_temperature(150, 1000, 10) == pytest.approx(0.04 + 0.03 * 150 / 300)
    assert method.teacher_temperature(300, 1000, 10) == pytest.approx(0.07)
    assert method.teacher_temperature(999, 1000, 10) == pytest.approx(0.07)
    # A 5-epoch run: the warm-up is 30% of the run (15 steps) and ends at 0.07.
    assert method.teacher_temperature(0, 50, 10) == pytest.approx(0.04)
    assert method.teacher_temperature(14, 50, 10) == pytest.approx(0.04 + 0.03 * 14 / 15)
    assert method.teacher_temperature(15, 50, 10) == pytest.approx(0.07)
    views = views_factory(method)
    out0 = method(views, step=0, max_steps=50, steps_per_epoch=10)
    out1 = method(views, step=49, max_steps=50, steps_per_epoch=10)
    assert float(out0["teacher_temp"]) == pytest.approx(0.04)
    assert float(out1["teacher_temp"]) == pytest.approx(0.07)


@pytest.mark.parametrize(
    ("overrides", "max_steps", "steps_per_epoch", "warmup"),
    [
        ({}, 10_000, 10, 300),  # auto: 30 epochs
        ({}, 100, 10, 30),  # ... at most 30% of the run
        ({"warmup_teacher_temp_max_steps_fraction": 0.5}, 100, 10, 50),
        ({"warmup_teacher_temp_epochs": 2}, 10_000, 10, 20),
        ({"warmup_teacher_temp_epochs": 20}, 100, 10, 30),  # capped too
        ({"warmup_teacher_temp_steps": 80}, 100, 10, 80),  # explicit steps: not capped
        ({"warmup_teacher_temp_steps": 0}, 100, 10, 0),
    ],
)
def test_teacher_temperature_warm_up_length(
    overrides: dict[str, Any], max_steps: int, steps_per_epoch: int, warmup: int
) -> None:
    args = DINOArgs(**overrides)
    assert args.teacher_temp_warmup_steps(max_steps, steps_per_epoch) == warmup


def test_no_warm_up() -> None:
    method = DINO.__new__(DINO)  # only the schedule is needed
    object.__setattr__(method, "args", DINOArgs(warmup_teacher_temp_steps=0).resolve())
    assert method.teacher_temperature(0, 100, 10) == pytest.approx(0.07)


def test_center_is_updated(method_factory: Factory, views_factory: Factory) -> None:
    method = method_factory("dino")
    assert torch.all(method.criterion.center == 0)
    method(views_factory(method), step=0, max_steps=1, steps_per_epoch=1)
    assert torch.any(method.criterion.center != 0)


def test_student_sees_all_views_teacher_the_globals(method_factory: Factory) -> None:
    method = method_factory("dino")
    calls: list[tuple[str, tuple[int, ...]]] = []
    method.model.register_forward_pre_hook(lambda m, a: calls.append(("s", tuple(a[0].shape))))
    method.teacher_model.register_forward_pre_hook(
        lambda m, a: calls.append(("t", tuple(a[0].shape)))
    )
    views = [torch.randn(4, 3, 32, 32)] * 2 + [torch.randn(4, 3, 14, 14)] * 6
    method(views, step=0, max_steps=1, steps_per_epoch=1)
    assert calls == [("t", (8, 3, 32, 32)), ("s", (8, 3, 32, 32)), ("s", (24, 3, 14, 14))]


@pytest.mark.parametrize(
    ("num_images", "total_steps", "output_dim", "teacher_temp", "momentum_start"),
    [
        (300, 4, 1024, 0.04, 0.99),  # tiny: smallest head, fastest-moving teacher allowed
        (5_000, 780, 1024, 0.04, 0.99),  # the CIFAR benchmark: 10 epochs at batch 64
        (5_000, 2_000, 1024, 0.04, 0.995),  # 1 - 10 / 2000
        (50_000, 7_810, 2048, 0.04, 0.996),
        (199_999, 10_000, 8192, 0.04, 0.996),
        (200_000, 10_000, 8192, 0.07, 0.996),
        (1_281_167, 125_000, 65536, 0.07, 0.996),  # ImageNet: the paper's values
        (10**9, 10**7, 65536, 0.07, 0.996),
        (None, None, 65536, 0.07, 0.996),  # unknown size: the paper's values
    ],
)
def test_auto_options_follow_dataset_size_and_run_length(
    num_images: int | None,
    total_steps: int | None,
    output_dim: int,
    teacher_temp: float,
    momentum_start: float,
) -> None:
    args = DINO.resolve_args(DINOArgs(), num_images=num_images, total_steps=total_steps)
    assert args.output_dim == output_dim
    assert args.teacher_temp == teacher_temp
    assert args.warmup_teacher_temp == 0.04
    assert args.momentum_start == pytest.approx(momentum_start)
    # Resolving again changes nothing.
    assert DINO.resolve_args(args, num_images=10, total_steps=1) == args


def test_explicit_options_are_not_resolved() -> None:
    given = DINOArgs(
        output_dim=300, teacher_temp=0.03, warmup_teacher_temp=0.01, momentum_start=0.9
    )
    assert DINO.resolve_args(given, num_images=10**6, total_steps=10**6) == given
    # A teacher temperature below 0.04 also lowers the automatic warm-up start.
    assert DINO.resolve_args(DINOArgs(teacher_temp=0.02)).warmup_teacher_temp == 0.02


def test_a_method_built_directly_has_no_auto_options_left(method_factory: Factory) -> None:
    a = method_factory("dino").args
    assert (a.output_dim, a.teacher_temp, a.warmup_teacher_temp, a.momentum_start) == (
        64,
        0.07,
        0.04,
        0.996,
    )
