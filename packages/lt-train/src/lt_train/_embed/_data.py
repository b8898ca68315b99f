"""The images that ``embed`` reads: image files or WebDataset shards, in a fixed order, each
with the name it gets in the output file."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from torch.utils.data import DataLoader

from lt_data import (
    ImageDataset,
    WebImageDataset,
    collate_images,
    count_samples,
    is_webdataset_source,
    list_image_files,
    list_shards,
)

__all__ = ["EmbedImages", "auto_num_workers", "collate_named", "open_images", "output_name"]

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


def auto_num_workers(batches: int) -> int:
    """The CPU cores this process may use minus one (the main process), at most one
    worker per batch."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(0, min(cores - 1, batches))


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
    if is_webdataset_source(data):
        shards = list_shards(data)
        dataset: Any = WebImageDataset(shards, image_size, shuffle_buffer=0)
        count = count_samples(shards, images_only=True)
        units = len(shards)
        name: Callable[[str], str] = str
    else:
        files = list_image_files(data)
        dataset = ImageDataset(files, image_size)
        count = len(files)
        units = -(-count // batch_size)
        name = output_name(data)
    workers = auto_num_workers(units) if num_workers == "auto" else int(num_workers)
    loader: DataLoader[dict[str, Any]] = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=workers,
        collate_fn=collate_named,
        pin_memory=pin_memory,
        drop_last=False,
    )
    return EmbedImages(loader, count, name)


def output_name(data: Data) -> Callable[[str], str]:
    """The name of each listed file in the output: relative to ``data`` when it is one
    folder; for a list, a file as given, and a folder's files as
    ``os.path.join(<the folder as given>, <relative path>)``."""
    entries = [data] if isinstance(data, str | os.PathLike) else list(data)
    given = [os.fspath(e) for e in entries]
    absolute = [os.path.abspath(os.path.expanduser(g)) for g in given]
    files = {a: g for a, g in zip(absolute, given) if not os.path.isdir(a)}
    folders = [
        (a if a.endswith(os.sep) else a + os.sep, g)
        for a, g in zip(absolute, given)
        if os.path.isdir(a)
    ]
    relative = len(entries) == 1 and len(folders) == 1

    def name(path: str) -> str:
        if path in files:
            return files[path]
        for prefix, folder in folders:
            if path.startswith(prefix):
                rel = path[len(prefix) :]
                return rel if relative else os.path.join(folder, rel)
        return path

    return name
