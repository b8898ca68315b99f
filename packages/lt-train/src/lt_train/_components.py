"""Build the parts of a run from its plan: model, method, optimizer, data and views."""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from lightning_fabric import Fabric
from torch import nn
from torch.utils.data import DataLoader

from lt_core import ConfigError, EmbeddingModel
from lt_data import ImageDataset, WebImageDataset, build_view_transform, collate_images
from lt_methods import Method
from lt_train._optim import build_optimizer
from lt_train._sampler import ResumableSampler
from lt_train._setup import Plan

logger = logging.getLogger(__name__)

__all__ = ["Components", "build_components"]


@dataclass
class Components:
    """The parts of a run, set up by Fabric (``method`` and ``optimizer`` are wrapped)."""

    method: Any
    optimizer: Any
    transform: nn.Module
    dataset: ImageDataset | WebImageDataset
    sampler: ResumableSampler | None  # None for a WebDataset stream
    loader: DataLoader[Any]
    micro_batch: int  # images per process per forward/backward
    accumulation: int  # micro-batches per optimizer step
    steps_per_epoch: int  # optimizer steps

    @property
    def unwrapped(self) -> Method:
        return self.method.module if hasattr(self.method, "module") else self.method  # type: ignore[no-any-return]

    def epoch_batches(self, epoch: int, start_step: int = 0) -> Iterator[dict[str, Any]]:
        """The loader's batches of ``epoch`` from optimizer step ``start_step`` on.

        Files: the sampler starts at that step without reading the earlier images. Shards:
        the stream of the epoch is replayed and its first batches are read and dropped (a
        stream cannot seek); with the same ``num_workers`` it is the same stream.
        """
        if self.sampler is not None:
            self.sampler.set_position(epoch, start_step)
            return iter(self.loader)
        assert isinstance(self.dataset, WebImageDataset)
        self.dataset.set_epoch(epoch)
        batches = iter(self.loader)
        skip = start_step * self.accumulation
        if skip:
            logger.info("Skipping %d batches of the stream to the resumed position.", skip)
        for _ in range(skip):
            next(batches, None)
        return batches


def _ignore_stop_signals(worker_id: int) -> None:
    # The main process decides when to stop (after the current step, with a checkpoint):
    # a worker that died from Ctrl-C or SIGTERM would break the step it is feeding.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def build_components(fabric: Fabric, plan: Plan) -> Components:
    config = plan.config
    model = EmbeddingModel(plan.wrapper, embed_dim=config.embed_dim, pool=True)
    model.to(memory_format=plan.memory_format)  # type: ignore[call-overload]
    method = plan.method_cls(model, plan.method_args, plan.transform_args)
    if plan.init_weights is not None:
        _load_init_weights(method, plan.init_weights, config.checkpoint)
    optimizer = build_optimizer(
        plan.optimizer,
        method.param_groups(),
        lr=plan.lr,
        weight_decay=plan.weight_decay,
        args=config.optim_args,
    )
    if plan.resume is not None:
        method.load_state_dict(plan.resume["method"])
    method, optimizer = fabric.setup(method, optimizer)
    if plan.resume is not None:
        optimizer.load_state_dict(plan.resume["optimizer"])
        fabric.strategy.precision.load_state_dict(plan.resume.get("precision") or {})
    accumulation = config.gradient_accumulation_steps
    micro_batch = config.batch_size // fabric.world_size
    per_process = micro_batch * accumulation  # images of one optimizer step
    dataset: ImageDataset | WebImageDataset
    sampler: ResumableSampler | None = None
    if plan.streaming:
        dataset = WebImageDataset(
            plan.files,
            plan.image_size,
            shuffle_buffer=config.shuffle_buffer,
            # Counted shards: one pass an epoch, every sample once (readers end unevenly, and
            # the epoch ends with the first). A given epoch_size: a quota, shards reread.
            epoch_size=config.epoch_size,
            seed=config.seed,
            rank=fabric.global_rank,
            world_size=fabric.world_size,
        )
        per_rank = plan.num_images // fabric.world_size
        steps_per_epoch = _stream_steps(per_rank, max(1, plan.num_workers), micro_batch)
        steps_per_epoch //= accumulation
    else:
        dataset = ImageDataset(plan.files, plan.image_size)
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
    loader = DataLoader(  # type: ignore[call-overload]
        dataset,
        **{**_loader_options(plan), **(config.loader_args or {})},
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
        method=method,
        optimizer=optimizer,
        transform=transform,
        dataset=dataset,
        sampler=sampler,
        loader=loader,
        micro_batch=micro_batch,
        accumulation=accumulation,
        steps_per_epoch=steps_per_epoch,
    )


def _loader_options(plan: Plan) -> dict[str, Any]:
    """DataLoader options that ``loader_args`` may override."""
    workers = plan.num_workers
    return {
        "pin_memory": plan.accelerator == "cuda",
        # A stream's workers must restart each epoch to see its new shard order.
        "persistent_workers": workers > 0 and not plan.streaming,
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
