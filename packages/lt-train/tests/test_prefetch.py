from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from lt_train._speed._prefetch import one_ahead, to_device


def test_one_ahead_issues_the_next_item_before_handing_out_the_current() -> None:
    events: list[str] = []

    def items() -> Iterator[int]:
        for i in range(3):
            events.append(f"read {i}")
            yield i

    def issue(i: int) -> int:
        events.append(f"issue {i}")
        return i * 10

    def finish(x: int) -> int:
        events.append(f"finish {x // 10}")
        return x + 1

    out = []
    for x in one_ahead(items(), issue, finish):
        events.append(f"use {x}")
        out.append(x)
    assert out == [1, 11, 21]
    assert events == [
        "read 0", "issue 0", "read 1", "issue 1", "finish 0", "use 1",
        "read 2", "issue 2", "finish 1", "use 11", "finish 2", "use 21",
    ]  # fmt: skip


def test_one_ahead_of_nothing_and_of_one_item() -> None:
    assert list(one_ahead(iter([]), lambda x: x, lambda x: x)) == []
    assert list(one_ahead(iter([5]), lambda x: x + 1, lambda x: x * 2)) == [12]


def test_one_ahead_passes_the_reader_error_on() -> None:
    def items() -> Iterator[int]:
        yield 1
        raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        list(one_ahead(items(), lambda x: x, lambda x: x))


def test_to_device_on_the_cpu_moves_each_batch_and_keeps_none() -> None:
    batches = [torch.ones(2, 3), None, torch.zeros(1, 3, dtype=torch.float64)]
    out = list(to_device(iter(batches), torch.device("cpu")))
    assert out[1] is None
    assert out[0] is batches[0] and out[2] is batches[2]  # already there: the same tensor


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_to_device_on_a_gpu_gives_the_same_batches_in_order() -> None:
    device = torch.device("cuda")
    batches = [torch.full((4, 3, 8, 8), i, dtype=torch.uint8).pin_memory() for i in range(5)]
    batches.append(torch.full((4, 3, 8, 8), 5, dtype=torch.uint8, device=device))
    out = []
    for b in to_device(iter(batches), device):
        assert b is not None and b.device.type == "cuda"
        out.append(int(b.float().mean().item()))  # read on the current stream
    assert out == list(range(6))
