"""BYOL specifics: asymmetric views, loss values, target network, momentum schedule, args."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
import torch
from test_docs_keys import DOCS, _rows

from lt_core import ConfigError, ConfigTypeError, from_dict
from lt_methods import BYOL, BYOLArgs, BYOLTransformArgs

Factory = Callable[..., Any]


def _recipe(**values: Any) -> list[Any]:
    return BYOL.view_recipe(from_dict(BYOLTransformArgs, values, "transform_args"))


def test_recipe_is_the_papers_asymmetric_pair() -> None:
    first, second = _recipe()
    assert first.num_views == second.num_views == 1
    assert first.size == second.size == (224, 224)
    assert (first.blur_prob, first.solarize_prob) == (1.0, 0.0)
    assert (second.blur_prob, second.solarize_prob) == (0.1, 0.2)
    for view in (first, second):
        assert view.crop_scale == (0.08, 1.0) and view.grayscale_prob == 0.2
        jitter = view.color_jitter
        assert jitter is not None and jitter.prob == 0.8
        values = (jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue)
        assert values == pytest.approx((0.4, 0.4, 0.2, 0.1))


def test_second_view_options() -> None:
    first, second = _recipe(second_view={"solarize": None, "gaussian_blur": {"prob": 0.3}})
    assert (second.blur_prob, second.solarize_prob) == (0.3, 0.0)
    assert first.blur_prob == 1.0
    with pytest.raises(ConfigError, match=r"transform_args\.second_view cannot be None"):
        _recipe(second_view=None)
    with pytest.raises(ConfigError, match=r"second_view\.solarize\.prob"):
        _recipe(second_view={"solarize": {"prob": 2.0}})


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"hidden_dim": 0}, r"method_args\.hidden_dim must be an int >= 1"),
        ({"prediction_hidden_dim": 1.5}, r"method_args\.prediction_hidden_dim must be of type int"),
        ({"momentum_start": 1.5}, r"method_args\.momentum_start must be in \[0.0, 1.0\]"),
        ({"momentum_start": "fast"}, r"method_args\.momentum_start"),
        ({"momentum_end": -0.1}, r"method_args\.momentum_end must be in"),
        ({"target_momentum": 0.99}, r"Unknown key 'method_args\.target_momentum'"),
    ],
)
def test_invalid_args(values: dict[str, Any], message: str) -> None:
    with pytest.raises((ConfigError, ConfigTypeError), match=message):
        from_dict(BYOLArgs, values, "method_args")


@pytest.mark.parametrize(
    ("total_steps", "expected"), [(None, 0.996), (100, 0.99), (2000, 0.995), (10**5, 0.996)]
)
def test_auto_momentum_follows_the_run_length(total_steps: int | None, expected: float) -> None:
    args = BYOL.resolve_args(BYOLArgs(), num_images=1000, total_steps=total_steps)
    assert args.momentum_start == pytest.approx(expected)
    assert BYOL.resolve_args(args, total_steps=10) == args  # resolving twice changes nothing
    explicit = BYOL.resolve_args(BYOLArgs(momentum_start=0.9), total_steps=100)
    assert explicit.momentum_start == 0.9


def test_loss_known_values(method_factory: Factory) -> None:
    method: BYOL = method_factory("byol")
    x = torch.randn(6, 16)
    assert float(method.loss([x, 2 * x], [x, x])) == pytest.approx(-1.0)
    assert float(method.loss([x, x], [-x, -x])) == pytest.approx(1.0)
    e = torch.eye(16)
    assert float(method.loss([e[:4], e[4:8]], [e[8:12], e[12:]])) == pytest.approx(0.0)
    # Each prediction is compared with the other view's target.
    assert float(method.loss([e[:4], e[4:8]], [e[4:8], e[:4]])) == pytest.approx(-1.0)


def test_target_is_a_frozen_copy_outside_the_param_groups(method_factory: Factory) -> None:
    method: BYOL = method_factory("byol")
    target = [*method.target_model.parameters(), *method.target_projection_head.parameters()]
    assert target and all(not p.requires_grad for p in target)
    grouped = {id(p) for g in method.param_groups() for p in g["params"]}
    assert not grouped & {id(p) for p in target}
    assert {id(p) for p in method.prediction_head.parameters()} <= grouped
    for p, q in zip(method.model.parameters(), method.target_model.parameters()):
        assert torch.equal(p, q)
    assert method.embedding_model() is method.model  # the online network is exported


def test_target_update_uses_the_scheduled_momentum(
    method_factory: Factory, views_factory: Factory
) -> None:
    method: BYOL = method_factory("byol", momentum_start=0.9)
    out = method(views_factory(method), step=0, max_steps=11, steps_per_epoch=11)
    assert float(out["ema_momentum"]) == pytest.approx(0.9)
    assert method.ema_momentum(5, 11) == pytest.approx(0.95)
    assert method.ema_momentum(10, 11) == 1.0
    out["loss"].backward()
    with torch.no_grad():
        for p in method.model.parameters():
            p.add_(1.0)  # stands in for an optimizer step
    old = [p.clone() for p in method.target_model.parameters()]
    method.on_after_optimizer_step(step=0, max_steps=11)
    for t, o, s in zip(method.target_model.parameters(), old, method.model.parameters()):
        assert torch.allclose(t, 0.9 * o + 0.1 * s)


def test_loss_starts_near_its_random_value_and_target_gets_no_gradient(
    method_factory: Factory, views_factory: Factory
) -> None:
    method: BYOL = method_factory("byol")
    out = method(views_factory(method), step=0, max_steps=10, steps_per_epoch=5)
    assert -1.0 <= float(out["loss"].detach()) <= 1.0
    out["loss"].backward()
    assert all(p.grad is None for p in method.target_model.parameters())
    assert all(p.grad is not None for p in method.prediction_head.parameters())


@pytest.mark.skipif(not DOCS.is_dir(), reason="needs the repository's docs/")
def test_methods_page_has_a_row_per_method_arg() -> None:
    rows = _rows((DOCS / "methods.md").read_text(), "### BYOL method_args")
    assert rows == {f.name for f in dataclasses.fields(BYOL.Args)}
