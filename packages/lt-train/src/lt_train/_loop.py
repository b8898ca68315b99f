"""The loop: epochs of optimizer steps, metrics, checkpoints and stop checks, nothing else."""

from __future__ import annotations

import functools
import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import torch
from lightning_fabric import Fabric
from tqdm import tqdm

from lt_train._atomic import atomic_torch_save
from lt_train._bad_images import BatchFiller, gather_skipped
from lt_train._callbacks import RunCallbacks
from lt_train._checkpoint import CHECKPOINT_FORMAT, get_rng_state, save_checkpoint
from lt_train._components import Components
from lt_train._loggers import MetricLoggers
from lt_train._metrics import StepTimer
from lt_train._optim import lr_at_step, set_lr, warmup_steps
from lt_train._run_dir import RunDir
from lt_train._setup import Plan
from lt_train._speed._conv_grad import small_conv_grads, small_conv_grads_apply
from lt_train._speed._host_malloc import keep_freed_memory, keep_freed_memory_apply
from lt_train._speed._prefetch import to_device
from lt_train._stop import LossNotFiniteError, StopSignals, TrainingInterrupted, signal_name

logger = logging.getLogger(__name__)

__all__ = ["Progress", "fit"]

_NO_BAD_STEP = 2**62


@dataclass
class Progress:
    """Where the run stands; saved in every checkpoint."""

    epoch: int = 0
    step: int = 0
    step_in_epoch: int = 0
    max_steps: int = 0
    skipped_images: int = 0
    images: int = 0
    train_time_s: float = 0.0
    checkpoint_step: int | None = None

    @classmethod
    def from_checkpoint(cls, state: dict[str, Any] | None) -> Progress:
        if state is None:
            return cls()
        return cls(
            epoch=int(state["epoch"]),
            step=int(state["step"]),
            step_in_epoch=int(state["step_in_epoch"]),
            max_steps=int(state["max_steps"]),
            skipped_images=int(state["skipped_images"]),
            images=int(state["images"]),
            train_time_s=float(state["train_time_s"]),
            checkpoint_step=int(state["step"]),
        )


def fit(
    fabric: Fabric,
    plan: Plan,
    run: RunDir,
    parts: Components,
    progress: Progress,
    first_epoch: Any,
    filler: BatchFiller,
    stop: StopSignals,
    loggers: MetricLoggers | None,
) -> None:
    """Train from ``progress`` to the end; ``first_epoch`` yields the first epoch's batches."""
    config = plan.config
    method, optimizer = parts.method, parts.optimizer
    accum = config.gradient_accumulation_steps
    steps_per_epoch = parts.steps_per_epoch
    max_steps = progress.max_steps = plan.epochs * steps_per_epoch
    warmup = warmup_steps(config.optim_args, plan.epochs, steps_per_epoch)
    group = torch.distributed.new_group(backend="gloo") if fabric.world_size > 1 else None
    callbacks = RunCallbacks(config.callbacks, plan.epochs)  # type: ignore[arg-type]
    _log_start(fabric, plan, max_steps)  # before the bar, which would cut the line
    bar = tqdm(
        total=max_steps,
        initial=progress.step,
        disable=not (fabric.is_global_zero and config.progress_bar),
        unit="step",
        dynamic_ncols=True,
    )
    bad_step = torch.full((), _NO_BAD_STEP, dtype=torch.int64, device=fabric.device)
    timer = StepTimer()
    sync_skip = fabric.world_size > 1  # DDP: all-reduce gradients on the last micro-batch only
    save = functools.partial(_save, fabric, plan, run, parts, progress, filler, callbacks)
    # CPU: a faster weight gradient for convolutions with a tiny output (see _conv_grad).
    conv_grads = small_conv_grads_apply(fabric.device, config.compile)
    if keep_freed_memory_apply(fabric.device):  # CPU: no page faults for every step's tensors
        keep_freed_memory()
    try:
        batches = first_epoch
        started = time.perf_counter() - progress.train_time_s
        for epoch in range(progress.epoch, plan.epochs):
            if batches is None:
                batches = parts.epoch_images(epoch, 0, filler)
            batches = to_device(batches, fabric.device)  # CUDA: copies one batch ahead
            method.train()
            epoch_loss = torch.zeros((), device=fabric.device)
            epoch_steps = 0
            for _ in range(progress.step_in_epoch, steps_per_epoch):
                step_images = [next(batches, None) for _ in range(accum)]
                if _stream_ended(step_images, parts, group):
                    logger.info(
                        "The stream ended early at step %d of the epoch.", progress.step_in_epoch
                    )
                    break
                timer.data_ready()
                step = progress.step
                lr_now = set_lr(
                    optimizer,
                    lr_at_step(
                        step,
                        max_steps=max_steps,
                        warmup=warmup,
                        min_ratio=config.optim_args.min_lr_ratio,
                    ),
                )
                loss_sum = torch.zeros((), device=fabric.device)
                for micro, images in enumerate(step_images):
                    with torch.no_grad():
                        views = [
                            v.contiguous(memory_format=plan.memory_format)
                            for v in parts.transform(images)
                        ]
                    with fabric.no_backward_sync(method, enabled=sync_skip and micro < accum - 1):
                        with small_conv_grads(conv_grads):
                            out = method(
                                views,
                                step=step,
                                max_steps=max_steps,
                                steps_per_epoch=steps_per_epoch,
                            )
                        fabric.backward(out["loss"] / accum)
                    loss = out["loss"].detach()
                    loss_sum += loss
                    if callbacks.check_finite:
                        bad_step = torch.where(
                            torch.isfinite(loss), bad_step, torch.clamp(bad_step, max=step)
                        )
                if config.optim_args.gradient_clip_norm is not None:
                    fabric.clip_gradients(
                        method, optimizer, max_norm=config.optim_args.gradient_clip_norm
                    )
                method.on_before_optimizer_step(step=step, steps_per_epoch=steps_per_epoch)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                method.on_after_optimizer_step(step=step, max_steps=max_steps)
                progress.step += 1
                progress.step_in_epoch += 1
                epoch_loss += loss_sum / accum
                epoch_steps += 1
                progress.images += len(images) * accum * fabric.world_size
                timer.step_done(len(images) * accum * fabric.world_size)
                bar.update(1)
                if progress.step % config.log_every_n_steps == 0 or progress.step == max_steps:
                    _check_finite(fabric, bad_step, progress, run)
                    metrics = {k: float(v.detach()) for k, v in out.items()}
                    metrics.update(timer.summary(), loss=float(loss_sum) / accum, epoch=epoch)
                    callbacks.metrics(metrics, lr_now, fabric.device)
                    timer.reset()
                    bar.set_postfix(
                        loss=f"{metrics['loss']:.4f}",
                        img_s=f"{metrics['images_per_s']:.0f}",
                        data_wait=f"{metrics['data_wait']:.0%}",
                    )
                    if loggers is not None:
                        loggers.log(metrics, progress.step)
                received = stop.any_process(group)
                if callbacks.step_checkpoint_due(progress.step) or received:
                    progress.train_time_s = time.perf_counter() - started
                    save(bad_step)
                if received:
                    raise TrainingInterrupted(
                        _interrupt_message(received, progress, run), received, str(run.root)
                    )
            batches = None
            parts.end_epoch()
            progress.epoch += 1
            progress.step_in_epoch = 0
            progress.train_time_s = time.perf_counter() - started
            reason = callbacks.early_stop(_mean(fabric, epoch_loss, epoch_steps))
            if reason is not None:
                progress.epoch = plan.epochs  # the run is complete, as far as resume knows
            if callbacks.epoch_checkpoint_due(progress.epoch):
                save(bad_step)
            # (The last epoch's export is the final one, written once the run is done.)
            last = progress.epoch >= plan.epochs
            if fabric.is_global_zero and not last and callbacks.export_due(progress.epoch):
                export_model(plan.wrapper, run.exported_last)
            logger.info("Epoch %d/%d done, step %d.", epoch + 1, plan.epochs, progress.step)
            if reason is not None:
                logger.info("Early stopping after epoch %d: %s.", epoch + 1, reason)
                break
        if progress.checkpoint_step is None:  # epochs=0: still leave a checkpoint
            save(bad_step)
    finally:
        bar.close()


def _mean(fabric: Fabric, total: torch.Tensor, count: int) -> float:
    """The mean step loss of the epoch over all processes (a host sync, once an epoch)."""
    if count == 0:
        return math.nan
    mean = total / count
    if fabric.world_size > 1:
        mean = fabric.all_reduce(mean, reduce_op="mean")
    return float(mean)


def export_model(wrapper: torch.nn.Module, path: Any) -> None:
    """Write the ``state_dict`` of ``wrapper.get_model()`` (on the CPU) to ``path``."""
    state = wrapper.get_model().state_dict()  # type: ignore[operator]
    atomic_torch_save({k: v.detach().cpu() for k, v in state.items()}, path)


def _stream_ended(step_images: list[Any], parts: Components, group: Any) -> bool:
    """Whether a batch of this step is missing. Only a stream can end early (a reader
    without shards); with several processes, all stop the epoch if any one ran out."""
    if parts.sampler is not None:
        if any(images is None for images in step_images):
            raise RuntimeError("The data loader yielded fewer batches than its sampler.")
        return False
    ended = any(images is None for images in step_images)
    if group is not None:
        flag = torch.tensor([int(ended)])
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX, group=group)
        ended = bool(flag.item())
    return ended


def _log_start(fabric: Fabric, plan: Plan, max_steps: int) -> None:
    config = plan.config
    logger.info(
        "Pretraining %s with %s on %d images for %d epochs (%d steps of %d images%s), "
        "%s x%d, precision %s, %d data workers, optimizer %s lr %.3g (base %.3g per 256 images), "
        "memory format %s.",
        type(plan.wrapper).__name__,
        plan.method_cls.name,
        plan.num_images,
        plan.epochs,
        max_steps,
        config.batch_size * config.gradient_accumulation_steps,
        (
            f" in {config.gradient_accumulation_steps} accumulated batches of {config.batch_size}"
            if config.gradient_accumulation_steps > 1
            else ""
        ),
        plan.accelerator,
        fabric.world_size,
        plan.precision,
        plan.num_workers,
        plan.optimizer,
        plan.lr,
        plan.base_lr,
        str(plan.memory_format).removeprefix("torch."),
    )


def _check_finite(fabric: Fabric, bad_step: torch.Tensor, progress: Progress, run: RunDir) -> None:
    """Stop if any process saw a non-finite loss (a host sync: called on log steps and
    before every checkpoint, so a checkpoint never holds weights trained on a NaN)."""
    first = bad_step.clone()
    if fabric.world_size > 1:
        torch.distributed.all_reduce(first, op=torch.distributed.ReduceOp.MIN)
    if int(first) == _NO_BAD_STEP:
        return
    if progress.checkpoint_step is not None:
        where = (
            f"The last checkpoint, {run.last_checkpoint} (step {progress.checkpoint_step}), "
            "holds the last good weights: start a new run from them with "
            f"checkpoint='{run.last_checkpoint}' and a new out folder."
        )
    else:
        where = "No checkpoint was written before it."
    raise LossNotFiniteError(
        f"The loss became NaN or infinite at step {int(first) + 1} of {progress.max_steps}; "
        f"training stopped. {where} Try a lower learning rate (optim_args.lr), "
        "precision='32-true' instead of mixed precision, or gradient clipping "
        "(optim_args.gradient_clip_norm=1.0)."
    )


def _save(
    fabric: Fabric,
    plan: Plan,
    run: RunDir,
    parts: Components,
    progress: Progress,
    filler: BatchFiller,
    callbacks: RunCallbacks,
    bad_step: torch.Tensor,
) -> None:
    """Write a checkpoint (all processes take part; process 0 writes)."""
    _check_finite(fabric, bad_step, progress, run)
    callbacks.saved()
    options = callbacks.checkpoint
    progress.skipped_images += gather_skipped(fabric, filler.take_skipped())
    rng: list[Any] = [get_rng_state()]
    if fabric.world_size > 1:
        rng = [None] * fabric.world_size
        torch.distributed.all_gather_object(rng, get_rng_state())
    if fabric.is_global_zero:
        state: dict[str, Any] = {
            "format": CHECKPOINT_FORMAT,
            "method": parts.unwrapped.state_dict(),
            "optimizer": parts.optimizer.state_dict(),
            "precision": fabric.strategy.precision.state_dict(),
            "epoch": progress.epoch,
            "step": progress.step,
            "step_in_epoch": progress.step_in_epoch,
            "max_steps": progress.max_steps,
            "skipped_images": progress.skipped_images,
            "images": progress.images,
            "train_time_s": progress.train_time_s,
            "rng": rng,
            "run": plan.fingerprint,
            "model_prefix": _model_prefix(parts.unwrapped, plan.wrapper),
            "data_cache": parts.cache_mode,
        }
        if options.save_weights_only:  # not resumable: for checkpoint= only
            for key in ("optimizer", "precision", "rng"):
                state.pop(key)
        path = save_checkpoint(
            state,
            run.checkpoints,
            options.save_top_k,
            options.filename or "epoch={epoch}-step={step}",
        )
        if options.verbose:
            logger.info("Saved checkpoint %s (step %d).", path, progress.step)
        run.write_state("running", step=progress.step, max_steps=progress.max_steps)
        if progress.checkpoint_step is None:
            run.discard_previous()  # the new run has proven itself: drop the old one
    progress.checkpoint_step = progress.step


def _model_prefix(method: torch.nn.Module, wrapper: torch.nn.Module) -> str | None:
    """Where ``wrapper.get_model()`` sits in the method's ``state_dict`` (e.g.
    ``"model.wrapper._model."``), so an export can be cut from a checkpoint alone."""
    target = wrapper.get_model()  # type: ignore[operator]
    for name, module in method.named_modules():
        if module is target:
            return f"{name}." if name else ""
    return None


def _interrupt_message(signum: int, progress: Progress, run: RunDir) -> str:
    return (
        f"Stopped by {signal_name(signum)} at step {progress.step} of {progress.max_steps}; "
        f"checkpoint saved to {run.last_checkpoint}. Resume with the same options and "
        f"resume_interrupted=True (CLI: resume_interrupted=true)."
    )
