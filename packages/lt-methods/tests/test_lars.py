"""The LARS optimizer used by ``optim="lars"`` (lightly's, re-exported)."""

from __future__ import annotations

import pytest
import torch

from lt_methods import LARS


def test_trust_ratio_scales_decayed_groups_only() -> None:
    w = torch.nn.Parameter(torch.full((4,), 2.0))  # norm 4
    b = torch.nn.Parameter(torch.zeros(4))
    opt = LARS(
        [{"params": [w], "weight_decay": 0.5}, {"params": [b], "weight_decay": 0.0}],
        lr=1.0,
        momentum=0.0,
    )
    w.grad = torch.full((4,), 1.0)  # norm 2
    b.grad = torch.full((4,), 1.0)
    opt.step()
    ratio = 0.001 * 4.0 / (2.0 + 0.5 * 4.0 + 1e-8)
    assert torch.allclose(w.detach(), torch.full((4,), 2.0 - ratio * (1.0 + 0.5 * 2.0)))
    assert torch.allclose(b.detach(), torch.full((4,), -1.0))  # plain SGD


def test_momentum_and_zero_norm_parameters() -> None:
    w = torch.nn.Parameter(torch.zeros(3))
    opt = LARS([w], lr=0.1, momentum=0.9, weight_decay=1e-4)
    for _ in range(2):
        w.grad = torch.ones(3)
        opt.step()
    # ||w|| = 0 on the first step: ratio 1; afterwards the trust ratio applies.
    assert torch.all(w < 0)
    assert "momentum_buffer" in opt.state[w]


def test_rejects_negative_values() -> None:
    with pytest.raises(ValueError, match="Invalid learning rate"):
        LARS([torch.nn.Parameter(torch.zeros(1))], lr=-1.0)
