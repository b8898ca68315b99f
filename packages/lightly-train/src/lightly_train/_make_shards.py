"""``lightly_train.make_shards``: pack an image folder into WebDataset tar shards."""

from __future__ import annotations

import os

from lt_data import ShardStats
from lt_data import make_shards as _make_shards

__all__ = ["make_shards"]

PathLike = str | os.PathLike[str]


def make_shards(
    *,
    data: PathLike | list[PathLike],
    out: PathLike,
    max_count: int = 10_000,
    max_size: float = 3e9,
    pattern: str = "shard-%06d.tar",
    progress: bool = True,
) -> ShardStats:
    """Write the images of ``data`` into WebDataset tar shards in the new folder ``out``.

    Train on them with ``train(data=stats.pattern, ...)``. Each image is one sample keyed
    by its path relative to ``data``, its bytes unchanged; files that do not decode are
    skipped and listed at the end. See docs/data.md.

    Args:
        data: A folder of images (walked recursively), an image file, or a list of them.
        out: A new or empty folder for the shards.
        max_count: Images per shard at most; write at least as many shards as processes
            times data-loading workers.
        max_size: Bytes per shard, about.
        pattern: Shard file names, a ``%``-format of the shard number ending in ``.tar``.
        progress: Print progress to stderr.

    Returns:
        The shards, their brace pattern (``stats.pattern``), counts and skipped files.
    """
    return _make_shards(
        data, out, max_count=max_count, max_size=max_size, pattern=pattern, progress=progress
    )
