"""ImageCache: filled once, then every cached image dealt once an epoch, reproducibly."""

from __future__ import annotations

import pytest
import torch

from lt_core import ConfigError
from lt_data import ImageCache, available_host_memory


def _images(start: int, count: int) -> torch.Tensor:
    """Images whose pixels all hold their own number, so a batch names its images."""
    return (
        torch.arange(start, start + count, dtype=torch.uint8)
        .view(-1, 1, 1, 1)
        .expand(count, 3, 4, 4)
        .contiguous()
    )


def _ids(batch: torch.Tensor) -> list[int]:
    return batch[:, 0, 0, 0].tolist()


def _filled(count: int, capacity: int | None = None) -> ImageCache:
    cache = ImageCache(capacity or count, (3, 4, 4))
    for start in range(0, count, 8):
        cache.add(_images(start, min(8, count - start)))
    cache.seal()
    return cache


def test_every_cached_image_once_an_epoch_in_a_new_order() -> None:
    cache = _filled(64)
    epoch1 = [i for b in cache.batches(16, 4, seed=1) for i in _ids(b)]
    epoch2 = [i for b in cache.batches(16, 4, seed=2) for i in _ids(b)]
    assert sorted(epoch1) == sorted(epoch2) == list(range(64))
    assert epoch1 != epoch2
    assert epoch1 != list(range(64))


def test_same_seed_same_batches_and_start_continues_them() -> None:
    cache = _filled(64)
    full = [_ids(b) for b in cache.batches(16, 4, seed=7)]
    assert full == [_ids(b) for b in cache.batches(16, 4, seed=7)]
    assert [_ids(b) for b in cache.batches(16, 4, seed=7, start=2)] == full[2:]


def test_fewer_images_than_the_epoch_needs_are_padded_with_repeats() -> None:
    cache = _filled(40, capacity=64)
    assert cache.count == 40
    batches = list(cache.batches(16, 4, seed=0))
    assert [len(b) for b in batches] == [16, 16, 16, 16]
    ids = [i for b in batches for i in _ids(b)]
    assert set(ids) == set(range(40))  # all of them, then 24 repeats
    assert sorted(ids[:40]) == list(range(40))


def test_overflow_is_dropped_and_bad_input_is_refused() -> None:
    cache = ImageCache(10, (3, 4, 4))
    cache.add(_images(0, 8))
    cache.add(_images(8, 8))
    assert cache.count == 10
    assert _ids(cache.images) == list(range(10))
    with pytest.raises(ValueError, match="uint8 images of shape"):
        cache.add(torch.zeros(2, 3, 5, 5, dtype=torch.uint8))
    with pytest.raises(ValueError, match="uint8"):
        cache.add(torch.zeros(2, 3, 4, 4))
    cache.seal()
    with pytest.raises(RuntimeError, match="sealed"):
        cache.add(_images(0, 1))
    with pytest.raises(RuntimeError, match="empty"):
        next(ImageCache(4, (3, 4, 4)).batches(2, 2, seed=0))
    with pytest.raises(ConfigError, match="capacity"):
        ImageCache(0, (3, 4, 4))
    with pytest.raises(ConfigError, match="image_shape"):
        ImageCache(4, (3, 4))  # type: ignore[arg-type]


def test_size_and_host_memory() -> None:
    assert ImageCache.nbytes(50_000, (3, 32, 32)) == 153_600_000
    assert ImageCache(5, (3, 32, 32)).images.nbytes == ImageCache.nbytes(5, (3, 32, 32))
    available = available_host_memory()
    assert available is None or available > 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="page-locked memory needs CUDA")
def test_a_pinned_cache_serves_pinned_batches() -> None:
    cache = ImageCache(8, (3, 4, 4), pin_memory=True)
    cache.add(torch.arange(8, dtype=torch.uint8).view(8, 1, 1, 1).expand(8, 3, 4, 4))
    cache.seal()
    batches = list(cache.batches(4, 2, seed=0))
    assert all(b.is_pinned() for b in batches)
    assert sorted(torch.cat(batches)[:, 0, 0, 0].tolist()) == list(range(8))
