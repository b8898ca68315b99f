"""The bad-image policy: unreadable images are skipped, named in train.log and counted,
and every step still trains on a full batch (every DDP process must step, or the gradient
all-reduce of the others would wait forever)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

import torch

from lt_core import DataError
from lt_data._dataset import ImageDataset
from lt_data._device_decode import sample_image
from lt_data._webdataset import WebImageDataset

logger = logging.getLogger(__name__)

__all__ = ["BatchFiller", "draw_readable", "log_skipped", "refill"]


def log_skipped(skipped: list[tuple[str, str]], rank: int | None = None) -> None:
    """Name each skipped image and why in the log (``rank``: the process that skipped it)."""
    where = f" (process {rank})" if rank else ""
    for path, error in skipped:
        logger.warning("Skipped unreadable image%s %s: %s", where, path, error)


def draw_readable(dataset: ImageDataset | WebImageDataset, count: int) -> torch.Tensor:
    """``count`` images decoded from random indices of ``dataset`` (a stream: from its
    start), for when a process has no good image yet. Fails only if no image of the
    dataset is readable."""
    images: list[torch.Tensor] = []
    samples: Iterable[dict[str, Any]] = (
        (dataset[i] for i in torch.randperm(len(dataset)).tolist())
        if isinstance(dataset, ImageDataset)
        else iter(dataset)
    )
    for sample in samples:
        image = sample_image(sample)  # decode="gpu": JPEGs come as bytes
        if image is not None:
            images.append(image)
            if len(images) == count:
                break
    if not images:
        if isinstance(dataset, ImageDataset):
            raise DataError(
                f"None of the {len(dataset)} images could be read (the first ones are named "
                "above). Fix: check that the data holds valid image files."
            )
        shards = dataset.shards
        named = ", ".join(f"'{s}'" for s in shards[:3]) + (", ..." if len(shards) > 3 else "")
        raise DataError(
            f"No image of the {len(shards)} shard(s) {named} could be read: every sample "
            "was skipped (the first ones are named above: a shard that cannot be opened or "
            "downloaded, members that do not decode, samples without an image member). "
            "Fix: check the URLs or paths and the shards (tar tf <shard>), or write them "
            "with lightly_train.make_shards."
        )
    return refill(torch.stack(images), count)


def refill(images: torch.Tensor, size: int) -> torch.Tensor:
    """Keep the batch size constant when bad images were dropped (DDP gathers need equal
    sizes on every process): repeat random good images of the batch."""
    if len(images) >= size:
        return images
    extra = torch.randint(len(images), (size - len(images),))
    return torch.cat([images, images[extra]])


class BatchFiller:
    """Turns each loader batch into a full batch of readable images.

    The last good batch stands in for a batch whose images were all unreadable; a process
    with no good batch yet draws readable images from the dataset.
    """

    def __init__(self, dataset: ImageDataset | WebImageDataset, batch_size: int, log: bool) -> None:
        self.dataset = dataset
        self.batch_size = batch_size
        self.log = log
        self.spare: torch.Tensor | None = None
        self.skipped: list[tuple[str, str]] = []

    def __call__(self, batch: dict[str, Any]) -> torch.Tensor:
        self.skipped.extend(batch["skipped"])
        if self.log:
            log_skipped(batch["skipped"])
        images = batch["images"]
        if len(images) == 0:
            images = (
                self.spare
                if self.spare is not None
                else draw_readable(self.dataset, self.batch_size)
            )
        images = refill(images, self.batch_size)
        self.spare = images
        return images

    def take_skipped(self) -> list[tuple[str, str]]:
        skipped, self.skipped = self.skipped, []
        return skipped
