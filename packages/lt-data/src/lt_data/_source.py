"""Image sources: the batches of a training epoch, from image files or WebDataset shards.

A trainer asks an :class:`ImageSource` for the full uint8 micro-batches of an epoch from
a position (epoch, optimizer step) and never needs to know what it reads: the source owns
its sampler or stream split, its DataLoader, the bad-image policy (every batch is full),
the decoded-image cache and its length. :meth:`DataListing.open <lt_data.DataListing>`
makes the right one; the two implementations differ only in the hooks at the bottom of
:class:`_LoaderSource`.
"""

from __future__ import annotations

import itertools
import logging
import weakref
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch
from torch import Tensor
from torch.utils.data import DataLoader

from lt_core import ConfigError
from lt_data._batch_filler import BatchFiller
from lt_data._cache import ImageCache
from lt_data._cache_policy import make_cache, resolve_cache
from lt_data._dataset import ImageDataset, collate_images
from lt_data._device_decode import DeviceDecoder
from lt_data._sampler import ResumableSampler
from lt_data._webdataset import WebImageDataset

logger = logging.getLogger(__name__)

__all__ = ["ImageSource", "SourceOptions", "stream_steps"]


@dataclass(frozen=True, kw_only=True)
class SourceOptions:
    """How a source reads for one training process.

    Attributes:
        decode_size: ``(height, width)`` the images are decoded at.
        micro_batch: Images of one batch of this process (one forward/backward).
        accumulation: Micro-batches of one optimizer step.
        rank: This process's rank.
        world_size: The number of training processes.
        num_workers: DataLoader worker processes (0: the process reads itself).
        seed: Seed of the sampling order, the stream's shuffling and the cached epochs.
        shuffle_buffer: Samples in a stream's shuffle buffer (shards only).
        device: The training device (for a device cache and GPU decoding).
        decode_on_device: Decode JPEGs in batches on the (CUDA) device, not in the workers.
        log_skipped: Name each skipped image in the log as it comes (process 0).
        loader_args: Extra ``DataLoader`` options, overriding the source's defaults
            (``pin_memory``, ``persistent_workers``, ``prefetch_factor``, ...).
        worker_init_fn: Called in each DataLoader worker when it starts.
    """

    decode_size: tuple[int, int]
    micro_batch: int
    accumulation: int = 1
    rank: int = 0
    world_size: int = 1
    num_workers: int = 0
    seed: int = 0
    shuffle_buffer: int = 1000
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    decode_on_device: bool = False
    log_skipped: bool = True
    loader_args: Mapping[str, Any] | None = None
    worker_init_fn: Callable[[int], None] | None = None

    @property
    def step_images(self) -> int:
        """Images of one optimizer step of this process."""
        return self.micro_batch * self.accumulation


class ImageSource(Protocol):
    """The images of a training run, epoch by epoch, for one process.

    Attributes:
        steps_per_epoch: Optimizer steps of an epoch (``accumulation`` micro-batches each).
        exact_length: Every process gets exactly ``steps_per_epoch`` steps an epoch. When
            ``False`` (a stream) an epoch may end early, and processes must agree when.
        cache_mode: ``"none"``, ``"ram"`` or ``"device"`` (see :meth:`use_cache`).
    """

    steps_per_epoch: int
    exact_length: bool
    cache_mode: str

    def use_cache(
        self, requested: str, *, epochs: int, local_processes: int, resumed: str | None = None
    ) -> str:
        """Decide where the decoded images are kept after the first epoch (the
        ``data_cache`` option ``requested``; ``resumed``: the interrupted run's choice)."""
        ...

    def batches(self, epoch: int, step: int = 0) -> Iterator[Tensor]:
        """The full uint8 ``(micro_batch, 3, H, W)`` batches of ``epoch`` from optimizer
        step ``step`` on (unreadable images replaced, see :class:`lt_data.BatchFiller`)."""
        ...

    def end_epoch(self) -> None:
        """An epoch ran to its end (a cache filled in it is complete)."""
        ...

    def prefill(self, epoch: int, step: int) -> None:
        """Refill the cache as an interrupted run had filled it by (``epoch``, ``step``)."""
        ...

    def take_skipped(self) -> list[tuple[str, str]]:
        """The (name, error) of the images skipped since the last call."""
        ...

    def close(self) -> None:
        """Stop the loader's worker processes now."""
        ...


class _LoaderSource:
    """The parts both sources share: a DataLoader, the filler, the cache, GPU decoding."""

    exact_length = True

    def __init__(self, items: Sequence[str], options: SourceOptions, num_images: int) -> None:
        self.options = options
        self.num_images = num_images
        self.dataset = self._dataset(items)
        self._check()
        self.steps_per_epoch = self._steps()
        if self.steps_per_epoch == 0:
            o = options
            raise ConfigError(
                f"Each of the {o.world_size} processes gets {num_images // o.world_size} "
                f"images an epoch, fewer than its share of a step ({o.step_images}, read in "
                f"batches of {o.micro_batch} by each of {max(1, o.num_workers)} workers). "
                "Lower batch_size or num_workers, or add images."
            )
        self.cache: ImageCache | None = None
        self.cache_mode = "none"
        self.filler = BatchFiller(self.dataset, options.micro_batch, log=options.log_skipped)
        self.decoder = (
            DeviceDecoder(options.decode_size, options.device) if options.decode_on_device else None
        )
        self._loader: DataLoader[Any] | None = None
        # The loader iterators made so far, for close() (weak: a finished epoch's go away).
        self._iterators: weakref.WeakSet[Any] = weakref.WeakSet()

    def use_cache(
        self, requested: str, *, epochs: int, local_processes: int, resumed: str | None = None
    ) -> str:
        o = self.options
        capacity = self.steps_per_epoch * o.step_images
        image_shape = (3, *o.decode_size)
        self.cache_mode = resolve_cache(
            requested,
            device=o.device,
            nbytes=ImageCache.nbytes(capacity, image_shape),
            local_processes=local_processes,
            epochs=epochs,
            quota_stream=self.fresh_each_epoch,
            resumed=resumed,
        )
        self.cache = make_cache(self.cache_mode, capacity, image_shape, o.device)
        return self.cache_mode

    def batches(self, epoch: int, step: int = 0) -> Iterator[Tensor]:
        return self._batches(epoch, step, self.filler)

    def _batches(self, epoch: int, step: int, filler: BatchFiller) -> Iterator[Tensor]:
        """From the cache once it is filled, else from the loader (through ``filler``),
        kept in the cache on the way."""
        o, cache = self.options, self.cache
        if cache is not None and cache.sealed:
            return cache.batches(
                o.micro_batch,
                self.steps_per_epoch * o.accumulation,
                seed=_cache_seed(o.seed, epoch, o.rank),
                start=step * o.accumulation,
            )
        images = (filler(self._decoded(b)) for b in self._loader_batches(epoch, step))
        return images if cache is None else _kept(images, cache)

    def _decoded(self, batch: dict[str, Any]) -> dict[str, Any]:
        return batch if self.decoder is None else self.decoder(batch)

    def _loader_batches(self, epoch: int, step: int) -> Iterator[dict[str, Any]]:
        batches = iter(self._position(epoch, step))
        self._iterators.add(batches)
        return self._skip(batches, step * self.options.accumulation)

    def end_epoch(self) -> None:
        if self.cache is not None and self.cache.count > 0:
            self.cache.seal()

    def prefill(self, epoch: int, step: int) -> None:
        """A resumed run refills the cache with what the interrupted run had cached by
        then (the first epoch up to where it stopped), in the same order, so it draws the
        same batches; the images are not logged or counted again."""
        if self.cache is None or (epoch == 0 and step == 0):
            return
        steps = self.steps_per_epoch if epoch > 0 else step
        accumulation = self.options.accumulation
        logger.info(
            "Refilling the data cache: decoding %d images of the first epoch again.",
            steps * accumulation * self.options.micro_batch,
        )
        quiet = BatchFiller(self.dataset, self.options.micro_batch, log=False)
        images = self._batches(0, 0, quiet)  # keeps each batch in the cache
        for _ in itertools.islice(images, steps * accumulation):
            pass
        del images  # stops the workers
        if epoch > 0:
            self.cache.seal()

    def take_skipped(self) -> list[tuple[str, str]]:
        return self.filler.take_skipped()

    def close(self) -> None:
        """Stop the loader's worker processes now. The trainer's workers may ignore
        SIGTERM (the main process stops a run), so one still alive at interpreter exit
        would block it forever: after an error the traceback keeps the iterator that owns
        them alive (a script's uncaught error, a notebook, a test)."""
        for batches in list(self._iterators):
            shutdown = getattr(batches, "_shutdown_workers", None)  # multi-process only
            if shutdown is not None:
                shutdown()  # asks each worker to exit, then sends SIGTERM ...
            for worker in getattr(batches, "_workers", ()):
                if worker.is_alive():  # ... so one stuck in a read is killed
                    worker.kill()
                    worker.join()

    @property
    def loader(self) -> DataLoader[Any]:
        """The DataLoader (made on first use: its options depend on the cache)."""
        if self._loader is None:
            o = self.options
            workers = o.num_workers
            defaults = {
                "pin_memory": o.device.type == "cuda",
                # With a cache the loader is read in one epoch only: its workers should end.
                "persistent_workers": workers > 0 and self.keeps_workers and self.cache is None,
                # At least 8 batches in flight, so a slow image does not stall the step.
                "prefetch_factor": max(2, -(-8 // workers)) if workers > 0 else None,
            }
            self._loader = DataLoader(  # type: ignore[call-overload]
                self.dataset,
                **{**defaults, **(o.loader_args or {})},
                batch_size=o.micro_batch,
                sampler=self.sampler,
                drop_last=self.sampler is None,  # (a sampler yields whole steps)
                num_workers=workers,
                collate_fn=collate_images,
                worker_init_fn=o.worker_init_fn if workers > 0 else None,
                # Worker seeds come from this generator, not the global RNG, whose stream
                # the augmentations use: a resumed run must draw the same augmentations.
                generator=torch.Generator().manual_seed(o.seed),
            )
        return self._loader

    # The hooks of the two sources.
    fresh_each_epoch = False  # every epoch reads new samples (a cache would repeat them)
    keeps_workers = True  # the loader's workers may live across epochs
    sampler: ResumableSampler | None = None

    def _dataset(self, items: Sequence[str]) -> Any:
        raise NotImplementedError

    def _check(self) -> None:
        pass

    def _steps(self) -> int:
        raise NotImplementedError

    def _position(self, epoch: int, step: int) -> DataLoader[Any]:
        raise NotImplementedError

    def _skip(self, batches: Iterator[Any], count: int) -> Iterator[Any]:
        return batches


class FileSource(_LoaderSource):
    """Image files, in a new seeded order each epoch; a resumed epoch starts at its step
    without reading the earlier images (:class:`ResumableSampler`)."""

    def __init__(self, files: Sequence[str], options: SourceOptions) -> None:
        self.sampler = ResumableSampler(
            len(files),
            batch_size=options.step_images,  # counts optimizer steps: resume at any step
            num_replicas=options.world_size,
            rank=options.rank,
            seed=options.seed,
        )
        super().__init__(files, options, len(files))

    def _dataset(self, items: Sequence[str]) -> ImageDataset:
        o = self.options
        return ImageDataset(items, o.decode_size, jpeg_bytes=o.decode_on_device)

    def _steps(self) -> int:
        assert self.sampler is not None
        return self.sampler.batches_per_epoch

    def _position(self, epoch: int, step: int) -> DataLoader[Any]:
        assert self.sampler is not None
        self.sampler.set_position(epoch, step)
        return self.loader


class ShardSource(_LoaderSource):
    """WebDataset shards, split across processes and workers; a resumed epoch replays the
    stream and drops its first batches (a stream cannot seek; with the same
    ``num_workers`` it is the same stream)."""

    exact_length = False
    keeps_workers = False  # they restart each epoch to see its new shard order

    def __init__(
        self, shards: Sequence[str], options: SourceOptions, num_images: int, quota: bool
    ) -> None:
        self.quota = quota
        self.fresh_each_epoch = quota
        super().__init__(shards, options, num_images)

    def _check(self) -> None:
        # Here, not in a worker: fewer shards than ranks fails before the model is built,
        # and the warning of idle workers reaches the main process's log.
        self.dataset.check_split(self.options.num_workers)

    def _steps(self) -> int:
        return stream_steps(self.num_images, self.options)

    def _dataset(self, items: Sequence[str]) -> WebImageDataset:
        o = self.options
        return WebImageDataset(
            list(items),
            o.decode_size,
            shuffle_buffer=o.shuffle_buffer,
            # Counted shards: one pass an epoch, every sample once (readers end unevenly, and
            # the epoch ends with the first). A quota: epoch_size samples, shards reread.
            epoch_size=self.num_images if self.quota else None,
            seed=o.seed,
            rank=o.rank,
            world_size=o.world_size,
            jpeg_bytes=o.decode_on_device,
        )

    def _position(self, epoch: int, step: int) -> DataLoader[Any]:
        self.dataset.set_epoch(epoch)
        return self.loader

    def _skip(self, batches: Iterator[Any], count: int) -> Iterator[Any]:
        if count:
            logger.info("Skipping %d batches of the stream to the resumed position.", count)
        for _ in range(count):
            next(batches, None)
        return batches


def stream_steps(num_images: int, options: SourceOptions) -> int:
    """Optimizer steps a process's DataLoader yields from a stream of ``num_images`` an
    epoch: each worker reads its share of the process's share and drops its last partial
    batch."""
    per_rank = num_images // options.world_size
    workers = max(1, options.num_workers)
    shares = [per_rank // workers + (w < per_rank % workers) for w in range(workers)]
    return sum(share // options.micro_batch for share in shares) // options.accumulation


def _kept(images: Iterator[Tensor], cache: ImageCache) -> Iterator[Tensor]:
    for batch in images:
        cache.add(batch)
        yield batch


def _cache_seed(seed: int, epoch: int, rank: int) -> int:
    """The seed of a cached epoch's order: distinct per epoch and process."""
    return (seed * 1_000_003 + epoch) * 65_537 + rank
