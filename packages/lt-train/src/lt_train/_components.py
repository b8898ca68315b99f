"""Build the parts of a run from its plan: model, method, optimizer, data and views."""

from __future__ import annotations

import itertools
import logging
import signal
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from lightning_fabric import Fabric
from torch import nn
from torch.utils.data import DataLoader

from lt_core import ConfigError, EmbeddingModel
from lt_data import (
    DeviceDecoder,
    ImageCache,
    ImageDataset,
    WebImageDataset,
    build_view_transform,
    collate_images,
)
from lt_methods import Method
from lt_train._data_cache import make_cache, resolve_cache
from lt_train._optim import build_optimizer
from lt_train._sampler import ResumableSampler
from lt_train._setup import Plan

logger = logging.getLogger(__name__)

__all__ = ["Components", "build_data", "build_model"]


@dataclass
class Components:
    """The parts of a run: the data side from :func:`build_data`, then ``method`` and
    ``optimizer`` from :func:`build_model`, set up by Fabric (wrapped)."""

    transform: nn.Module
    dataset: ImageDataset | WebImageDataset
    sampler: ResumableSampler | None  # None for a WebDataset stream
    loader: DataLoader[Any]
    micro_batch: int  # images per process per forward/backward
    accumulation: int  # micro-batches per optimizer step
    steps_per_epoch: int  # optimizer steps
    cache: ImageCache | None = None  # data_cache: the decoded images of this process
    cache_mode: str = "none"
    seed: int = 0
    rank: int = 0
    decoder: DeviceDecoder | None = None  # decode="gpu": decodes the workers' JPEG bytes
    method: Any = None
    optimizer: Any = None
    # The loader iterators made so far, for close() (weak: a finished epoch's go away).
    _iterators: weakref.WeakSet[Any] = field(default_factory=weakref.WeakSet, repr=False)

    def close(self) -> None:
        """Stop the loader's worker processes now. The workers ignore SIGTERM (the main
        process stops the run), so one still alive at interpreter exit would block it
        forever: after ``train()`` raised, the traceback keeps the iterator that owns them
        alive (a script's uncaught error, a notebook, a test)."""
        for batches in list(self._iterators):
            shutdown = getattr(batches, "_shutdown_workers", None)  # multi-process only
            if shutdown is not None:
                shutdown()  # asks each worker to exit, then sends SIGTERM (ignored) ...
            for worker in getattr(batches, "_workers", ()):
                if worker.is_alive():  # ... so one stuck in a read is killed
                    worker.kill()
                    worker.join()

    @property
    def unwrapped(self) -> Method:
        return self.method.module if hasattr(self.method, "module") else self.method  # type: ignore[no-any-return]

    def epoch_images(
        self, epoch: int, start_step: int, filler: Callable[[dict[str, Any]], torch.Tensor]
    ) -> Iterator[torch.Tensor]:
        """The full micro-batches of ``epoch`` from optimizer step ``start_step`` on: from
        the cache once it is filled, else from the loader (through ``filler``, which
        skips bad images), kept in the cache on the way."""
        cache = self.cache
        if cache is not None and cache.sealed:
            return cache.batches(
                self.micro_batch,
                self.steps_per_epoch * self.accumulation,
                seed=_cache_seed(self.seed, epoch, self.rank),
                start=start_step * self.accumulation,
            )
        images = (filler(self.decoded(b)) for b in self.epoch_batches(epoch, start_step))
        return images if cache is None else _kept(images, cache)

    def decoded(self, batch: dict[str, Any]) -> dict[str, Any]:
        """The batch with its JPEG bytes decoded on the device (decode="gpu")."""
        return batch if self.decoder is None else self.decoder(batch)

    def end_epoch(self) -> None:
        """An epoch ran to its end: a cache filled in it is complete."""
        if self.cache is not None and self.cache.count > 0:
            self.cache.seal()

    def prefill_cache(
        self, epoch: int, step_in_epoch: int, filler: Callable[[dict[str, Any]], torch.Tensor]
    ) -> None:
        """A resumed run refills the cache with what the interrupted run had cached by
        then (the first epoch up to where it stopped), in the same order, so it draws the
        same batches; ``filler`` must not log or count (those images were counted)."""
        if self.cache is None or (epoch == 0 and step_in_epoch == 0):
            return
        steps = self.steps_per_epoch if epoch > 0 else step_in_epoch
        logger.info(
            "Refilling the data cache: decoding %d images of the first epoch again.",
            steps * self.accumulation * self.micro_batch,
        )
        images = self.epoch_images(0, 0, filler)  # keeps each batch in the cache
        for _ in itertools.islice(images, steps * self.accumulation):
            pass
        del images  # stops the workers
        if epoch > 0:
            self.cache.seal()

    def epoch_batches(self, epoch: int, start_step: int = 0) -> Iterator[dict[str, Any]]:
        """The loader's batches of ``epoch`` from optimizer step ``start_step`` on.

        Files: the sampler starts at that step without reading the earlier images. Shards:
        the stream of the epoch is replayed and its first batches are read and dropped (a
        stream cannot seek); with the same ``num_workers`` it is the same stream.
        """
        if self.sampler is not None:
            self.sampler.set_position(epoch, start_step)
        else:
            assert isinstance(self.dataset, WebImageDataset)
            self.dataset.set_epoch(epoch)
        batches = iter(self.loader)
        self._iterators.add(batches)
        if self.sampler is not None:
            return batches
        skip = start_step * self.accumulation
        if skip:
            logger.info("Skipping %d batches of the stream to the resumed position.", skip)
        for _ in range(skip):
            next(batches, None)
        return batches


def _kept(images: Iterator[torch.Tensor], cache: ImageCache) -> Iterator[torch.Tensor]:
    for batch in images:
        cache.add(batch)
        yield batch


def _cache_seed(seed: int, epoch: int, rank: int) -> int:
    """The seed of a cached epoch's order: distinct per epoch and process."""
    return (seed * 1_000_003 + epoch) * 65_537 + rank


def _ignore_stop_signals(worker_id: int) -> None:
    # The main process decides when to stop (after the current step, with a checkpoint):
    # a worker that died from Ctrl-C or SIGTERM would break the step it is feeding.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def build_model(fabric: Fabric, plan: Plan, parts: Components) -> None:
    """The model, method and optimizer of the run (restored from the checkpoint when
    resuming), set up by Fabric, into ``parts``."""
    config = plan.config
    model = EmbeddingModel(plan.wrapper, embed_dim=config.embed_dim, pool=True)
    model.to(memory_format=plan.memory_format)  # type: ignore[call-overload]
    method = plan.method_cls(model, plan.method_args, plan.transform_args)
    if plan.init_weights is not None:
        _load_init_weights(method, plan.init_weights, config.checkpoint)
    if config.compile:
        # In place: the state_dict keys (checkpoints, export) stay those of the module.
        model.compile()
        logger.info("Compiling the model with torch.compile (the first steps take longer).")
    # Fused SGD/AdamW updates: one kernel for all parameters (on a 2-core CPU a ResNet-18
    # SGD step takes 8 ms instead of 20 ms), on the device the parameters already sit on.
    fused = fabric.device.type in ("cuda", "cpu")
    if fused:
        method.to(fabric.device)
    optimizer = build_optimizer(
        plan.optimizer,
        method.param_groups(),
        lr=plan.lr,
        weight_decay=plan.weight_decay,
        args=config.optim_args,
        fused=fused,
    )
    if plan.resume is not None:
        method.load_state_dict(plan.resume["method"])
    method, optimizer = fabric.setup(method, optimizer)
    if plan.resume is not None:
        optimizer.load_state_dict(plan.resume["optimizer"])
        fabric.strategy.precision.load_state_dict(plan.resume.get("precision") or {})
    parts.method, parts.optimizer = method, optimizer


def build_data(fabric: Fabric, plan: Plan) -> Components:
    """The data side of the run: dataset, sampler, loader, data cache, views and GPU
    decoder; no model yet, so the loader's workers can start while it is built."""
    config = plan.config
    accumulation = config.gradient_accumulation_steps
    micro_batch = config.batch_size // fabric.world_size
    per_process = micro_batch * accumulation  # images of one optimizer step
    dataset: ImageDataset | WebImageDataset
    sampler: ResumableSampler | None = None
    if plan.streaming:
        dataset = WebImageDataset(
            plan.files,
            plan.decode_size,
            shuffle_buffer=config.shuffle_buffer,
            # Counted shards: one pass an epoch, every sample once (readers end unevenly, and
            # the epoch ends with the first). A given epoch_size: a quota, shards reread.
            epoch_size=config.epoch_size,
            seed=config.seed,
            rank=fabric.global_rank,
            world_size=fabric.world_size,
            jpeg_bytes=plan.decode == "gpu",
        )
        # Here, not in a worker: fewer shards than ranks fails before the model is built,
        # and the warning of idle workers reaches train.log.
        dataset.check_split(plan.num_workers)
        per_rank = plan.num_images // fabric.world_size
        steps_per_epoch = _stream_steps(per_rank, max(1, plan.num_workers), micro_batch)
        steps_per_epoch //= accumulation
    else:
        dataset = ImageDataset(plan.files, plan.decode_size, jpeg_bytes=plan.decode == "gpu")
        # The sampler counts in optimizer steps (all micro-batches of a step), so a resumed
        # run can start at any step of an epoch.
        sampler = ResumableSampler(
            len(dataset),
            batch_size=per_process,
            num_replicas=fabric.world_size,
            rank=fabric.global_rank,
            seed=config.seed,
        )
        steps_per_epoch = sampler.batches_per_epoch
    if steps_per_epoch == 0:
        raise ConfigError(
            f"Each of the {fabric.world_size} processes gets {plan.num_images // fabric.world_size} "
            f"images an epoch, fewer than its share of a step ({per_process}, read in batches "
            f"of {micro_batch} by each of {max(1, plan.num_workers)} workers). Lower "
            "batch_size or num_workers, or add images."
        )
    capacity = steps_per_epoch * per_process
    image_shape = (3, *plan.decode_size)
    cache_mode = resolve_cache(
        config.data_cache,
        device=fabric.device,
        nbytes=ImageCache.nbytes(capacity, image_shape),
        local_processes=max(1, fabric.world_size // max(1, config.num_nodes)),
        epochs=plan.epochs,
        quota_stream=plan.streaming and config.epoch_size is not None,
        # A checkpoint from before data_cache existed: that run read every epoch from disk.
        resumed=None if plan.resume is None else plan.resume.get("data_cache", "none"),
    )
    cache = make_cache(cache_mode, capacity, image_shape, fabric.device)
    loader = DataLoader(  # type: ignore[call-overload]
        dataset,
        **{**_loader_options(plan, cached=cache is not None), **(config.loader_args or {})},
        batch_size=micro_batch,
        sampler=sampler,
        drop_last=plan.streaming,  # (files: the sampler already yields whole steps)
        num_workers=plan.num_workers,
        collate_fn=collate_images,
        worker_init_fn=_ignore_stop_signals if plan.num_workers > 0 else None,
        # Worker seeds come from this generator, not the global RNG, whose stream the
        # augmentations use: a resumed run must draw the same augmentations.
        generator=torch.Generator().manual_seed(config.seed),
    )
    # Not fabric.setup_dataloaders: its wrapper calls ``sampler.set_epoch(<iterations so
    # far>)``, which would restart a resumed run's data at epoch 0.
    transform = build_view_transform(plan.recipe).to(fabric.device)
    return Components(
        transform=transform,
        dataset=dataset,
        sampler=sampler,
        loader=loader,
        micro_batch=micro_batch,
        accumulation=accumulation,
        steps_per_epoch=steps_per_epoch,
        cache=cache,
        cache_mode=cache_mode,
        seed=config.seed,
        rank=fabric.global_rank,
        decoder=DeviceDecoder(plan.decode_size, fabric.device) if plan.decode == "gpu" else None,
    )


def _loader_options(plan: Plan, cached: bool) -> dict[str, Any]:
    """DataLoader options that ``loader_args`` may override."""
    workers = plan.num_workers
    return {
        "pin_memory": plan.accelerator == "cuda",
        # A stream's workers must restart each epoch to see its new shard order; with a
        # cache the loader is read in one epoch only, and its workers should then end.
        "persistent_workers": workers > 0 and not plan.streaming and not cached,
        # At least 8 batches in flight, so a slow image does not stall the step.
        "prefetch_factor": max(2, -(-8 // workers)) if workers > 0 else None,
    }


def _stream_steps(per_rank: int, workers: int, batch: int) -> int:
    """Full batches a rank's DataLoader yields from a stream of ``per_rank`` samples: each
    worker reads its share and drops its last partial batch."""
    shares = [per_rank // workers + (w < per_rank % workers) for w in range(workers)]
    return sum(share // batch for share in shares)


def _load_init_weights(method: Method, init: dict[str, Any], path: str | None) -> None:
    """Start from saved weights: a checkpoint's model (and heads, if of the same method)
    or an exported model ``state_dict``."""
    state = init["state"]
    if init["kind"] == "model":
        target = method.model.wrapper.get_model()  # type: ignore[operator]
        result = target.load_state_dict(state, strict=False)
        what = "the exported model"
    else:
        own = method.state_dict()
        same = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        model_keys = [k for k in own if k.startswith("model.")]
        missing_model = [k for k in model_keys if k not in same]
        if missing_model:
            raise ConfigError(
                f"checkpoint='{path}' does not fit this model: {len(missing_model)} of its "
                f"{len(model_keys)} model weights are missing or of another shape (e.g. "
                f"'{missing_model[0]}'). Fix: pass a checkpoint of the same model and embed_dim."
            )
        method.load_state_dict(same, strict=False)
        result = None
        what = f"the model and {len(same) - len(model_keys)} method weights"
    if result is not None and (result.missing_keys or result.unexpected_keys):
        raise ConfigError(
            f"checkpoint='{path}' does not fit this model: missing keys "
            f"{result.missing_keys[:5]}, unexpected keys {result.unexpected_keys[:5]}. Fix: "
            "pass the export of the same model."
        )
    logger.info("Initialized %s from %s.", what, path)
