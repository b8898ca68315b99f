from __future__ import annotations

import pytest

from lt_data._sampler import ResumableSampler


def test_processes_see_disjoint_full_batches_that_cover_the_epoch() -> None:
    samplers = [
        ResumableSampler(103, batch_size=5, num_replicas=3, rank=r, seed=1) for r in range(3)
    ]
    shares = [list(s) for s in samplers]
    assert all(len(share) == 30 for share in shares)  # 34 each, trimmed to 6 full batches
    seen = [i for share in shares for i in share]
    assert len(seen) == len(set(seen))
    assert set(seen) <= set(range(103))


def test_each_epoch_is_a_new_order_and_reproducible() -> None:
    a, b = ResumableSampler(50, 10, seed=3), ResumableSampler(50, 10, seed=3)
    first = list(a)
    a.set_position(1)
    b.set_position(1)
    assert list(a) == list(b) != first
    assert sorted(first) == list(range(50))


@pytest.mark.parametrize("start", [0, 1, 3, 5])
def test_start_position_skips_exactly_the_trained_batches(start: int) -> None:
    full = ResumableSampler(57, batch_size=4, num_replicas=2, rank=1, seed=0)
    full.set_position(2)
    resumed = ResumableSampler(57, batch_size=4, num_replicas=2, rank=1, seed=0)
    resumed.set_position(2, start)
    assert list(resumed) == list(full)[start * 4 :]
    assert len(resumed) == len(list(resumed))


def test_sampler_does_not_touch_the_global_rng() -> None:
    import torch

    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    list(ResumableSampler(20, 4))
    assert torch.equal(torch.rand(3), expected)
