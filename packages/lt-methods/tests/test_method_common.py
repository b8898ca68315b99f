"""Tests every registered method (parametrized over the registry)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
import torch
from conftest import SMALL_ARGS

from lt_core import ConfigError, EmbeddingModel, ViewConfig, from_dict
from lt_methods import Method, get_method, list_methods

METHODS = list_methods()
Factory = Callable[..., Any]


@pytest.mark.parametrize("name", METHODS)
def test_class_attributes(name: str) -> None:
    cls = get_method(name)
    assert cls.name == name
    assert cls.default_optimizer in ("sgd", "adamw", "lars")
    assert cls.default_lr > 0 and cls.default_weight_decay >= 0
    assert "arxiv.org" in (cls.__doc__ or ""), "cite the paper in the class docstring"
    for config in (cls.Args, cls.TransformArgs):
        assert dataclasses.is_dataclass(config)
        assert all(f.kw_only for f in dataclasses.fields(config))


@pytest.mark.parametrize("name", METHODS)
def test_default_options_build_from_empty_dicts(name: str) -> None:
    cls = get_method(name)
    args = from_dict(cls.Args, {}, "method_args")
    transform_args = from_dict(cls.TransformArgs, None, "transform_args")
    assert args == cls.Args() and transform_args == cls.TransformArgs()
    recipe = cls.view_recipe(transform_args)
    assert recipe and all(isinstance(v, ViewConfig) for v in recipe)
    assert max(v.size for v in recipe) == transform_args.image_size


@pytest.mark.parametrize("name", METHODS)
def test_unknown_method_args_key(name: str) -> None:
    cls = get_method(name)
    with pytest.raises(ConfigError, match=r"Unknown key 'method_args\.not_an_option'"):
        from_dict(cls.Args, {"not_an_option": 1}, "method_args")
    with pytest.raises(ConfigError, match=r"Unknown key 'transform_args\.image_sise'.*image_size"):
        from_dict(cls.TransformArgs, {"image_sise": [32, 32]}, "transform_args")


@pytest.mark.parametrize("name", METHODS)
@pytest.mark.parametrize("size", [(32, 32), (64, 48)])
def test_view_sizes_follow_image_size(name: str, size: tuple[int, int]) -> None:
    cls = get_method(name)
    transform_args = from_dict(cls.TransformArgs, {"image_size": list(size)}, "transform_args")
    recipe = cls.view_recipe(transform_args)
    assert recipe[0].size == size
    for view in recipe:
        assert view.size[0] <= size[0] and view.size[1] <= size[1]


@pytest.mark.parametrize("name", METHODS)
def test_training_step_returns_finite_scalars(
    name: str, method_factory: Factory, views_factory: Factory
) -> None:
    method = method_factory(name)
    views = views_factory(method)
    out = method(views, step=0, max_steps=10, steps_per_epoch=5)  # forward = training_step
    assert "loss" in out
    for key, value in out.items():
        assert isinstance(value, torch.Tensor) and value.ndim == 0, key
        assert torch.isfinite(value), key
    assert out["loss"].requires_grad


@pytest.mark.parametrize("name", METHODS)
def test_gradients_reach_the_wrapper(
    name: str, method_factory: Factory, views_factory: Factory
) -> None:
    method = method_factory(name)
    out = method.training_step(views_factory(method), step=0, max_steps=10, steps_per_epoch=5)
    out["loss"].backward()
    wrapper = method.model.wrapper  # the trained network (embedding_model() may be an EMA)
    for pname, param in wrapper.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("name", METHODS)
def test_a_few_optimizer_steps_run(
    name: str, method_factory: Factory, views_factory: Factory
) -> None:
    method = method_factory(name)
    views = views_factory(method)
    optimizer = torch.optim.SGD(method.param_groups(), lr=0.05, momentum=0.9, weight_decay=1e-4)
    losses = []
    max_steps, steps_per_epoch = 4, 2
    for step in range(max_steps):
        out = method(views, step=step, max_steps=max_steps, steps_per_epoch=steps_per_epoch)
        out["loss"].backward()
        method.on_before_optimizer_step(step=step, steps_per_epoch=steps_per_epoch)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        method.on_after_optimizer_step(step=step, max_steps=max_steps)
        losses.append(float(out["loss"].detach()))
    assert all(torch.isfinite(torch.tensor(losses)))


@pytest.mark.parametrize("name", METHODS)
def test_param_groups(name: str, method_factory: Factory) -> None:
    method = method_factory(name)
    groups = method.param_groups()
    grouped = [p for g in groups for p in g["params"]]
    assert len(grouped) == len({id(p) for p in grouped}), "a parameter appears twice"
    trainable = {id(p) for p in method.parameters() if p.requires_grad}
    assert {id(p) for p in grouped} == trainable
    norm_and_bias = {
        id(p)
        for m in method.modules()
        for n, p in m.named_parameters(recurse=False)
        if p.requires_grad
        and (
            isinstance(m, torch.nn.modules.batchnorm._NormBase | torch.nn.LayerNorm) or n == "bias"
        )
    }
    assert norm_and_bias
    for group in groups:
        ids = {id(p) for p in group["params"]}
        if "weight_decay" in group:
            assert group["weight_decay"] == 0.0
            assert all(p.ndim <= 1 for p in group["params"])
        else:
            assert not ids & norm_and_bias
    no_decay = {id(p) for g in groups if g.get("weight_decay") == 0.0 for p in g["params"]}
    assert norm_and_bias <= no_decay


@pytest.mark.parametrize("name", METHODS)
def test_embedding_model_is_one_of_the_methods_networks(name: str, method_factory: Factory) -> None:
    method = method_factory(name)
    model = method.embedding_model()
    own = [m for m in method.modules() if isinstance(m, EmbeddingModel)]
    assert isinstance(model, EmbeddingModel) and any(model is m for m in own)
    assert model.embed_dim == method.model.embed_dim
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, model.embed_dim)


@pytest.mark.parametrize("name", METHODS)
def test_options_as_dicts_or_none(name: str, model_factory: Factory) -> None:
    cls = get_method(name)
    small = {
        "simclr": {"hidden_dim": 8, "output_dim": 8},
        "dino": {"hidden_dim": 8, "output_dim": 8},
        "densecl": {"hidden_dim": 8, "output_dim": 8, "memory_bank_size": 8},
        "distillation": SMALL_ARGS["distillation"],
        "byol": {"hidden_dim": 8, "output_dim": 8, "prediction_hidden_dim": 8},
        "mocov2": {"hidden_dim": 8, "output_dim": 8},
        "mocov3": {"hidden_dim": 8, "output_dim": 8},
        "vicreg": {"hidden_dim": 8, "output_dim": 8},
        "barlowtwins": {"hidden_dim": 8, "output_dim": 8},
        "swav": {"hidden_dim": 8, "output_dim": 8, "num_prototypes": 10},
    }
    method = cls(model_factory(), small.get(name, {}), None)
    assert isinstance(method.args, cls.Args)
    assert method.transform_args == cls.TransformArgs()
    with pytest.raises(ConfigError, match="method_args"):
        cls(model_factory(), {"nope": 1}, None)
    with pytest.raises(TypeError, match="method_args must be"):
        cls(model_factory(), 3, None)


@pytest.mark.parametrize("name", METHODS)
def test_needs_a_pooling_embedding_model(name: str, model_factory: Factory) -> None:
    cls = get_method(name)
    model = model_factory()
    model.pool = False
    with pytest.raises(ConfigError, match="pool=True"):
        cls(model)
    with pytest.raises(TypeError, match="EmbeddingModel"):
        cls(model.wrapper)


@pytest.mark.parametrize("name", METHODS)
def test_too_few_views_is_a_clear_error(
    name: str, method_factory: Factory, views_factory: Factory
) -> None:
    method: Method = method_factory(name)
    views = views_factory(method)
    too_few = views[:1] if len(views) > 1 else []  # a one-view method (distillation)
    with pytest.raises(ConfigError, match="view"):
        method.training_step(too_few, step=0, max_steps=1, steps_per_epoch=1)


@pytest.mark.parametrize("name", METHODS)
def test_state_dict_round_trip(name: str, method_factory: Factory) -> None:
    a, b = method_factory(name), method_factory(name)
    b.load_state_dict(a.state_dict())
    for (ka, va), (kb, vb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert ka == kb and torch.equal(va, vb)


@pytest.mark.parametrize("name", METHODS)
def test_ema_networks_move_towards_the_trained_ones(
    name: str, method_factory: Factory, views_factory: Factory
) -> None:
    method: Method = method_factory(name)
    pairs = method.ema_pairs()
    if not pairs:
        pytest.skip(f"{name} has no EMA network")
    views = views_factory(method)
    optimizer = torch.optim.SGD(method.param_groups(), lr=0.5)
    before = [[p.detach().clone() for p in ema.parameters()] for _, ema in pairs]
    for step in range(2):
        out = method(views, step=step, max_steps=4, steps_per_epoch=2)
        out["loss"].backward()
        method.on_before_optimizer_step(step=step, steps_per_epoch=2)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        method.on_after_optimizer_step(step=step, max_steps=4)
    for (trained, ema), old in zip(pairs, before):
        assert all(not p.requires_grad for p in ema.parameters()), "EMA weights are trained"
        moved = [not torch.equal(p, q) for p, q in zip(ema.parameters(), old)]
        assert any(moved), f"the EMA copy of {type(trained).__name__} did not move"
