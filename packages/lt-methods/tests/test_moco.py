"""MoCo v2 specifics: views, queue length rule, queue updates and state, loss values, args."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import pytest
import torch
from test_docs_keys import DOCS, _rows
from torch import nn

from lt_core import ConfigError, ConfigTypeError, from_dict
from lt_methods import MoCoV2, MoCoV2Args, MoCoV2TransformArgs
from lt_methods._moco import auto_queue_length

Factory = Callable[..., Any]


def test_recipe_is_aug_plus() -> None:
    (view,) = MoCoV2.view_recipe(MoCoV2TransformArgs())
    assert view.num_views == 2 and view.size == (224, 224)
    assert view.crop_scale == (0.2, 1.0)
    assert (view.blur_prob, view.solarize_prob, view.grayscale_prob) == (0.5, 0.0, 0.2)
    jitter = view.color_jitter
    assert jitter is not None and jitter.prob == 0.8
    values = (jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue)
    assert values == pytest.approx((0.4, 0.4, 0.4, 0.1))


@pytest.mark.parametrize(
    ("num_images", "expected"),
    [(None, 65536), (1_281_167, 65536), (50_000, 4096), (10_000, 1024), (1000, 64), (10, 16)],
)
def test_auto_queue_length(num_images: int | None, expected: int) -> None:
    assert auto_queue_length(num_images) == expected
    if num_images is not None and num_images >= 128:
        assert expected <= num_images / 8


def test_resolve_sets_queue_and_constant_momentum() -> None:
    args = MoCoV2.resolve_args(MoCoV2Args(), num_images=50_000, total_steps=2000)
    assert args.queue_length == 4096
    assert args.momentum_start == pytest.approx(0.995) and args.momentum_end == args.momentum_start
    assert MoCoV2.resolve_args(args, num_images=10, total_steps=10) == args
    paper = MoCoV2.resolve_args(MoCoV2Args())
    assert (paper.queue_length, paper.momentum_start, paper.momentum_end) == (65536, 0.999, 0.999)
    explicit = MoCoV2.resolve_args(
        MoCoV2Args(queue_length=100, momentum_start=0.99, momentum_end=1.0), num_images=10
    )
    assert (explicit.queue_length, explicit.momentum_start, explicit.momentum_end) == (
        100,
        0.99,
        1.0,
    )


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"queue_length": 0}, r"method_args\.queue_length must be an int >= 1"),
        ({"queue_length": "long"}, r"method_args\.queue_length"),
        ({"temperature": 0.0}, r"method_args\.temperature must be > 0"),
        ({"momentum_start": 1.5}, r"method_args\.momentum_start must be in"),
        ({"momentum_end": 2.0}, r"method_args\.momentum_end must be in"),
        ({"queue_size": 4096}, r"Unknown key 'method_args\.queue_size'"),
    ],
)
def test_invalid_args(values: dict[str, Any], message: str) -> None:
    with pytest.raises((ConfigError, ConfigTypeError), match=message):
        from_dict(MoCoV2Args, values, "method_args")


def test_momentum_is_constant_by_default(method_factory: Factory) -> None:
    method: MoCoV2 = method_factory("mocov2", momentum_start=0.99)
    assert {method.ema_momentum(s, 10) for s in range(10)} == {0.99}
    cosine: MoCoV2 = method_factory("mocov2", momentum_start=0.99, momentum_end=1.0)
    assert cosine.ema_momentum(0, 10) == pytest.approx(0.99) and cosine.ema_momentum(9, 10) == 1.0


def _keys(method: MoCoV2, views: list[torch.Tensor]) -> list[torch.Tensor]:
    with torch.no_grad():
        k = method.key_projection_head(method.key_model(torch.cat(views)))
    return [nn.functional.normalize(x, dim=1) for x in k.chunk(len(views))]


@pytest.mark.parametrize("symmetric", [True, False])
def test_keys_enter_the_queue(
    symmetric: bool, method_factory: Factory, views_factory: Factory
) -> None:
    method: MoCoV2 = method_factory("mocov2", queue_length=64, symmetric_loss=symmetric)
    views = views_factory(method, batch_size=8)
    k0, k1 = _keys(method, views)
    method(views, step=0, max_steps=10, steps_per_epoch=5)
    bank = method.queue
    if symmetric:  # the first view's queries are paired with the second view's keys
        assert torch.allclose(bank[:8], k1, atol=1e-5) and torch.allclose(bank[8:16], k0, atol=1e-5)
        assert int(method.criterion.memory_bank.bank_ptr) == 16
    else:  # the key encoder sees the second view alone (its own batch statistics)
        (k1,) = _keys(method, views[1:])
        assert torch.allclose(bank[:8], k1, atol=1e-5)
        assert int(method.criterion.memory_bank.bank_ptr) == 8
    with torch.no_grad():  # evaluation does not change the queue
        before = bank.clone()
        method(views, step=1, max_steps=10, steps_per_epoch=5)
    assert torch.equal(method.queue, before)


def test_queue_is_in_the_state_dict(method_factory: Factory, views_factory: Factory) -> None:
    a: MoCoV2 = method_factory("mocov2")
    a(views_factory(a), step=0, max_steps=10, steps_per_epoch=5)
    state = a.state_dict()
    assert "criterion.memory_bank.bank" in state and "criterion.memory_bank.bank_ptr" in state
    b: MoCoV2 = method_factory("mocov2")
    b.load_state_dict(state)
    assert torch.equal(b.queue, a.queue)
    assert int(b.criterion.memory_bank.bank_ptr) == int(a.criterion.memory_bank.bank_ptr) > 0


def test_queue_keys_are_gathered_over_processes(method_factory: Factory) -> None:
    method: MoCoV2 = method_factory("mocov2")
    assert method.criterion.memory_bank.gather_distributed


def test_loss_known_value(method_factory: Factory) -> None:
    method: MoCoV2 = method_factory("mocov2", output_dim=16, queue_length=8, temperature=0.2)
    e = torch.eye(16)
    method.criterion.memory_bank.bank.copy_(e[8:])  # negatives orthogonal to every query
    queries = e[:4].clone().requires_grad_()
    loss = method.criterion(queries, e[:4])  # each key equals its query
    assert float(loss.detach()) == pytest.approx(math.log(1 + 8 * math.exp(-1 / 0.2)), rel=1e-5)
    assert torch.equal(method.queue[:4], e[:4])  # and then entered the queue


def test_exports_the_query_encoder(method_factory: Factory) -> None:
    method: MoCoV2 = method_factory("mocov2")
    assert method.embedding_model() is method.model
    assert all(not p.requires_grad for p in method.key_model.parameters())


@pytest.mark.skipif(not DOCS.is_dir(), reason="needs the repository's docs/")
def test_methods_page_has_a_row_per_method_arg() -> None:
    rows = _rows((DOCS / "methods.md").read_text(), "### MoCo v2 method_args")
    assert rows == {f.name for f in dataclasses.fields(MoCoV2.Args)}
