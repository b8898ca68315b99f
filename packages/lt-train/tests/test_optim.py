from __future__ import annotations

import itertools

import pytest
import torch

from lt_core import ConfigError, from_dict
from lt_train import OptimArgs
from lt_train._optim import build_optimizer, lr_at_step, scaled_lr, set_lr, warmup_steps


def test_linear_lr_scaling() -> None:
    assert scaled_lr(0.3, 256) == pytest.approx(0.3)
    assert scaled_lr(0.3, 64) == pytest.approx(0.075)


def test_warmup_defaults_to_min_of_10_epochs_and_10_percent() -> None:
    assert warmup_steps(OptimArgs(), epochs=100, steps_per_epoch=5) == 50
    assert warmup_steps(OptimArgs(), epochs=10, steps_per_epoch=5) == 5
    assert warmup_steps(OptimArgs(warmup_epochs=2), epochs=10, steps_per_epoch=5) == 10
    assert warmup_steps(OptimArgs(warmup_epochs=50), epochs=10, steps_per_epoch=5) == 50


def test_schedule_warms_up_linearly_then_decays_by_cosine() -> None:
    f = [lr_at_step(s, max_steps=100, warmup=10, min_ratio=0.1) for s in range(100)]
    assert f[0] == pytest.approx(0.1) and f[4] == pytest.approx(0.5) and f[9] == pytest.approx(1.0)
    assert f[10] == pytest.approx(1.0)
    assert all(a >= b for a, b in itertools.pairwise(f[10:]))
    assert f[55] == pytest.approx(0.55, abs=0.01)
    assert lr_at_step(100, max_steps=100, warmup=10, min_ratio=0.1) == pytest.approx(0.1)


@pytest.mark.parametrize("name", ["sgd", "adamw", "lars"])
def test_build_optimizer_keeps_no_decay_groups(name: str) -> None:
    w, b = torch.nn.Parameter(torch.randn(3, 3)), torch.nn.Parameter(torch.zeros(3))
    opt = build_optimizer(
        name,
        [{"params": [w]}, {"params": [b], "weight_decay": 0.0}],
        lr=0.5,
        weight_decay=1e-4,
        args=OptimArgs(),
    )
    assert [g["weight_decay"] for g in opt.param_groups] == [1e-4, 0.0]
    assert set_lr(opt, 0.5) == pytest.approx(0.25)
    (w.sum() + b.sum()).backward()
    opt.step()


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"lr": -1}, "optim_args.lr must be > 0"),
        ({"min_lr_ratio": 2}, "min_lr_ratio must be in"),
        ({"gradient_clip_norm": 0}, "gradient_clip_norm must be > 0"),
        ({"trust_coefficient": 0}, "trust_coefficient must be > 0"),
        ({"learning_rate": 0.1}, "Unknown key 'optim_args.learning_rate'"),
    ],
)
def test_bad_optim_args(values: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        from_dict(OptimArgs, values, "optim_args")


@pytest.mark.parametrize(
    ("values", "expected"), [({}, 0.02), ({"trust_coefficient": 0.001}, 0.001)]
)
def test_lars_trust_coefficient(values: dict[str, float], expected: float) -> None:
    """LARS moves each decayed weight by about lr * eta times its norm (eta: 0.02 by
    default, or optim_args.trust_coefficient); the group without decay gets plain SGD."""
    torch.manual_seed(0)
    w = torch.nn.Parameter(torch.randn(8, 8))
    b = torch.nn.Parameter(torch.zeros(8))
    groups = [{"params": [w]}, {"params": [b], "weight_decay": 0.0}]
    opt = build_optimizer("lars", groups, lr=0.5, weight_decay=0.0, args=OptimArgs(**values))
    # weight_decay 0 on the first group too would skip the trust ratio: give it a tiny one.
    opt.param_groups[0]["weight_decay"] = 1e-12
    before = w.detach().clone()
    (1000.0 * (w.sum() + b.sum())).backward()
    opt.step()
    step = (w.detach() - before).norm() / before.norm()
    assert step.item() == pytest.approx(0.5 * expected, rel=1e-3)
    assert b.detach() == pytest.approx(torch.full((8,), -500.0))


def test_lr_scaling_rules() -> None:
    from lt_train._optim import scaled_lr

    assert scaled_lr(0.1, 512) == pytest.approx(0.2)
    assert scaled_lr(0.1, 1024, "sqrt") == pytest.approx(0.2)
    assert scaled_lr(0.1, 2048, "linear", reference_batch_size=1024) == pytest.approx(0.2)


def test_fused_reaches_sgd_and_adamw() -> None:
    """The trainer asks for fused updates on a GPU; torch also has them on the CPU."""
    params = [torch.nn.Parameter(torch.zeros(3))]
    for name, fused in (("sgd", True), ("adamw", True), ("sgd", False), ("lars", True)):
        opt = build_optimizer(
            name, [{"params": params}], lr=0.1, weight_decay=0.0, args=OptimArgs(), fused=fused
        )
        assert bool(opt.defaults.get("fused")) == (fused and name != "lars"), name
        params[0].grad = torch.ones(3)
        opt.step()


def test_fused_sgd_takes_a_parameter_whose_first_gradient_comes_late() -> None:
    """DINO and SwAV leave a layer without gradient in the first epoch; torch's fused SGD
    failed on it ("expected Tensor ... got NoneType"). The updates equal unfused SGD's."""
    torch.manual_seed(0)
    start = [torch.randn(4, 3), torch.randn(5)]
    runs = []
    for fused in (True, False):
        params = [torch.nn.Parameter(p.clone()) for p in start]
        opt = build_optimizer(
            "sgd", [{"params": params}], lr=0.1, weight_decay=1e-4, args=OptimArgs(), fused=fused
        )
        for step in range(3):
            params[0].grad = torch.full_like(params[0], 0.5 + step)
            params[1].grad = None if step == 0 else torch.full_like(params[1], 1.0 - step)
            opt.step()
        runs.append(params)
    for fused_param, plain_param in zip(*runs):
        torch.testing.assert_close(fused_param, plain_param, rtol=0, atol=1e-6)
