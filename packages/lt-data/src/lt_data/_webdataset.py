"""Stream images from WebDataset tar shards (local files, http(s) URLs or pipes)."""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Iterator
from typing import Any

import torch
from torch.utils.data import IterableDataset, get_worker_info

from lt_core import ConfigError, DataError
from lt_data._decode import NamedBytesIO, check_image_size, decode_image_unchecked
from lt_data._device_decode import read_encoded
from lt_data._shardlist import IMAGE_MEMBER_SUFFIXES, Shards, is_image_suffix, list_shards

__all__ = ["WebImageDataset"]

logger = logging.getLogger(__name__)


class WebImageDataset(IterableDataset[dict[str, Any]]):
    """Decode the images of WebDataset tar shards, split across ranks and workers.

    Yields the same dicts as :class:`lt_data.ImageDataset`, so :func:`lt_data.collate_images`
    batches them: ``"image"`` (uint8 ``(3, H, W)`` or ``None``), ``"index"`` (always
    ``-1``: a stream has no stable index), ``"path"`` (``"<shard url>/<key>.<member>"``,
    for example ``"shards/train-000003.tar/cat/img_001.jpg"``), ``"error"`` and
    ``"image_size"``.

    A sample's image is its member with an image extension (``jpg``, ``jpeg``, ``png``,
    ``webp``, ``ppm``, ``bmp``, ``tif``, ``tiff``, ``pgm``, in any letter case; other members
    such as ``cls`` or ``json`` are ignored). It is decoded exactly like a file (see
    :func:`lt_data.decode_image`). Nothing raises on bad data: a member that does not
    decode, a sample without an image, and a shard that cannot be opened or is truncated
    (the samples before the damage are kept) each yield one item with ``image=None`` and
    the error, which :func:`lt_data.collate_images` drops and lists in ``"skipped"``; shard
    errors are also logged as warnings.

    Splitting: each epoch, every reader (``rank * num_workers + worker`` of ``world_size *
    num_workers`` DataLoader workers over all ranks) reads every ``readers``-th shard of
    the same shard order, so no sample is read twice and all are read once. Keep
    ``num_workers`` and ``set_epoch`` the same on every rank. With fewer shards than
    readers, some readers idle (a warning says so): write more, smaller shards.

    Args:
        urls: A brace pattern (``"shards/train-{000000..000127}.tar"``), a shard, or a list
            of shards or patterns: local paths, ``http(s)://`` or ``pipe:`` URLs, or
            anything ``webdataset.gopen`` opens; local wildcard patterns (``"shards/*.tar"``)
            are expanded in name order. Local shards are checked up front
            (:class:`~lt_core.DataError` naming the pattern); remote ones cannot be
            checked cheaply, so an unreachable one shows up as a skipped shard while
            reading.
        image_size: ``(height, width)`` of the decoded images.
        shuffle_buffer: Samples in the shuffle buffer; ``0`` keeps the shard order and the
            order inside shards. When on, the shard order is shuffled too. Shuffling is
            deterministic for a given ``seed``, epoch, rank and worker count.
        epoch_size: Samples per epoch over all ranks (each rank yields
            ``epoch_size // world_size``, split across its workers); defines ``len()``.
            Without resampling, a reader that runs out of shards starts over on them,
            unless a whole pass gave no readable image (it stops short then, with a warning).
            ``None``: one pass over the shards, or an endless stream with ``resampled``.
        seed: Seed of the shard order, shuffle buffer and resampling.
        resampled: Draw shards at random with replacement (like
            ``webdataset.ResampledShards``) instead of splitting them: every reader can
            read every shard, for few shards or an endless stream.
        rank: This process's rank; default ``torch.distributed``'s when initialized, else 0.
        world_size: The number of ranks; default ``torch.distributed``'s, else 1.
        jpeg_bytes: Send JPEG members undecoded, for :class:`lt_data.DeviceDecoder` (see
            :class:`lt_data.ImageDataset`).

    Raises:
        DataError: The pattern names missing local shards, a wildcard matches no file, or
            there are no shards.
        ConfigError: A bad ``image_size``, ``shuffle_buffer``, ``epoch_size`` or rank.
    """

    def __init__(
        self,
        urls: Shards,
        image_size: tuple[int, int],
        *,
        shuffle_buffer: int = 1000,
        epoch_size: int | None = None,
        seed: int = 0,
        resampled: bool = False,
        rank: int | None = None,
        world_size: int | None = None,
        jpeg_bytes: bool = False,
    ) -> None:
        super().__init__()
        self.image_size = check_image_size(image_size)
        self.jpeg_bytes = jpeg_bytes
        if not isinstance(shuffle_buffer, int) or shuffle_buffer < 0:
            raise ConfigError(
                f"shuffle_buffer must be an int >= 0 (0 turns shuffling off), got "
                f"{shuffle_buffer!r}. Fix: pass for example shuffle_buffer=1000."
            )
        if epoch_size is not None and (not isinstance(epoch_size, int) or epoch_size < 1):
            raise ConfigError(
                f"epoch_size must be a positive int or None, got {epoch_size!r}. Fix: pass "
                "the number of samples per epoch, for example epoch_size=100_000."
            )
        if (rank is None) != (world_size is None) or (
            world_size is not None and not (rank is not None and 0 <= rank < world_size)
        ):
            raise ConfigError(
                f"Pass both rank and world_size with 0 <= rank < world_size, or neither, got "
                f"rank={rank!r}, world_size={world_size!r}."
            )
        self.shards = list_shards(urls)
        self.shuffle_buffer = shuffle_buffer
        self.epoch_size = epoch_size
        self.seed = seed
        self.resampled = resampled
        self.epoch = 0
        self._rank, self._world_size = rank, world_size
        self._checked: tuple[int, int] | None = None  # (ranks, workers) of check_split

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch that seeds the shard order and shuffling; call it on every rank
        before each epoch (DataLoader workers get it when they start, so not with
        ``persistent_workers=True``)."""
        self.epoch = epoch

    def _node(self) -> tuple[int, int]:
        if self._rank is not None and self._world_size is not None:
            return self._rank, self._world_size
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return torch.distributed.get_rank(), torch.distributed.get_world_size()
        return 0, 1

    def __len__(self) -> int:
        """Samples this rank yields per epoch: ``epoch_size // world_size``."""
        if self.epoch_size is None:
            raise TypeError(
                "A WebImageDataset without epoch_size has no length (the number of samples "
                "in the shards is unknown until they are read). Fix: pass epoch_size."
            )
        return self.epoch_size // self._node()[1]

    def __iter__(self) -> Iterator[dict[str, Any]]:
        rank, world_size = self._node()
        info = get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        reader, readers = rank * num_workers + worker, world_size * num_workers
        quota = None
        if self.epoch_size is not None:
            share = self.epoch_size // world_size
            quota = share // num_workers + (worker < share % num_workers)
        if not self.resampled and self._checked != (world_size, num_workers):
            self._check_split(world_size, num_workers, warn=reader == 0)
        count = 0
        for item in self._items(reader, readers):
            if quota is not None and count >= quota:
                return
            yield item
            count += 1

    def check_split(self, num_workers: int = 0) -> None:
        """Check the shards against the readers: ``world_size`` ranks times ``num_workers``
        DataLoader workers (0: the process itself reads). Each reader iterating checks it
        too (the first one warns), but from a worker the warning misses the main process's
        log handlers: call it there before the loader starts, and the workers skip it.

        Raises:
            DataError: Fewer shards than ranks (without ``resampled``).
        """
        if not self.resampled:
            world_size = self._node()[1]
            self._check_split(world_size, max(1, num_workers), warn=True)
            self._checked = (world_size, max(1, num_workers))

    def _check_split(self, world_size: int, num_workers: int, warn: bool) -> None:
        n, readers = len(self.shards), world_size * num_workers
        if n < world_size:
            raise DataError(
                f"{n} shard(s) for {world_size} ranks: every rank needs at least one shard. "
                "Fix: write more, smaller shards (lightly_train.make_shards or "
                "lt_data.make_shards with a smaller max_count), run fewer processes, or "
                "(WebImageDataset) pass resampled=True with an epoch_size."
            )
        if n < readers and warn:
            logger.warning(
                "%d shard(s) for %d readers (%d rank(s) x %d DataLoader worker(s)): %d "
                "reader(s) get no shard and idle. Fix: write more, smaller shards "
                "(make_shards(..., max_count=...)) or use fewer workers.",
                n, readers, world_size, num_workers, readers - n,
            )  # fmt: skip

    def _items(self, reader: int, readers: int) -> Iterator[dict[str, Any]]:
        if self.resampled:
            rng = random.Random(f"{self.seed}:{self.epoch}:{reader}:resample")
            shards = iter(lambda: rng.choice(self.shards), None)  # endless
            yield from self._pass(shards, reader, 0)
            return
        order = list(self.shards)
        if self.shuffle_buffer:  # the same order on every reader, so the split is disjoint
            random.Random(f"{self.seed}:{self.epoch}:shards").shuffle(order)
        mine = order[reader::readers]
        passes = 0
        while mine:  # one pass, or passes until the quota of epoch_size is met
            readable = False
            for item in self._pass(iter(mine), reader, passes):
                readable = readable or item["error"] is None
                yield item
            if self.epoch_size is None:
                return
            if not readable:  # another pass would only fail again (an unreachable URL)
                logger.warning(
                    "No readable image in a whole pass over %d shard(s) (%s%s): this reader "
                    "stops short of its share of epoch_size.",
                    len(mine), mine[0], ", ..." if len(mine) > 1 else "",
                )  # fmt: skip
                return
            passes += 1
            if self.shuffle_buffer:
                random.Random(f"{self.seed}:{self.epoch}:{reader}:{passes}").shuffle(mine)

    def _pass(self, shards: Iterator[str], reader: int, index: int) -> Iterator[dict[str, Any]]:
        """Decoded items of ``shards``, shuffled within this pass only."""
        samples = self._samples(shards)
        if self.shuffle_buffer:
            from webdataset.filters import shuffle  # type: ignore[import-untyped]

            rng = random.Random(f"{self.seed}:{self.epoch}:{reader}:{index}:buffer")
            samples = shuffle(self.shuffle_buffer, self.shuffle_buffer, rng=rng)(samples)
        return map(self._decode, samples)

    def _samples(self, shards: Iterator[str]) -> Iterator[dict[str, Any]]:
        """Raw samples, and one ``{"__error__": ...}`` record for each shard that fails."""
        from webdataset.gopen import gopen  # type: ignore[import-untyped]
        from webdataset.tariterators import (  # type: ignore[import-untyped]
            group_by_keys,
            tar_file_expander,
        )

        errors: list[str] = []

        def handler(exn: Exception) -> bool:
            errors.append(_describe(exn))
            return True  # skip the rest of the shard and go on

        empty_in_a_row = 0
        for url in shards:
            count = 0
            try:
                stream = gopen(url)
            except Exception as e:
                handler(e)
            else:
                try:
                    members = tar_file_expander([{"url": url, "stream": stream}], handler=handler)
                    for sample in group_by_keys(members, handler=handler):
                        yield sample
                        count += 1
                finally:  # also when the reader stops early (epoch_size reached)
                    _close_quietly(stream)
            if errors:
                logger.warning("Skipping the rest of the shard '%s' after: %s", url, errors[0])
                error = f"{errors[0]} (the rest of the shard is skipped)"
                yield {"__error__": error, "__url__": url}
                errors.clear()
            empty_in_a_row = 0 if count else empty_in_a_row + 1
            if self.resampled and empty_in_a_row > 10 * len(self.shards) + 10:
                raise DataError(
                    f"No sample in {empty_in_a_row} shard reads in a row from {self.shards[:3]}"
                    "...: the shards hold no samples or cannot be read. Fix: check them, e.g. "
                    "with `tar tf`, or rewrite them with lt_data.make_shards."
                )

    def _decode(self, sample: dict[str, Any]) -> dict[str, Any]:
        url = sample.get("__url__", "?")
        image, error = None, sample.get("__error__")
        extra: dict[str, Any] = {}
        if error is not None:
            path = url
        else:
            member = find_image_member(sample)
            key = sample.get("__key__", "?")
            path = f"{url}/{key}" + (f".{member}" if member else "")
            if member is None:
                members = sorted(k for k in sample if not k.startswith("__"))
                error = (
                    f"DataError: the sample has no image member (one of {', '.join(IMAGE_MEMBER_SUFFIXES)}"
                    f"), only: {', '.join(members) or 'none'}"
                )
            else:
                try:
                    if self.jpeg_bytes:
                        image, encoded, orientation = read_encoded(
                            sample[member], path, self.image_size
                        )
                        extra = {"encoded": encoded, "orientation": orientation}
                    else:
                        image = decode_image_unchecked(
                            NamedBytesIO(sample[member], path), self.image_size
                        )
                except Exception as e:
                    error = f"{type(e).__name__}: {e}"
        return {
            "image": image,
            "index": -1,
            "path": path,
            "error": error,
            "image_size": self.image_size,
            **extra,
        }


def find_image_member(sample: dict[str, Any]) -> str | None:
    """The member (lowercase suffix after the key) that holds the image, or None.

    An exact image suffix (``jpg``) wins over a longer one (``seg.png``, ``1.jpg``).
    """
    for key in IMAGE_MEMBER_SUFFIXES:
        if key in sample:
            return key
    longer = sorted(k for k in sample if not k.startswith("__") and is_image_suffix(k))
    return longer[0] if longer else None


# What curl's exit codes mean (webdataset reads http(s) URLs with curl).
_CURL_EXITS = {
    6: "the host name could not be resolved",
    7: "could not connect to the host",
    22: "the server answered with an HTTP error (e.g. 404: no such shard, 403: no access)",
    28: "the connection timed out",
    35: "the TLS handshake failed",
    52: "the server sent nothing",
    56: "the connection broke while receiving",
}
_EXIT = re.compile(r"^\(\((.*)\), \{.*\}\): exit (-?\d+)", re.S)


def _describe(exn: Exception) -> str:
    """A shard error for the log: webdataset appends the stream and URL to ``exn.args``
    (dropped here; the caller names the shard), and reports a failed pipe or curl as the
    repr of its Popen arguments, which becomes the command and what its exit code means."""
    message = str(getattr(exn, "strerror", None) or (exn.args[0] if exn.args else ""))
    exited = _EXIT.match(message)
    if exited is None:
        return f"{type(exn).__name__}: {message.split(' @ <')[0]}"
    command, code = exited.group(1), int(exited.group(2))
    if "'curl'" in command:
        meaning = _CURL_EXITS.get(code, "see 'man curl', EXIT CODES")
        return (
            f"{type(exn).__name__}: downloading the shard failed: curl exit code {code}, {meaning}"
        )
    shown = command.strip(",").strip()
    return f"{type(exn).__name__}: the command {shown} exited with status {code}"


def _close_quietly(stream: Any) -> None:
    """Close a shard stream; a pipe closed early reports a broken pipe, which is fine."""
    try:
        stream.close()
    except Exception:
        pass
