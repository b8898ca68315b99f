"""Decoded images kept in memory (host or accelerator), so later epochs skip the loader."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator

import torch
from torch import Tensor

from lt_core import ConfigError

__all__ = ["ImageCache", "available_host_memory"]


class ImageCache:
    """A fixed-capacity store of decoded uint8 images, filled batch by batch in the first
    epoch and drawn from, in a new random order, in every later one.

    The cache holds one process's share of the data: what its loader yielded in one epoch,
    in order. :meth:`batches` then deals every cached image once an epoch (a seeded
    permutation), padded with random repeats when fewer images than ``capacity`` were
    cached (a stream that ended early, or bad images), so every epoch has the same number
    of full batches. Indexing the cache is one gather on its device: with ``device="cuda"``
    no image crosses the PCIe bus after the first epoch, and no decoding happens at all.

    Example::

        cache = ImageCache(len(dataset), (3, 32, 32), device="cuda")
        for batch in loader:  # epoch 0: decode, train, keep
            cache.add(batch["images"])
            ...
        cache.seal()
        for epoch in range(1, epochs):
            for images in cache.batches(256, len(dataset) // 256, seed=epoch):
                ...

    Args:
        capacity: The most images it will hold.
        image_shape: ``(channels, height, width)`` of every image.
        device: Where the images live (``"cpu"``, ``"cuda"``, a ``torch.device``).
        pin_memory: Page-lock a host cache, so copies to a GPU can run asynchronously.

    Raises:
        ConfigError: ``capacity`` < 1 or ``image_shape`` not three positive ints.
    """

    def __init__(
        self,
        capacity: int,
        image_shape: tuple[int, int, int],
        device: str | torch.device = "cpu",
        pin_memory: bool = False,
    ) -> None:
        if capacity < 1:
            raise ConfigError(f"ImageCache capacity must be >= 1, got {capacity}.")
        if len(image_shape) != 3 or not all(int(s) > 0 for s in image_shape):
            raise ConfigError(
                f"ImageCache image_shape must be (channels, height, width), got {image_shape}."
            )
        self.capacity = int(capacity)
        self.image_shape = tuple(int(s) for s in image_shape)
        self.images = torch.empty(
            (self.capacity, *self.image_shape),
            dtype=torch.uint8,
            device=device,
            pin_memory=pin_memory and torch.device(device).type == "cpu",
        )
        """The storage, ``(capacity, C, H, W)`` uint8; rows ``[:count]`` are filled."""
        self.count = 0
        """Images cached so far."""
        self.sealed = False
        """Whether the fill epoch has ended (:meth:`seal`)."""

    @staticmethod
    def nbytes(capacity: int, image_shape: tuple[int, int, int]) -> int:
        """The memory a cache of ``capacity`` images of ``image_shape`` takes."""
        return int(capacity) * math.prod(int(s) for s in image_shape)

    def add(self, images: Tensor) -> None:
        """Append a ``(B, C, H, W)`` uint8 batch (from any device); the excess beyond the
        capacity is dropped."""
        if self.sealed:
            raise RuntimeError("The cache is sealed: it was filled in an earlier epoch.")
        if images.dtype != torch.uint8 or tuple(images.shape[1:]) != self.image_shape:
            raise ValueError(
                f"ImageCache holds uint8 images of shape {self.image_shape}, got "
                f"{images.dtype} {tuple(images.shape[1:])}."
            )
        room = min(len(images), self.capacity - self.count)
        if room > 0:
            # Asynchronous only towards a GPU (a copy into host memory must be done when read).
            target = self.images[self.count : self.count + room]
            target.copy_(images[:room], non_blocking=target.device.type != "cpu")
            self.count += room

    def seal(self) -> None:
        """End the fill: from now on :meth:`batches` serves the cached images."""
        self.sealed = True

    def batches(
        self, batch_size: int, num_batches: int, seed: int, start: int = 0
    ) -> Iterator[Tensor]:
        """``num_batches`` batches of ``batch_size`` cached images, from batch ``start`` on.

        The order is a permutation of the cached images drawn from ``seed`` (same seed, same
        batches, so a resumed run continues exactly), extended with random repeats when
        the cache holds fewer than ``batch_size * num_batches`` images. Each batch is a new
        tensor on the cache's device; from a page-locked cache, a page-locked one (torch's
        pinned-memory allocator reuses its blocks once their copies are done), so that its
        copy to the GPU is asynchronous.
        """
        if self.count == 0:
            raise RuntimeError("The cache is empty: fill it with add() first.")
        generator = torch.Generator().manual_seed(seed)
        total = batch_size * num_batches
        order = torch.randperm(self.count, generator=generator)
        if total > self.count:
            extra = torch.randint(self.count, (total - self.count,), generator=generator)
            order = torch.cat([order, extra])
        order = order[:total].to(self.images.device)
        pinned = self.images.is_pinned()
        for b in range(start, num_batches):
            index = order[b * batch_size : (b + 1) * batch_size]
            out = torch.empty(
                (len(index), *self.image_shape),
                dtype=torch.uint8,
                device=self.images.device,
                pin_memory=pinned,
            )
            yield torch.index_select(self.images, 0, index, out=out)


def available_host_memory() -> int | None:
    """Bytes of host memory available to new allocations, or ``None`` if unknown: Linux's
    ``MemAvailable``, lowered to the room left under a cgroup (container) memory limit;
    elsewhere the free pages."""
    available: int | None = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    available = int(line.split()[1]) * 1024
                    break
    except OSError:
        try:
            available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None
    room = _cgroup_room()
    if room is not None:
        available = room if available is None else min(available, room)
    return available


def _cgroup_room() -> int | None:
    """Bytes left under this process's cgroup v2 memory limit, if it has one."""
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
        if limit == "max":
            return None
        with open("/sys/fs/cgroup/memory.current") as f:
            current = int(f.read().strip())
        return max(0, int(limit) - current)
    except (OSError, ValueError):
        return None
