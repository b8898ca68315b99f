"""The training loop on lightning-fabric: ``train(config) -> out folder``.

Reads in one sitting: ``train`` checks everything (``plan_run``), launches Fabric, then
``_fit`` runs the epochs. State for checkpoints is a plain dict.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import torch
from lightning_fabric import Fabric
from lightning_fabric.loggers import TensorBoardLogger
from lightning_fabric.strategies import DDPStrategy
from torch.utils.data import DataLoader
from tqdm import tqdm

from lt_core import ConfigError, DataError, EmbeddingModel, to_dict
from lt_data import ImageDataset, build_view_transform, collate_images
from lt_train._config import TrainConfig
from lt_train._memory_format import supports_channels_last
from lt_train._metrics import JsonlWriter, StepTimer
from lt_train._optim import build_optimizer, lr_at_step, scaled_lr, set_lr, warmup_steps
from lt_train._run_dir import RunDir, log_to_file
from lt_train._setup import Plan, plan_run

logger = logging.getLogger(__name__)

__all__ = ["train"]


def train(config: TrainConfig) -> Path:
    """Pretrain ``config.model`` with ``config.method`` on ``config.data``; return the out path.

    Every check runs before any file is written. Then the loop writes into the out folder:
    ``checkpoints/last.ckpt``, ``exported_models/exported_last.pt`` (the ``state_dict`` of
    ``wrapper.get_model()``), ``metrics.jsonl``, ``train.log``, ``config.json`` and
    TensorBoard events under ``tensorboard/``.
    """
    plan = plan_run(config)
    fabric = _make_fabric(plan)
    if config.batch_size % fabric.world_size:
        raise ConfigError(
            f"batch_size={config.batch_size} is the global batch size and must be divisible by "
            f"the number of processes ({fabric.world_size})."
        )
    fabric.launch()
    run = RunDir(config.out)
    if fabric.is_global_zero:
        run.prepare(config.overwrite)
    fabric.barrier()
    with log_to_file(run.log if fabric.is_global_zero else None, console=fabric.is_global_zero):
        _fit(fabric, plan, run)
    return run.root


def _make_fabric(plan: Plan) -> Fabric:
    config = plan.config
    strategy: Any = config.strategy
    if strategy == "auto" and (config.devices not in (1, "auto") or config.num_nodes > 1):
        strategy = "ddp"
    if strategy == "ddp":
        # Wrapped models often hold layers that the features never use (a classifier head).
        strategy = DDPStrategy(find_unused_parameters=True)
    loggers = []
    if "tensorboard" in config.loggers:
        loggers.append(TensorBoardLogger(root_dir=config.out, name="tensorboard", version=""))
    devices = 1 if config.devices == "auto" and plan.accelerator == "cpu" else config.devices
    return Fabric(
        accelerator=plan.accelerator,
        devices=devices,
        num_nodes=config.num_nodes,
        strategy=strategy,
        precision=plan.precision,  # type: ignore[arg-type]
        loggers=loggers,
    )


def _fit(fabric: Fabric, plan: Plan, run: RunDir) -> None:
    config = plan.config
    fabric.seed_everything(config.seed, workers=True)
    memory_format = torch.contiguous_format
    if config.channels_last and supports_channels_last(plan.wrapper, plan.image_size):
        memory_format = torch.channels_last
    model = EmbeddingModel(plan.wrapper, embed_dim=config.embed_dim, pool=True)
    model.to(memory_format=memory_format)  # type: ignore[call-overload]
    method = plan.method_cls(model, plan.method_args, plan.transform_args)
    transform = build_view_transform(plan.recipe).to(fabric.device)
    optim_name = plan.method_cls.default_optimizer if config.optim == "auto" else config.optim
    base_lr = (
        config.optim_args.lr if config.optim_args.lr is not None else plan.method_cls.default_lr
    )
    weight_decay = (
        config.optim_args.weight_decay
        if config.optim_args.weight_decay is not None
        else plan.method_cls.default_weight_decay
    )
    lr = scaled_lr(base_lr, config.batch_size)
    optimizer = build_optimizer(
        optim_name, method.param_groups(), lr=lr, weight_decay=weight_decay, args=config.optim_args
    )
    method, optimizer = fabric.setup(method, optimizer)
    dataset = ImageDataset(plan.files, plan.image_size)
    loader = DataLoader(
        dataset,
        batch_size=config.batch_size // fabric.world_size,
        shuffle=True,
        drop_last=True,
        num_workers=plan.num_workers,
        collate_fn=collate_images,
        pin_memory=plan.accelerator == "cuda",
        persistent_workers=plan.num_workers > 0,
    )
    loader = fabric.setup_dataloaders(loader, move_to_device=False)
    steps_per_epoch = len(loader)
    max_steps = config.epochs * steps_per_epoch
    warmup = warmup_steps(config.optim_args, config.epochs, steps_per_epoch)
    fabric.seed_everything(config.seed + fabric.global_rank, workers=True)  # distinct augmentations

    if fabric.is_global_zero:
        run.config.write_text(
            json.dumps(_config_record(plan, optim_name, lr, weight_decay), indent=2)
        )
    logger.info(
        "Pretraining %s with %s on %d images for %d epochs (%d steps of %d images), "
        "%s x%d, precision %s, %d data workers, optimizer %s lr %.3g (base %.3g per 256 images), "
        "memory format %s.",
        type(plan.wrapper).__name__,
        plan.method_cls.name,
        len(plan.files),
        config.epochs,
        max_steps,
        config.batch_size,
        plan.accelerator,
        fabric.world_size,
        plan.precision,
        plan.num_workers,
        optim_name,
        lr,
        base_lr,
        str(memory_format).removeprefix("torch."),
    )
    jsonl = (
        JsonlWriter(run.metrics) if fabric.is_global_zero and "jsonl" in config.loggers else None
    )
    state: dict[str, Any] = {"method": method, "optimizer": optimizer, "epoch": 0, "step": 0}
    skipped_total = 0
    bar = tqdm(
        total=max_steps,
        disable=not (fabric.is_global_zero and config.progress_bar),
        unit="step",
        dynamic_ncols=True,
    )
    timer = StepTimer()
    start = time.perf_counter()
    step = 0
    local_batch = config.batch_size // fabric.world_size
    # The last good batch stands in for a batch whose images were all unreadable: every
    # process must step on every batch, or the gradient all-reduce of the others would hang.
    spare: torch.Tensor | None = None
    for epoch in range(config.epochs):
        method.train()
        skipped: list[tuple[str, str]] = []
        for batch in loader:
            timer.data_ready()
            skipped.extend(batch["skipped"])
            if fabric.is_global_zero:
                _log_skipped(batch["skipped"])
            images = batch["images"]
            if len(images) == 0:
                images = spare if spare is not None else _draw_readable(dataset, local_batch)
            images = _refill(images, local_batch)
            spare = images
            images = images.to(fabric.device, non_blocking=True)
            with torch.no_grad():
                views = [v.contiguous(memory_format=memory_format) for v in transform(images)]
            lr_now = set_lr(
                optimizer,
                lr_at_step(
                    step,
                    max_steps=max_steps,
                    warmup=warmup,
                    min_ratio=config.optim_args.min_lr_ratio,
                ),
            )
            out = method(views, step=step, max_steps=max_steps, steps_per_epoch=steps_per_epoch)
            fabric.backward(out["loss"])
            if config.optim_args.gradient_clip_norm is not None:
                fabric.clip_gradients(
                    method, optimizer, max_norm=config.optim_args.gradient_clip_norm
                )
            method.on_before_optimizer_step(step=step, steps_per_epoch=steps_per_epoch)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            method.on_after_optimizer_step(step=step, max_steps=max_steps)
            step += 1
            timer.step_done(len(images) * fabric.world_size)
            bar.update(1)
            if step % config.log_every_n_steps == 0 or step == max_steps:
                metrics = {k: float(v.detach()) for k, v in out.items()}
                metrics.update(timer.summary(), lr=lr_now, epoch=epoch)
                timer.reset()
                bar.set_postfix(
                    loss=f"{metrics['loss']:.4f}",
                    img_s=f"{metrics['images_per_s']:.0f}",
                    data_wait=f"{metrics['data_wait']:.0%}",
                )
                fabric.log_dict(metrics, step=step)
                if jsonl is not None:
                    jsonl.write({"step": step, **metrics})
        skipped_total += _gather_skipped(fabric, skipped)
        state.update(epoch=epoch + 1, step=step)
        fabric.save(run.last_checkpoint, state)
        logger.info("Epoch %d/%d done, step %d.", epoch + 1, config.epochs, step)
    bar.close()
    elapsed = time.perf_counter() - start
    if fabric.is_global_zero:
        torch.save(plan.wrapper.get_model().state_dict(), run.exported_last)  # type: ignore[operator]
        summary = {
            "event": "end",
            "step": step,
            "epochs": config.epochs,
            "train_time_s": elapsed,
            "images_per_s": step * config.batch_size / max(elapsed, 1e-9),
            "skipped_images": skipped_total,
        }
        if jsonl is not None:
            jsonl.write(summary)
            jsonl.close()
    for lg in fabric.loggers:
        lg.finalize("success")
    if skipped_total:
        logger.warning(
            "Skipped %d unreadable image(s); their names are listed above.", skipped_total
        )
    logger.info("Done in %.1f s. Exported model: %s", elapsed, run.exported_last)
    fabric.barrier()


def _log_skipped(skipped: list[tuple[str, str]], rank: int | None = None) -> None:
    where = f" (process {rank})" if rank else ""
    for path, error in skipped:
        logger.warning("Skipped unreadable image%s %s: %s", where, path, error)


def _gather_skipped(fabric: Fabric, skipped: list[tuple[str, str]]) -> int:
    """Number of images skipped this epoch by all processes. Process 0 logs the names the
    other processes skipped (it logged its own as they came), so train.log lists them all."""
    if fabric.world_size == 1:
        return len(skipped)
    gathered: list[Any] = [None] * fabric.world_size
    torch.distributed.all_gather_object(gathered, skipped)
    if fabric.is_global_zero:
        for rank, names in enumerate(gathered):
            if rank > 0:
                _log_skipped(names, rank)
    return sum(len(names) for names in gathered)


def _draw_readable(dataset: ImageDataset, count: int) -> torch.Tensor:
    """``count`` images decoded from random indices of ``dataset``, for when a process has
    no good image yet. Fails only if no image of the dataset is readable."""
    images: list[torch.Tensor] = []
    for index in torch.randperm(len(dataset)).tolist():
        sample = dataset[index]
        if sample["image"] is not None:
            images.append(sample["image"])
            if len(images) == count:
                break
    if not images:
        raise DataError(f"None of the {len(dataset)} images could be read; see train.log.")
    return _refill(torch.stack(images), count)


def _refill(images: torch.Tensor, size: int) -> torch.Tensor:
    """Keep the batch size constant when bad images were dropped (DDP gathers need equal
    sizes on every process): repeat random good images of the batch."""
    if len(images) >= size:
        return images
    extra = torch.randint(len(images), (size - len(images),))
    return torch.cat([images, images[extra]])


def _config_record(plan: Plan, optim: str, lr: float, weight_decay: float) -> dict[str, Any]:
    config = plan.config
    record = {k: v for k, v in to_dict(config).items() if k != "model"}
    record["model"] = (
        config.model if isinstance(config.model, str) else type(config.model).__qualname__
    )
    record.update(
        method=plan.method_cls.name,
        method_args=to_dict(plan.method_args),
        transform_args=to_dict(plan.transform_args),
        resolved={
            "optimizer": optim,
            "lr": lr,
            "weight_decay": weight_decay,
            "accelerator": plan.accelerator,
            "precision": plan.precision,
            "num_workers": plan.num_workers,
            "num_images": len(plan.files),
        },
    )
    return record
