"""A sampler whose position can be saved and restored, so a resumed run reads exactly the
batches the killed run had not yet trained on."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch.utils.data import Sampler

__all__ = ["ResumableSampler"]


class ResumableSampler(Sampler[int]):
    """Shuffled indices of one process's share of the dataset, epoch by epoch.

    Every epoch draws a permutation from ``seed + epoch`` (its own generator, so the global
    RNG is untouched), takes ``rank::num_replicas`` of it, and trims to a multiple of
    ``batch_size`` so that every process runs the same number of full batches
    (the remainder is dropped, like ``drop_last=True``). Processes see disjoint images.

    ``set_position(epoch, start_batch)`` starts the next iteration at batch ``start_batch`` of
    that epoch: resuming mid-epoch skips the batches already trained on without reading them.

    Args:
        num_samples: Dataset size.
        batch_size: Batch size per process.
        num_replicas: Number of processes.
        rank: This process's rank.
        seed: Base seed of the permutations.
    """

    def __init__(
        self, num_samples: int, batch_size: int, num_replicas: int = 1, rank: int = 0, seed: int = 0
    ) -> None:
        self.num_samples = num_samples
        self.batch_size = batch_size
        self.num_replicas = num_replicas
        self.rank = rank
        self.seed = seed
        self.epoch = 0
        self.start_batch = 0

    @property
    def batches_per_epoch(self) -> int:
        return (self.num_samples // self.num_replicas) // self.batch_size

    def set_position(self, epoch: int, start_batch: int = 0) -> None:
        self.epoch = epoch
        self.start_batch = start_batch

    def __len__(self) -> int:
        return (self.batches_per_epoch - self.start_batch) * self.batch_size

    def __iter__(self) -> Iterator[int]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        order = torch.randperm(self.num_samples, generator=generator)
        mine = order[self.rank :: self.num_replicas][: self.batches_per_epoch * self.batch_size]
        start = self.start_batch * self.batch_size
        yield from mine[start:].tolist()
