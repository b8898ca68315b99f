"""Batches moved to the training device one step ahead (on a CUDA GPU: on a side stream)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import torch
from torch import Tensor

__all__ = ["to_device"]

T = TypeVar("T")
U = TypeVar("U")


def to_device(batches: Iterator[Tensor | None], device: torch.device) -> Iterator[Tensor | None]:
    """Yield the batches of ``batches`` on ``device`` (``None`` passes through).

    On a CUDA device, the copy of batch ``n + 1`` is issued on a side stream when batch
    ``n`` is handed out, before the step of batch ``n`` is queued, so the copy engine moves
    it while the GPU runs that step. The batches come from page-locked memory (the loader
    pins them, a RAM cache gathers into pinned blocks), so the copy does not block the host
    either. The consumer's stream waits for the copy (an event, no host sync) and the
    batch's memory is tied to that stream, so the allocator does not reuse it while the
    step still reads it. A batch that is already on the device (a device cache, GPU
    decoding) is handed out as it is. Reading one batch ahead changes only when the next
    batch is read from ``batches``, not which batch it is.

    Elsewhere each batch is moved when it is handed out (nothing to overlap on the CPU).
    """
    if device.type != "cuda":
        return (b if b is None else b.to(device) for b in batches)
    stream = torch.cuda.Stream(device)

    def issue(batch: Tensor | None) -> tuple[Tensor | None, Any]:
        if batch is None or batch.device == device:
            return batch, None
        with torch.cuda.stream(stream):
            moved = batch.to(device, non_blocking=True)
        return moved, stream.record_event()

    def finish(issued: tuple[Tensor | None, Any]) -> Tensor | None:
        moved, event = issued
        if event is not None and moved is not None:
            current = torch.cuda.current_stream(device)
            current.wait_event(event)
            moved.record_stream(current)
        return moved

    return one_ahead(batches, issue, finish)


def one_ahead(
    items: Iterator[T], issue: Callable[[T], U], finish: Callable[[U], Any]
) -> Iterator[Any]:
    """``finish(issue(item))`` for each item in order, with ``issue`` called on the next
    item before the current one is finished and handed out."""
    pending: list[U] = []
    for item in items:
        pending.append(issue(item))
        if len(pending) == 2:
            yield finish(pending.pop(0))
    if pending:
        yield finish(pending.pop())
