"""SwAV specifics: multi-crop views, prototypes, the queue, the automatic options."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
import torch

from lt_core import ConfigError, from_dict
from lt_methods import SwAV, SwAVArgs, SwAVTransformArgs

Factory = Callable[..., Any]


def _recipe(**values: Any) -> list[Any]:
    return SwAV.view_recipe(from_dict(SwAVTransformArgs, values, "transform_args"))


def test_multi_crop_recipe() -> None:
    glob, local = _recipe()
    assert (glob.size, glob.num_views, glob.crop_scale) == ((224, 224), 2, (0.14, 1.0))
    assert (local.size, local.num_views, local.crop_scale) == ((96, 96), 6, (0.05, 0.14))
    for view in (glob, local):
        assert view.color_jitter is not None and view.color_jitter.brightness == 0.8
        assert (view.blur_prob, view.solarize_prob, view.grayscale_prob) == (0.5, 0.0, 0.2)
    assert _recipe(image_size=[32, 32])[1].size == (14, 14)
    assert len(_recipe(local_view=None)) == 1 and len(_recipe(local_view={"num_views": 0})) == 1
    with pytest.raises(ConfigError, match=r"transform_args\.local_view\.num_views"):
        _recipe(local_view={"num_views": -1})


def test_loss_of_uniform_scores_is_log_k(method_factory: Factory) -> None:
    # Equal scores: uniform codes and predictions, cross-entropy log K for every pair.
    criterion = method_factory("swav").criterion
    scores = torch.zeros(8, 20)
    loss = criterion([scores, scores], [scores] * 3)
    assert float(loss) == pytest.approx(math.log(20), rel=1e-5)


@pytest.mark.parametrize(
    ("num_images", "prototypes", "queue"),
    [(None, 3000, 3840), (1_281_167, 3000, 3840), (50_000, 500, 3840), (5_000, 100, 500)],
)
def test_auto_sizes_follow_the_dataset(num_images: int | None, prototypes: int, queue: int) -> None:
    args = SwAVArgs().resolve(num_images, 1000)
    assert (args.num_prototypes, args.queue_length) == (prototypes, queue)
    explicit = SwAVArgs(num_prototypes=64, queue_length=0).resolve(num_images, 1000)
    assert (explicit.num_prototypes, explicit.queue_length) == (64, 0)
    assert from_dict(SwAVArgs, {"num_prototypes": None}, "method_args").num_prototypes == "auto"


def test_schedules() -> None:
    args = SwAVArgs()
    assert args.freeze_steps(steps_per_epoch=7) == 7
    assert SwAVArgs(freeze_prototypes_steps=3).freeze_steps(steps_per_epoch=7) == 3
    assert args.queue_start(max_steps=10_000, steps_per_epoch=10) == 150  # 15 epochs
    assert args.queue_start(max_steps=100, steps_per_epoch=10) == 20  # a fifth of the run
    assert SwAVArgs(queue_start_steps=90).queue_start(max_steps=100, steps_per_epoch=10) == 90


def test_queue_decision() -> None:
    args = SwAVArgs().resolve(50_000, 1000)  # 500 prototypes
    assert args.queue_on(256) and not args.queue_on(512)
    assert SwAVArgs(use_queue=True).resolve(50_000).queue_on(4096)
    assert not SwAVArgs(use_queue=False).resolve(50_000).queue_on(8)
    assert not SwAVArgs(queue_length=0).resolve(50_000).queue_on(8)


def test_prototypes_are_unit_norm_without_bias_and_frozen_first(
    method_factory: Factory, views_factory: Factory
) -> None:
    method = method_factory("swav")
    (layer,) = method.prototypes.heads
    assert layer.bias is None
    with torch.no_grad():
        layer.weight.mul_(3.0)
    out = method(views_factory(method), step=0, max_steps=10, steps_per_epoch=5)
    assert torch.allclose(layer.weight.norm(dim=1), torch.ones(20))
    out["loss"].backward()
    assert layer.weight.grad is not None
    method.on_before_optimizer_step(step=4, steps_per_epoch=5)  # first epoch: frozen
    assert layer.weight.grad is not None and not layer.weight.grad.any()
    method.zero_grad()
    out = method(views_factory(method), step=5, max_steps=10, steps_per_epoch=5)
    out["loss"].backward()
    method.on_before_optimizer_step(step=5, steps_per_epoch=5)
    assert layer.weight.grad is not None and layer.weight.grad.abs().sum() > 0


def _steps(method: Any, views: list[torch.Tensor], steps: range) -> list[dict[str, Any]]:
    optimizer = torch.optim.SGD(method.param_groups(), lr=0.1, momentum=0.9)
    outs = []
    for step in steps:
        out = method(views, step=step, max_steps=20, steps_per_epoch=10)
        out["loss"].backward()
        method.on_before_optimizer_step(step=step, steps_per_epoch=10)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        outs.append({k: float(v.detach()) for k, v in out.items()})
    return outs


def test_queue_joins_once_full_and_holds_recent_projections(
    method_factory: Factory, views_factory: Factory
) -> None:
    # 20 prototypes > batch 8: the queue is on; 16 projections fill it in 2 steps.
    method = method_factory("swav", queue_start_steps=0)
    views = views_factory(method)
    active = [out["queue_active"] for out in _steps(method, views, range(4))]
    assert active == [0.0, 0.0, 1.0, 1.0]
    assert int(method.queue_decision) == 1 and int(method.queue_filled) == 16
    with torch.no_grad():  # the projections the next step computes (batch norm in train mode)
        z = method._project(views[:2])
    method(views, step=4, max_steps=20, steps_per_epoch=10)
    for queue, projections in zip(method.queues, z):
        assert queue.bank.shape == (16, 16)
        assert torch.allclose(queue.bank[:8], projections, atol=1e-6)  # wrapped to the front
        assert int(queue.bank_ptr) == 8


def test_queue_waits_for_its_start_step(method_factory: Factory, views_factory: Factory) -> None:
    method = method_factory("swav", queue_start_steps=3)
    active = [out["queue_active"] for out in _steps(method, views_factory(method), range(5))]
    assert active == [0.0, 0.0, 0.0, 1.0, 1.0]


def test_no_queue_for_large_batches(method_factory: Factory, views_factory: Factory) -> None:
    method = method_factory("swav", num_prototypes=4, queue_start_steps=0)
    outs = _steps(method, views_factory(method), range(3))
    assert [out["queue_active"] for out in outs] == [0.0, 0.0, 0.0]
    assert int(method.queue_decision) == 0 and int(method.queue_filled) == 0
    assert method_factory("swav", use_queue=False).queues is None


def test_resume_with_a_queue_is_exact(method_factory: Factory, views_factory: Factory) -> None:
    a = method_factory("swav", queue_start_steps=0)
    views = views_factory(a)
    _steps(a, views, range(3))
    state = a.state_dict()
    assert {"queues.0.bank", "queues.1.bank_ptr", "queue_filled", "queue_decision"} <= set(state)
    b = method_factory("swav", queue_start_steps=0)
    b.load_state_dict(state)
    out_a = a(views, step=3, max_steps=20, steps_per_epoch=10)
    out_b = b(views, step=3, max_steps=20, steps_per_epoch=10)
    assert out_a["queue_active"] == out_b["queue_active"] == 1.0
    assert torch.equal(out_a["loss"], out_b["loss"])


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({"num_prototypes": 1}, r"method_args\.num_prototypes must be an int >= 2"),
        ({"sinkhorn_epsilon": 0.0}, r"method_args\.sinkhorn_epsilon must be > 0"),
        ({"temperature": -1.0}, r"method_args\.temperature must be > 0"),
        ({"queue_length": -1}, r"method_args\.queue_length must be an int >= 0"),
        ({"use_queue": True, "queue_length": 0}, r"use_queue=True needs a queue"),
        ({"sinkhorn_iterations": 0}, r"method_args\.sinkhorn_iterations"),
    ],
)
def test_bad_options_name_the_key(values: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        from_dict(SwAVArgs, values, "method_args")


def test_optimizer_defaults() -> None:
    assert SwAV.optimizer_defaults("cnn") == ("sgd", 0.12, 5e-4)
    assert SwAV.optimizer_defaults("vit") == ("adamw", 5e-4, 0.04)
    assert (SwAV.min_batch_size, SwAV.gathers_batch) == (2, True)


@pytest.mark.parametrize("fused", [False, True])
def test_frozen_prototypes_keep_their_direction_under_fused_sgd(
    method_factory: Factory, views_factory: Factory, fused: bool
) -> None:
    method = method_factory("swav")
    (layer,) = method.prototypes.heads
    views = views_factory(method)
    optimizer = torch.optim.SGD(
        method.param_groups(), lr=0.5, momentum=0.9, weight_decay=0.1, fused=fused
    )
    before = layer.weight.detach().clone()
    for step in range(4):  # 2 frozen steps, then 2 trained ones
        out = method(views, step=step, max_steps=4, steps_per_epoch=2)
        out["loss"].backward()
        method.on_before_optimizer_step(step=step, steps_per_epoch=2)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step == 1:
            direction = torch.nn.functional.normalize(layer.weight.detach(), dim=1)
            assert torch.allclose(direction, before, atol=1e-6)
    assert not torch.allclose(torch.nn.functional.normalize(layer.weight, dim=1), before)
