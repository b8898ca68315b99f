"""VICReg specifics: the loss on known embeddings, the two asymmetric views, options."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from lt_core import ConfigError, from_dict
from lt_methods import VICReg, VICRegArgs, VICRegTransformArgs, get_method

Factory = Callable[..., Any]

#: Four 2-d embeddings with zero mean, uncorrelated dimensions and standard deviation
#: sqrt(4/3) > 1 in each: no variance or covariance penalty.
SPREAD = torch.tensor([[1.0, 1.0], [1.0, -1.0], [-1.0, 1.0], [-1.0, -1.0]])


@pytest.fixture
def criterion(model_factory: Factory) -> Callable[..., Any]:
    def make(**args: Any) -> Any:
        return VICReg(model_factory(), {"hidden_dim": 8, "output_dim": 8, **args}).criterion

    return make


def test_loss_is_zero_for_identical_spread_uncorrelated_embeddings(criterion: Factory) -> None:
    assert float(criterion()(SPREAD, SPREAD.clone())) == pytest.approx(0.0, abs=1e-6)


def test_loss_of_collapsed_embeddings_is_the_variance_penalty(criterion: Factory) -> None:
    # Constant embeddings: std = sqrt(eps) = 0.01, each dimension pays 1 - 0.01.
    z = torch.ones(4, 2)
    assert float(criterion()(z, z.clone())) == pytest.approx(25 * 0.99, rel=1e-5)
    assert float(criterion(variance_weight=2.0)(z, z.clone())) == pytest.approx(2 * 0.99)


def test_invariance_term_is_the_weighted_mean_squared_error(criterion: Factory) -> None:
    # A shift changes neither the variance nor the covariance.
    loss = criterion(invariance_weight=3.0)(SPREAD, SPREAD + 1.0)
    assert float(loss) == pytest.approx(3.0, rel=1e-6)


def test_covariance_term_of_correlated_dimensions(criterion: Factory) -> None:
    # Both dimensions equal: covariance 4/3 off the diagonal, twice, divided by D=2.
    z = SPREAD[:, :1].repeat(1, 2) * 2  # std 2.3 > 1: no variance penalty
    loss = criterion(covariance_weight=1.0)(z, z.clone())
    cov = (z * z).sum(0)[0] / 3  # mean is zero
    assert float(loss) == pytest.approx(2 * (2 * float(cov) ** 2 / 2), rel=1e-5)


def test_two_asymmetric_views() -> None:
    t = from_dict(VICRegTransformArgs, {}, "transform_args")
    v0, v1 = VICReg.view_recipe(t)
    assert v0.num_views == v1.num_views == 1 and v0.size == v1.size == (224, 224)
    assert (v0.blur_prob, v1.blur_prob) == (1.0, 0.1)
    assert (v0.solarize_prob, v1.solarize_prob) == (0.0, 0.2)
    assert v0.crop_scale == v1.crop_scale == (0.08, 1.0)
    for view in (v0, v1):
        assert view.color_jitter is not None
        jitter = view.color_jitter
        assert (jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue) == (
            pytest.approx((0.4, 0.4, 0.2, 0.1))
        )
    t = from_dict(VICRegTransformArgs, {"global_view_1": {"solarize": None}}, "transform_args")
    assert VICReg.view_recipe(t)[1].solarize_prob == 0.0
    with pytest.raises(ConfigError, match="global_view_1 cannot be None"):
        VICRegTransformArgs(global_view_1=None)


def test_views_of_different_sizes_go_through_separately(method_factory: Factory) -> None:
    method = method_factory("vicreg")
    out = method.training_step(
        [torch.randn(4, 3, 32, 32), torch.randn(4, 3, 24, 24)],
        step=0,
        max_steps=1,
        steps_per_epoch=1,
    )
    assert torch.isfinite(out["loss"])


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({"invariance_weight": 0.0}, "invariance_weight and method_args.variance_weight"),
        ({"covariance_weight": -1.0}, r"method_args\.covariance_weight must be a number >= 0"),
        ({"num_layers": 1}, r"method_args\.num_layers must be an int >= 2"),
        ({"eps": 0.0}, r"method_args\.eps must be > 0"),
        ({"reference_batch_size": 0}, r"method_args\.reference_batch_size"),
    ],
)
def test_bad_options_name_the_key(values: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        from_dict(VICRegArgs, values, "method_args")


def test_optimizer_defaults() -> None:
    assert VICReg.optimizer_defaults("cnn") == ("lars", 0.3, 1e-4)
    assert VICReg.optimizer_defaults("vit") == ("adamw", 5e-4, 0.04)
    assert (VICReg.min_batch_size, VICReg.gathers_batch) == (2, False)


@pytest.mark.parametrize(
    ("name", "heading"),
    [("vicreg", "## VICReg"), ("barlowtwins", "## Barlow Twins"), ("swav", "## SwAV")],
)
def test_methods_page_has_a_row_per_method_arg(name: str, heading: str) -> None:
    docs = Path(__file__).resolve().parents[3] / "docs" / "methods.md"
    if not docs.is_file():
        pytest.skip("needs the repository's docs/")
    section = docs.read_text().split(f"\n{heading}\n", 1)[1]
    table = re.search(r"^\| key \|.*?(?=\n\n)", section, re.DOTALL | re.MULTILINE)
    assert table, heading
    rows = set(re.findall(r"^\| `(\w+)` \|", table.group(0), re.MULTILINE))
    assert rows == {f.name for f in dataclasses.fields(get_method(name).Args)}
