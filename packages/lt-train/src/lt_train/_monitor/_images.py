"""The fixed images the monitors embed: read once (or per check when too large to keep),
embedded in eval mode without augmentation, and gathered from all processes.

Every process embeds its own contiguous share of a list and :func:`gather_rows` joins the
shares in order on every process, so a check costs each of ``W`` processes ``1 / W`` of
the forward passes and no process waits in a collective while another works alone.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from lt_data import ImageDataset, WebImageDataset, collate_images

logger = logging.getLogger(__name__)

__all__ = ["ImageSet", "embed", "eval_mode", "gather_rows", "preserved_rng", "share"]

# A set of decoded images above this size is read from disk at every check instead.
CACHE_LIMIT_BYTES = 512 * 2**20


def share(count: int, rank: int, world_size: int) -> range:
    """The contiguous share ``[start, stop)`` of ``count`` items of process ``rank``."""
    per = -(-count // world_size)
    return range(min(count, rank * per), min(count, (rank + 1) * per))


class ImageSet:
    """Image files decoded at a fixed size, in order; unreadable ones are skipped and
    counted (never an error).

    Args:
        paths: The files (one process's share).
        size: ``(height, width)``: the shorter side resized, then a center crop
            (:func:`lt_data.decode_image`).
        num_workers: Loader processes when reading.
        cache: Keep the decoded images in memory when they take at most
            ``CACHE_LIMIT_BYTES``; else they are read again at every pass.
        what: Names the set in the warning about an unreadable image.
    """

    def __init__(
        self,
        paths: Sequence[str],
        size: tuple[int, int],
        num_workers: int,
        cache: bool = True,
        what: str = "Monitor sample",
    ) -> None:
        self.what = what
        self.paths = list(paths)
        self.size = size
        self.num_workers = num_workers
        self.skipped: list[tuple[str, str]] = []
        self._images: Tensor | None = None
        self._kept: Tensor | None = None
        self._read = False
        nbytes = len(self.paths) * 3 * size[0] * size[1]
        if cache and nbytes <= CACHE_LIMIT_BYTES:
            self._images, self._kept = self._load()

    def _loader(self, batch_size: int) -> Iterator[dict[str, Any]]:
        if not self.paths:
            return iter(())
        loader = DataLoader(
            ImageDataset(self.paths, self.size),
            batch_size=batch_size,
            num_workers=min(self.num_workers, max(0, len(self.paths) // batch_size)),
            collate_fn=collate_images,
            generator=torch.Generator(),  # the global random state is not drawn from
        )
        return iter(loader)

    def _load(self) -> tuple[Tensor, Tensor]:
        images, kept = [], []
        for batch in self._loader(64):
            self._note_skipped(batch["skipped"])
            images.append(batch["images"])
            kept.append(batch["indices"])
        self._read = True
        if not images:
            return torch.empty((0, 3, *self.size), dtype=torch.uint8), torch.empty(
                0, dtype=torch.int64
            )
        return torch.cat(images), torch.cat(kept)

    def _note_skipped(self, skipped: list[tuple[str, str]]) -> None:
        if self._read:
            return  # counted at the first pass
        for path, error in skipped:  # (not "Skipped ...": those lines are the training data's)
            logger.warning("%s: left out the unreadable image %s: %s", self.what, path, error)
        self.skipped += skipped

    def batches(self, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        """``(uint8 images (B, 3, H, W), their indices into paths)`` batches."""
        if self._images is not None and self._kept is not None:
            for start in range(0, len(self._images), batch_size):
                yield (
                    self._images[start : start + batch_size],
                    self._kept[start : start + batch_size],
                )
            return
        for batch in self._loader(batch_size):
            self._note_skipped(batch["skipped"])
            if len(batch["images"]):
                yield batch["images"], batch["indices"]
        self._read = True


def first_shard_samples(
    items: Sequence[str], count: int, size: tuple[int, int]
) -> tuple[list[str], Tensor, int]:
    """The first ``count`` readable samples of WebDataset shards in order, as
    ``(names "<shard>/<key>.<member>", uint8 images, skipped count)``."""
    names: list[str] = []
    images: list[Tensor] = []
    skipped = 0
    dataset = WebImageDataset(list(items), size, shuffle_buffer=0, rank=0, world_size=1)
    for item in dataset:
        if item["image"] is None:
            skipped += 1
            continue
        names.append(str(item["path"]))
        images.append(item["image"])
        if len(images) >= count:
            break
    stacked = torch.stack(images) if images else torch.empty((0, 3, *size), dtype=torch.uint8)
    return names, stacked, skipped


@torch.no_grad()
def embed(
    model: nn.Module,
    batches: Iterator[tuple[Tensor, Tensor]],
    device: torch.device,
    mean: Sequence[float],
    std: Sequence[float],
    memory_format: torch.memory_format = torch.contiguous_format,
    autocast: Any = None,
) -> tuple[Tensor, Tensor]:
    """Embed uint8 image batches: scaled to [0, 1], normalized with ``mean``/``std``, in
    ``memory_format``, under ``autocast`` (a context manager factory, e.g. Fabric's).

    Returns:
        ``(float32 embeddings (N, D) on the CPU, int64 indices (N,))``.
    """
    m = torch.tensor(mean, device=device).view(1, 3, 1, 1)
    s = torch.tensor(std, device=device).view(1, 3, 1, 1)
    out, kept = [], []
    for images, indices in batches:
        x = images.to(device, non_blocking=True).float().div_(255).sub_(m).div_(s)
        x = x.contiguous(memory_format=memory_format)
        if autocast is not None:
            with autocast():
                z = model(x)
        else:
            z = model(x)
        out.append(z.float().flatten(1).cpu())
        kept.append(indices.cpu())
    if not out:
        return torch.empty(0, 0), torch.empty(0, dtype=torch.int64)
    return torch.cat(out), torch.cat(kept)


def gather_rows(fabric: Any, rows: Tensor) -> Tensor:
    """The rows of every process's ``rows`` (the same trailing shape and dtype), rank 0's
    first, on every process (all processes must call it)."""
    if fabric.world_size == 1:
        return rows
    device = fabric.device
    # A process that read none of its images has no embedding width: (0, 0). The width
    # comes from the processes that have rows.
    width = rows.shape[1] if rows.ndim == 2 and rows.shape[0] else 0
    sizes = fabric.all_gather(torch.tensor([rows.shape[0], width], device=device)).view(-1, 2)
    counts = [int(c) for c in sizes[:, 0]]
    trailing = (int(sizes[:, 1].max()),) if rows.ndim == 2 else tuple(rows.shape[1:])
    rows = rows.reshape(rows.shape[0], *trailing)
    padded = torch.zeros((max(counts), *trailing), dtype=rows.dtype, device=device)
    padded[: rows.shape[0]] = rows.to(device)
    gathered = fabric.all_gather(padded)
    return torch.cat([gathered[r, :c] for r, c in enumerate(counts)]).cpu()


@contextmanager
def eval_mode(module: nn.Module) -> Iterator[None]:
    """``module`` in eval mode inside, each submodule's own mode restored after (a frozen
    part that trains in eval mode stays in it)."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


@contextmanager
def preserved_rng(device: torch.device) -> Iterator[None]:
    """The CPU random state (and the CUDA device's) as it was before, after the block: a
    check draws nothing a fixed-seed run would see."""
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices, device_type="cuda"):
        yield
