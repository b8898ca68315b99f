"""Barlow Twins specifics: the loss on known projections, the minimum batch, lambda."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from lt_core import ConfigError, from_dict
from lt_methods import BarlowTwins, BarlowTwinsArgs

Factory = Callable[..., Any]

#: Four 2-d projections whose batch-normalized dimensions are uncorrelated: C = I.
SPREAD = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])


@pytest.fixture
def criterion(model_factory: Factory) -> Callable[..., Any]:
    def make(**args: Any) -> Any:
        return BarlowTwins(model_factory(), {"hidden_dim": 8, "output_dim": 8, **args}).criterion

    return make


def test_loss_is_zero_when_the_cross_correlation_is_the_identity(criterion: Factory) -> None:
    assert float(criterion()(SPREAD, 3 * SPREAD + 1)) == pytest.approx(0.0, abs=1e-4)


def test_anticorrelated_views_pay_the_invariance_term(criterion: Factory) -> None:
    # C = -I: each of the D=2 diagonal entries pays (-1 - 1)^2.
    assert float(criterion()(SPREAD, -SPREAD)) == pytest.approx(8.0, rel=1e-4)


def test_redundant_dimensions_pay_lambda_per_off_diagonal_entry(criterion: Factory) -> None:
    z = SPREAD[:, :1].repeat(1, 2)  # both dimensions equal: C is all ones
    loss = criterion(redundancy_weight=0.5)(z, z.clone())
    assert float(loss) == pytest.approx(0.5 * 2, rel=1e-4)


def test_a_batch_of_two_gives_no_gradient_and_is_rejected(
    method_factory: Factory, criterion: Factory
) -> None:
    # With 2 images each normalized dimension is (+1, -1) or (-1, +1): the loss only
    # depends on signs. Spread-out inputs make batch norm's eps negligible.
    loss_fn = criterion()
    for batch, moves in ((2, False), (3, True)):
        z0 = (100 * torch.randn(batch, 8)).requires_grad_()
        z1 = 100 * torch.randn(batch, 8)
        loss_fn(z0, z1).backward()
        assert z0.grad is not None
        assert bool(z0.grad.abs().max() > 1e-5) is moves, batch
    assert BarlowTwins.min_batch_size == 3 and not BarlowTwins.gathers_batch
    method = method_factory("barlowtwins")
    views = [torch.randn(2, 3, 32, 32), torch.randn(2, 3, 32, 32)]
    with pytest.raises(ConfigError, match="at least 3 images per process"):
        method.training_step(views, step=0, max_steps=1, steps_per_epoch=1)


@pytest.mark.parametrize(
    ("output_dim", "expected"), [(8192, 5e-3), (2048, 5e-3), (512, 0.02), (128, 0.08)]
)
def test_auto_redundancy_weight_follows_the_projection_size(
    output_dim: int, expected: float
) -> None:
    args = from_dict(BarlowTwinsArgs, {"output_dim": output_dim}, "method_args")
    assert args.redundancy_weight == "auto"
    assert args.resolve(50_000, 1000).redundancy_weight == pytest.approx(expected)
    none = from_dict(BarlowTwinsArgs, {"redundancy_weight": None}, "method_args")
    assert none.redundancy_weight == "auto"
    explicit = BarlowTwinsArgs(output_dim=output_dim, redundancy_weight=0.1)
    assert explicit.resolve(10, 10).redundancy_weight == 0.1


def test_method_resolves_the_weight_it_uses(model_factory: Factory) -> None:
    method = BarlowTwins(model_factory(), {"hidden_dim": 8, "output_dim": 1024})
    assert method.args.redundancy_weight == pytest.approx(0.01)
    assert method.criterion.lambda_param == pytest.approx(0.01)


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({"redundancy_weight": 0.0}, r"method_args\.redundancy_weight must be > 0"),
        ({"output_dim": 1}, r"method_args\.output_dim must be an int >= 2"),
        ({"hidden_dim": 0}, r"method_args\.hidden_dim must be an int >= 1"),
        ({"lr_scale_method": "cubic"}, r"method_args\.lr_scale_method"),
    ],
)
def test_bad_options_name_the_key(values: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        from_dict(BarlowTwinsArgs, values, "method_args")


def test_views_and_optimizer_defaults() -> None:
    v0, v1 = BarlowTwins.view_recipe(BarlowTwins.TransformArgs())
    assert (v0.blur_prob, v1.blur_prob, v0.solarize_prob, v1.solarize_prob) == (1, 0.1, 0, 0.2)
    assert BarlowTwins.optimizer_defaults("cnn") == ("lars", 0.3, 1e-4)
    assert BarlowTwins.optimizer_defaults("vit") == ("adamw", 5e-4, 0.04)
