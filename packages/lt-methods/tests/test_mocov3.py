"""MoCo v3 specifics: views, heads, the contrastive loss's known values, momentum, args."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import pytest
import torch
from test_docs_keys import DOCS, _rows
from torch import nn

from lt_core import ConfigError, from_dict
from lt_methods import MoCoV3, MoCoV3Args, MoCoV3TransformArgs

Factory = Callable[..., Any]


def test_recipe_is_byols_pair_with_a_larger_crop() -> None:
    first, second = MoCoV3.view_recipe(MoCoV3TransformArgs())
    assert first.crop_scale == second.crop_scale == (0.2, 1.0)
    assert (first.blur_prob, first.solarize_prob) == (1.0, 0.0)
    assert (second.blur_prob, second.solarize_prob) == (0.1, 0.2)
    assert MoCoV3.min_batch_size == 2 and MoCoV3.gathers_batch


def test_heads_follow_the_reference_code(method_factory: Factory) -> None:
    method: MoCoV3 = method_factory("mocov3")
    proj = [
        m for m in method.projection_head.modules() if isinstance(m, nn.Linear | nn.BatchNorm1d)
    ]
    assert [type(m) for m in proj] == [nn.Linear, nn.BatchNorm1d, nn.Linear, nn.BatchNorm1d]
    assert all(m.bias is None for m in proj if isinstance(m, nn.Linear))
    assert not proj[-1].affine
    pred = [
        m for m in method.prediction_head.modules() if isinstance(m, nn.Linear | nn.BatchNorm1d)
    ]
    assert [type(m) for m in pred] == [nn.Linear, nn.BatchNorm1d, nn.Linear]
    vit: MoCoV3 = method_factory("mocov3", num_layers=3, prediction_last_batch_norm=True)
    linears = [m for m in vit.projection_head.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 3
    assert isinstance(list(vit.prediction_head.modules())[-1], nn.BatchNorm1d)


@pytest.mark.parametrize("temperature", [0.2, 1.0])
def test_contrastive_loss_known_values(method_factory: Factory, temperature: float) -> None:
    method: MoCoV3 = method_factory("mocov3", temperature=temperature)
    e = torch.eye(16)
    # Each query equals its key and is orthogonal to the other 3 keys.
    loss = method.contrastive_loss(3 * e[:4], e[:4])
    expected = 2 * temperature * math.log(1 + 3 * math.exp(-1 / temperature))
    assert float(loss) == pytest.approx(expected, rel=1e-5)
    # A query that matches another image's key pays log(1 + 3 e^{..}) + 1/t more.
    swapped = method.contrastive_loss(e[[1, 0, 2, 3]], e[:4])
    assert float(swapped) > float(loss)


def test_training_step_is_the_sum_of_both_directions(
    method_factory: Factory, views_factory: Factory
) -> None:
    method: MoCoV3 = method_factory("mocov3")
    views = views_factory(method)
    torch.manual_seed(1)
    out = method(views, step=0, max_steps=10, steps_per_epoch=5)
    head = nn.Sequential(method.projection_head, method.prediction_head)
    with torch.no_grad():
        q0, q1 = head(method.model(torch.cat(views))).chunk(2)
        k0, k1 = method.momentum_projection_head(method.momentum_model(torch.cat(views))).chunk(2)
        expected = method.contrastive_loss(q0, k1) + method.contrastive_loss(q1, k0)
    assert float(out["loss"].detach()) == pytest.approx(float(expected), rel=1e-5)
    assert float(out["ema_momentum"]) == pytest.approx(0.99)
    assert method.ema_momentum(9, 10) == 1.0


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"num_layers": 1}, r"method_args\.num_layers must be an int >= 2"),
        ({"temperature": -1.0}, r"method_args\.temperature must be > 0"),
        ({"momentum_start": 1.1}, r"method_args\.momentum_start must be in"),
        ({"queue_length": 10}, r"Unknown key 'method_args\.queue_length'"),
    ],
)
def test_invalid_args(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        from_dict(MoCoV3Args, values, "method_args")


def test_exports_the_base_encoder(method_factory: Factory) -> None:
    method: MoCoV3 = method_factory("mocov3")
    assert method.embedding_model() is method.model
    frozen = [*method.momentum_model.parameters(), *method.momentum_projection_head.parameters()]
    assert all(not p.requires_grad for p in frozen)


@pytest.mark.skipif(not DOCS.is_dir(), reason="needs the repository's docs/")
def test_methods_page_has_a_row_per_method_arg() -> None:
    rows = _rows((DOCS / "methods.md").read_text(), "### MoCo v3 method_args")
    assert rows == {f.name for f in dataclasses.fields(MoCoV3.Args)}
