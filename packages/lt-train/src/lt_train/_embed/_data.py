"""The images that ``embed`` reads: image files or WebDataset shards, in a fixed order, each
with the name it gets in the output file."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from torch.utils.data import DataLoader

from lt_data import auto_num_workers, collate_images, list_data

__all__ = ["EmbedImages", "collate_named", "open_images"]

logger = logging.getLogger(__name__)

Data = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]


@dataclass
class EmbedImages:
    """A loader of the images to embed.

    Attributes:
        loader: Yields the batches of :func:`collate_named`.
        count: The number of images (files, or samples with an image member in local
            shards); ``None`` for
            remote shards, whose samples cannot be counted before reading them.
        name: Maps an item's path to its name in the output file.
    """

    loader: DataLoader[dict[str, Any]]
    count: int | None
    name: Callable[[str], str]


def collate_named(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """:func:`lt_data.collate_images`, plus ``"paths"``: the paths of the good images."""
    batch = collate_images(samples)
    batch["paths"] = [str(s["path"]) for s in samples if s["image"] is not None]
    return batch


def open_images(
    data: Data,
    image_size: tuple[int, int],
    batch_size: int,
    num_workers: int | str,
    pin_memory: bool,
) -> EmbedImages:
    """The images of ``data`` decoded at ``image_size`` (shorter side resized, then a center
    crop), in batches, in a fixed order: the sorted file listing, or shard after shard (with
    several workers, the batches of the workers' shards take turns)."""
    listing = list_data(data, count=False)
    units = listing.read_units(batch_size)
    # auto: every unit (a batch of files, a shard) but the last one read ahead by a worker.
    workers = auto_num_workers(units) if num_workers == "auto" else int(num_workers)
    loader: DataLoader[dict[str, Any]] = DataLoader(
        listing.ordered(image_size),
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=collate_named,
        pin_memory=pin_memory,
        drop_last=False,
    )
    return EmbedImages(loader, listing.num_images, listing.output_name())
