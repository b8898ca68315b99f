"""The shared EMA pieces: copy, momentum schedule, short-run rule, update, view batching."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from lt_core import ConfigError
from lt_methods._ema import (
    auto_momentum,
    cosine_momentum,
    forward_views,
    frozen_copy,
    update_ema,
)


@pytest.mark.parametrize(
    ("paper", "total_steps", "expected"),
    [
        (0.996, None, 0.996),
        (0.996, 0, 0.996),
        (0.996, 50, 0.99),  # 1 - 10/50 = 0.8 is raised to the floor
        (0.996, 2000, 0.995),
        (0.996, 10**6, 0.996),
        (0.999, 5000, 0.998),
        (0.999, 20000, 0.999),
    ],
)
def test_auto_momentum(paper: float, total_steps: int | None, expected: float) -> None:
    assert auto_momentum(paper, total_steps) == pytest.approx(expected)


def test_cosine_momentum_rises_from_start_to_end() -> None:
    assert cosine_momentum(0, 101, 0.99, 1.0) == pytest.approx(0.99)
    assert cosine_momentum(50, 101, 0.99, 1.0) == pytest.approx(0.995)  # half way
    assert cosine_momentum(100, 101, 0.99, 1.0) == 1.0
    assert cosine_momentum(500, 101, 0.99, 1.0) == 1.0  # past the end: no warning
    values = [cosine_momentum(s, 20, 0.9, 1.0) for s in range(20)]
    assert values == sorted(values)
    assert {cosine_momentum(s, 20, 0.999, 0.999) for s in range(25)} == {0.999}


def test_frozen_copy_is_a_separate_frozen_equal_module() -> None:
    net = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    copy = frozen_copy(net, "BYOL")
    assert all(p.requires_grad for p in net.parameters())
    assert all(not p.requires_grad for p in copy.parameters())
    for p, q in zip(net.parameters(), copy.parameters()):
        assert torch.equal(p, q) and p.data_ptr() != q.data_ptr()


def test_frozen_copy_of_an_uncopyable_model_names_the_fix() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = nn.utils.weight_norm(nn.Linear(4, 3))  # the legacy hook-based weight norm
    with pytest.raises(ConfigError, match=r"MoCo v2 copies.*parametrizations\.weight_norm"):
        frozen_copy(net, "MoCo v2")


def test_update_ema_moves_parameters_by_the_momentum() -> None:
    trained, ema = nn.Linear(3, 2), nn.Linear(3, 2)
    old = [p.detach().clone() for p in ema.parameters()]
    update_ema([(trained, ema)], 0.9)
    for e, o, t in zip(ema.parameters(), old, trained.parameters()):
        assert torch.allclose(e, 0.9 * o + 0.1 * t)
    update_ema([(trained, ema)], 0.0)
    assert all(torch.equal(e, t) for e, t in zip(ema.parameters(), trained.parameters()))


def test_forward_views_batches_views_of_equal_shape() -> None:
    calls: list[int] = []
    model = nn.Flatten()
    model.register_forward_hook(lambda m, i, o: calls.append(i[0].shape[0]))
    views = [torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4), torch.randn(2, 3, 2, 2)]
    out = forward_views(model, nn.Identity(), views)
    assert calls == [4, 2]
    assert [o.shape for o in out] == [(2, 48), (2, 48), (2, 12)]
    assert torch.equal(out[1], views[1].flatten(1))
