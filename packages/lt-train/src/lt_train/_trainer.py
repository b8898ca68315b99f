"""The trainer: one object that owns a pretraining run, from its checks to its export.

Reads in one sitting, in the spirit of litgpt's ``setup -> fit``: :meth:`Trainer.setup`
checks everything and resolves every derived value (nothing written);
:meth:`Trainer.start` launches Fabric, opens the image source, builds the method and
proves the data readable before it touches an earlier run; :meth:`Trainer.fit` runs the
steps; :meth:`Trainer.finish` exports. Checkpoints (:mod:`lt_train._checkpointer`,
:mod:`lt_train._state`), the data (:mod:`lt_data`'s image sources) and the method
(:mod:`lt_methods`) live in their own modules.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from lt_core import DataError, LightlyTrainError
from lt_data import ImageSource, build_view_transform
from lt_train._atomic import (
    DiskFullError,
    atomic_torch_save,
    atomic_write_text,
    check_free_space,
    torch_save_size,
)
from lt_train._build import build_method
from lt_train._callbacks import RunCallbacks
from lt_train._checkpointer import Checkpointer
from lt_train._config import TrainConfig
from lt_train._devices import first_process, make_fabric
from lt_train._health import FiniteGuard
from lt_train._loggers import MetricLoggers
from lt_train._logs import RunLog
from lt_train._metrics import StepTimer
from lt_train._monitor import Monitor, list_val_data
from lt_train._monitor._images import preserved_rng
from lt_train._optim import lr_at_step, set_lr, warmup_steps
from lt_train._run_dir import OutFolderLock, RunDir, truncate_metrics
from lt_train._run_info import describe_devices, log_start, log_versions
from lt_train._setup import (
    check_model,
    load_init_weights,
    load_resume,
    plan_run,
    resolve_model,
)
from lt_train._speed._conv_grad import small_conv_grads, small_conv_grads_apply
from lt_train._speed._host_malloc import keep_freed_memory, keep_freed_memory_apply
from lt_train._speed._prefetch import to_device
from lt_train._state import Progress, TrainState, gather_skipped, model_prefix
from lt_train._stop import StopSignals, TrainingInterrupted, signal_name

logger = logging.getLogger(__name__)

__all__ = ["Trainer", "export_model"]


class Trainer:
    """A pretraining run of ``config``.

    ``setup()`` runs every check and resolves every derived value (accelerator, workers,
    steps per epoch, learning rate, the model's memory format) once, writing nothing;
    ``start()`` launches Fabric and builds the parts; ``fit()`` trains; ``finish()``
    exports. :func:`lt_train.train` runs them in order with the status bookkeeping.
    """

    def __init__(self, config: TrainConfig, log: RunLog) -> None:
        self.config = config
        self.log = log
        self.run_dir = RunDir(config.out, config.callbacks.model_checkpoint.dirpath)  # type: ignore[union-attr]
        self.stop = StopSignals()
        self.loggers: MetricLoggers | None = None
        self.started: list[Any] = []  # loggers started before the out folder was touched
        self.aside: Path | None = None  # where an earlier run's files were moved
        self.lock = OutFolderLock(config.out)  # taken by the first process only
        self.created = time.perf_counter()
        self.first_images: torch.Tensor | None = None  # for monitor/views.pt

    def release(self) -> None:
        """Release the out folder's lock (if this process holds it)."""
        self.lock.release()

    # -- setup: every check, nothing written ---------------------------------------------

    def setup(self) -> None:
        config = self.config
        if first_process():
            self.lock.check()  # another live run owns the folder: fail before any work
        log_versions()
        self.plan = plan = plan_run(config)
        self.val = list_val_data(config.val_data) if config.val_data else None  # kNN probe
        self.resume = None
        if config.resume_interrupted:
            if self.run_dir.last_checkpoint.is_file():
                self.resume = load_resume(config, plan.fingerprint)
            else:
                logger.info(
                    "resume_interrupted=True, but there is no checkpoint (%s) yet: the run "
                    "stopped before its first one, or never started. Starting from step 0.",
                    self.run_dir.last_checkpoint,
                )
        self.init_weights = load_init_weights(config.checkpoint) if config.checkpoint else None
        torch.manual_seed(config.seed)  # named models draw their initial weights from it
        self.wrapper = resolve_model(config.model, config.model_args)
        check_model(self.wrapper, plan)
        # config.json and the loggers' parameters: the options with every resolved value
        # (the memory format comes from the dry run above).
        self.record = plan.record()
        logger.info("Options: %s", json.dumps(self.record, default=str))
        self.resumed = self.resume is not None
        self.progress = Progress.of(self.resume)

    # -- start: Fabric, data, model; the data proven readable before the out folder ------

    def start(self) -> None:
        config, plan, progress = self.config, self.plan, self.progress
        self.fabric = fabric = make_fabric(config, plan.accelerator, plan.precision)
        fabric.launch()
        if fabric.world_size != plan.world_size:
            raise LightlyTrainError(
                f"The launcher started {fabric.world_size} processes, but devices x num_nodes "
                f"asks for {plan.world_size}. Fix: set devices and num_nodes to match it."
            )
        logger.info("Devices: %s", describe_devices(fabric))
        if config.float32_matmul_precision != "auto":
            torch.set_float32_matmul_precision(config.float32_matmul_precision)
        fabric.seed_everything(config.seed, workers=True)
        self.source = source = plan.data.open(
            plan.source_options(fabric.global_rank, fabric.device)
        )
        source.use_cache(
            config.data_cache,
            epochs=plan.epochs,
            local_processes=plan.local_processes,
            # A checkpoint from before data_cache existed: that run read every epoch from disk.
            resumed=None if self.resume is None else self.resume.get("data_cache", "none"),
        )
        self.views = build_view_transform(plan.recipe).to(fabric.device)
        # Before the RNG states are restored: refilling may draw stand-ins for bad images (a
        # resumed run loads its model, so drawing them before it is built changes nothing).
        source.prefill(progress.epoch, progress.step_in_epoch)
        # The loader's workers start reading the first batches while the model is built
        # (creating the iterator draws no random number of the process; the filler draws
        # stand-ins for bad images only when a batch is taken, after the reseed below).
        batches = source.batches(progress.epoch, progress.step_in_epoch)
        method, optimizer = build_method(fabric, plan, self.wrapper, self.init_weights)
        identity = {
            "run": plan.fingerprint,
            # (of the exported network, so an export cut from a checkpoint equals it)
            "model_prefix": model_prefix(method, _unwrap(method).embedding_model().wrapper),
            "data_cache": source.cache_mode,
        }
        self.monitor = Monitor(
            args=config.monitor_args,
            every=config.monitor_every_n_steps,
            val=self.val,
            val_args=config.val_args,
            val_every=config.val_every_n_epochs,
            fabric=fabric,
            folder=self.run_dir.root / "monitor",
            plan=plan,
        )
        self.state = TrainState(fabric, method, optimizer, progress, identity, self.monitor)
        # Distinct augmentations per process; a resumed run continues each process's streams.
        _reseed(fabric, config.seed + fabric.global_rank)
        if self.resume is not None:
            self.state.load_state_dict(self.resume)
        progress.max_steps = plan.max_steps
        self.checkpointer = Checkpointer(
            config.callbacks.model_checkpoint,  # type: ignore[arg-type, union-attr]
            self.run_dir.checkpoints,
            plan.epochs,
            last_step=None if self.resume is None else progress.step,
        )
        self.resume = None  # (its tensors are not needed any more)
        self.first_batches = self._first_batches(batches, progress.step_in_epoch == 0)
        self.monitor.prepare(self._embedding_model().embed_dim)  # its images, read once
        # The data is proven readable: only now may an earlier run's files be touched,
        # and only by the run that holds the out folder's lock.
        if fabric.is_global_zero:
            self.lock.acquire()
            self.started = MetricLoggers.start_remote(
                config.loggers,  # type: ignore[arg-type]
                self.run_dir.root,
                self.record,
            )
            self.aside = self.run_dir.prepare(config.overwrite)
        fabric.barrier()
        self.log.open_file(self.run_dir.log if fabric.is_global_zero else None)

    def _first_batches(self, batches: Iterator[torch.Tensor], epoch_start: bool) -> Any:
        """``batches`` with the first one already read: a dataset without any readable
        image fails here, before the out folder is touched, and so does a stream that ends
        before its first full batch (when the epoch starts at its beginning; a resumed one
        may resume at its end)."""
        fabric = self.fabric
        error: BaseException | None = None
        images: torch.Tensor | None = None
        try:
            images = next(batches, None)
            if images is None and epoch_start:
                raise DataError(
                    f"The data gave this process no full batch of "
                    f"{self.config.batch_size // fabric.world_size} images in the first epoch: "
                    "it could read fewer images than one batch (skipped shards and images are "
                    "named above; with shards, this process's share may also just be small). "
                    "Fix: check the data (for shards: tar tf <shard>, the URLs), write more, "
                    "smaller shards, or lower batch_size."
                )
        except LightlyTrainError as e:
            error = e
        if fabric.world_size > 1:
            flag = torch.tensor(float(error is not None), device=fabric.device)  # NCCL: GPU
            failed = fabric.all_reduce(flag, reduce_op="sum")
            if error is None and float(failed) > 0:
                error = LightlyTrainError(
                    "Another process could not read any image; see its error."
                )
        if error is not None:
            raise error
        self.first_images = images

        def chain() -> Any:
            if images is not None:
                yield images
            yield from batches

        return chain()

    def begin(self) -> None:
        """Write config.json (a new run) or trim the metrics (a resumed one), run.json, and
        start the metric loggers (process 0)."""
        if not self.fabric.is_global_zero:
            return
        run, progress = self.run_dir, self.progress
        if self.aside is not None:
            logger.info(
                "The earlier run's files in this folder were moved to %s; they are deleted "
                "once this run has written its first checkpoint.",
                self.aside,
            )
        if self.resumed:
            truncate_metrics(run.metrics, progress.step)
            logger.info(
                "Resuming the interrupted run from %s: epoch %d, step %d of %d.",
                run.last_checkpoint,
                progress.epoch + 1,
                progress.step,
                progress.max_steps,
            )
        else:
            if self.config.resume_interrupted:  # no checkpoint yet: a new start, step 0
                truncate_metrics(run.metrics, 0)
            atomic_write_text(run.config, json.dumps(self.record, indent=2) + "\n")
        run.write_state("running", step=progress.step, max_steps=progress.max_steps)
        self.loggers = MetricLoggers(
            self.config.loggers,  # type: ignore[arg-type]
            run.root,
            run.metrics,
            self.record,
            started=self.started,
        )
        self.started = []

    # -- fit: the loop -------------------------------------------------------------------

    def fit(self) -> None:
        """Train from the current position to the end of the run."""
        plan, progress, fabric, source = self.plan, self.progress, self.fabric, self.source
        self._prepare_fit()
        started = time.perf_counter() - progress.train_time_s
        try:
            batches: Any = self.first_batches
            if self._start_monitors():
                progress.epoch = plan.epochs  # stopped on a collapse at step 0
                logger.info("Early stopping at step 0: %s.", self.callbacks.early_stop(math.nan))
            for epoch in range(progress.epoch, plan.epochs):
                if batches is None:
                    batches = source.batches(epoch)
                batches = to_device(batches, fabric.device)  # CUDA: copies one batch ahead
                self.state.method.train()
                epoch_loss = torch.zeros((), device=fabric.device)
                epoch_steps = 0
                for _ in range(progress.step_in_epoch, plan.steps_per_epoch):
                    step_images = [next(batches, None) for _ in range(self.accumulation)]
                    if self._data_ended(step_images):
                        logger.info(
                            "The stream ended early at step %d of the epoch.",
                            progress.step_in_epoch,
                        )
                        break
                    self.timer.data_ready()
                    loss_sum, out, lr = self._step(step_images)
                    progress.step += 1
                    progress.step_in_epoch += 1
                    epoch_loss += loss_sum / self.accumulation
                    epoch_steps += 1
                    images = len(step_images[0]) * self.accumulation * fabric.world_size
                    progress.images += images
                    self.timer.step_done(images)
                    self.bar.update(1)
                    if self._log_due():
                        self._log_metrics(out, float(loss_sum) / self.accumulation, lr, epoch)
                    received, time_due, monitor_due = self._sync_flags()
                    stop = monitor_due and self._check_health()
                    if self.checkpointer.due_after_step(progress.step) or time_due or received:
                        progress.train_time_s = time.perf_counter() - started
                        self.save()
                    if received:
                        raise TrainingInterrupted(
                            self._interrupt_message(received), received, str(self.run_dir.root)
                        )
                    if stop:
                        break  # _end_epoch ends the run with the collapse as its reason
                batches = None
                progress.train_time_s = time.perf_counter() - started
                if self._end_epoch(epoch, epoch_loss, epoch_steps):
                    break
            if self.checkpointer.last_step is None:  # epochs=0: still leave a checkpoint
                self.save()
        finally:
            self.bar.close()

    def _prepare_fit(self) -> None:
        config, plan, fabric = self.config, self.plan, self.fabric
        self.accumulation = config.gradient_accumulation_steps
        self.warmup = warmup_steps(config.optim_args, plan.epochs, plan.steps_per_epoch)
        self.group = torch.distributed.new_group(backend="gloo") if fabric.world_size > 1 else None
        self.callbacks = RunCallbacks(config.callbacks, plan.epochs)  # type: ignore[arg-type]
        log_start(self)  # before the bar, which would cut the line
        self.bar = tqdm(
            total=plan.max_steps,
            initial=self.progress.step,
            disable=not (fabric.is_global_zero and config.progress_bar),
            unit="step",
            dynamic_ncols=True,
        )
        self.guard = FiniteGuard(fabric)
        self.timer = StepTimer()
        # CPU: a faster weight gradient for convolutions with a tiny output (see _conv_grad).
        self.conv_grads = small_conv_grads_apply(fabric.device, config.compile)
        if keep_freed_memory_apply(fabric.device):  # CPU: no page faults for every step's tensors
            keep_freed_memory()

    def _step(self, step_images: list[torch.Tensor]) -> tuple[torch.Tensor, dict[str, Any], float]:
        """One optimizer step over the micro-batches of ``step_images``; returns the sum of
        their losses (a tensor, no host sync), the method's last outputs and the learning
        rate."""
        config, plan, fabric = self.config, self.plan, self.fabric
        method, optimizer = self.state.method, self.state.optimizer
        step, accumulation = self.progress.step, self.accumulation
        schedule = lr_at_step(
            step,
            max_steps=plan.max_steps,
            warmup=self.warmup,
            min_ratio=config.optim_args.min_lr_ratio,
        )
        lr = set_lr(optimizer, schedule)
        loss_sum = torch.zeros((), device=fabric.device)
        sync_skip = fabric.world_size > 1  # DDP: all-reduce gradients on the last micro-batch only
        out: dict[str, Any] = {}
        for micro, images in enumerate(step_images):
            with torch.no_grad():
                views = [v.contiguous(memory_format=plan.memory_format) for v in self.views(images)]
            with fabric.no_backward_sync(method, enabled=sync_skip and micro < accumulation - 1):
                with small_conv_grads(self.conv_grads):
                    out = method(
                        views,
                        step=step,
                        max_steps=plan.max_steps,
                        steps_per_epoch=plan.steps_per_epoch,
                    )
                fabric.backward(out["loss"] / accumulation)
            loss = out["loss"].detach()
            loss_sum += loss
            if self.callbacks.check_finite:
                self.guard.note(loss, step)
        if config.optim_args.gradient_clip_norm is not None:
            fabric.clip_gradients(method, optimizer, max_norm=config.optim_args.gradient_clip_norm)
        method.on_before_optimizer_step(step=step, steps_per_epoch=plan.steps_per_epoch)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        method.on_after_optimizer_step(step=step, max_steps=plan.max_steps)
        return loss_sum, out, lr

    def _log_due(self) -> bool:
        step = self.progress.step
        return step % self.config.log_every_n_steps == 0 or step == self.plan.max_steps

    def _log_metrics(self, out: dict[str, Any], loss: float, lr: float, epoch: int) -> None:
        self._check_finite()
        metrics = {k: float(v.detach()) for k, v in out.items()}
        metrics.update(self.timer.summary(), loss=loss, epoch=epoch)
        self.callbacks.metrics(metrics, lr, self.fabric.device)
        self.timer.reset()
        collapsed = self.monitor.collapsed_at
        self.bar.set_postfix(
            loss=f"{metrics['loss']:.4f}",
            img_s=f"{metrics['images_per_s']:.0f}",
            data_wait=f"{metrics['data_wait']:.0%}",
            **({} if collapsed is None else {"COLLAPSED": f"step {collapsed}"}),
        )
        if self.loggers is not None:
            self.loggers.log(metrics, self.progress.step)

    def _data_ended(self, step_images: list[Any]) -> bool:
        """Whether a batch of this step is missing. Only a source without an exact length
        (a stream) can end early; with several processes, all stop the epoch if any one
        ran out."""
        ended = any(images is None for images in step_images)
        if self.source.exact_length:
            if ended:
                raise RuntimeError("The data loader yielded fewer batches than its sampler.")
            return False
        if self.group is not None:
            flag = torch.tensor([int(ended)])
            torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX, group=self.group)
            ended = bool(flag.item())
        return ended

    def _sync_flags(self) -> tuple[int | None, bool, bool]:
        """The stop signal any process received, and whether a time-based checkpoint or
        a monitor check is due on any process (so all processes stop, save and check
        after the same step)."""
        received = self.stop.received
        time_due = self.checkpointer.time_due()
        monitor_due = self.monitor.due(self.progress.step)
        if self.group is None:
            return received, time_due, monitor_due
        flags = torch.tensor([received or 0, int(time_due), int(monitor_due)], dtype=torch.int64)
        torch.distributed.all_reduce(flags, op=torch.distributed.ReduceOp.MAX, group=self.group)
        return int(flags[0]) or None, bool(flags[1]), bool(flags[2])

    # -- health monitors and the kNN probe (see lt_train._monitor) -----------------------

    def _embedding_model(self) -> Any:
        return self.state.unwrapped.embedding_model()  # the network that is exported

    def _check_health(self, knn: bool = False) -> bool:
        """A monitor check (and the kNN probe) at this step, all processes; whether the
        run stops because the check flagged a collapse."""
        model, step = self._embedding_model(), self.progress.step
        reason = self.monitor.check(model, step, self.loggers) if self.monitor.enabled else None
        if knn:
            self.monitor.knn(model, step, self.loggers)
        self.timer.exclude()
        return reason is not None and self.callbacks.stop_on_collapse(reason)

    def _start_monitors(self) -> bool:
        """At step 0 of a new run: monitor/sample.pt and views.pt, then the check and the
        kNN probe of the starting weights; whether the run stops on a collapse."""
        images, self.first_images = self.first_images, None
        if self.progress.step > 0 or self.monitor.last_step is not None:
            return False  # resumed: its step 0 was checked
        if images is not None and self.fabric.is_global_zero and self.monitor.enabled:
            with preserved_rng(self.fabric.device), torch.no_grad():  # the first step's views
                views = self.views(images.to(self.fabric.device))
            self.monitor.write_views(views, self.plan.recipe)
        if self.monitor.enabled:
            self.monitor.write_sample()
        return self._check_health(knn=self.monitor.val is not None)

    def _end_epoch(self, epoch: int, epoch_loss: torch.Tensor, epoch_steps: int) -> bool:
        """Checkpoint, export and log at an epoch's end; whether early stopping ends the run."""
        plan, progress = self.plan, self.progress
        self.source.end_epoch()
        progress.epoch += 1
        progress.step_in_epoch = 0
        mean_loss = self._mean(epoch_loss, epoch_steps)
        if self.monitor.knn_due(progress.epoch):
            self.monitor.knn(self._embedding_model(), progress.step, self.loggers)
            self.timer.exclude()
        reason = self.callbacks.early_stop(mean_loss)
        if reason is not None:
            progress.epoch = plan.epochs  # the run is complete, as far as resume knows
        if self.checkpointer.due_after_epoch(progress.epoch):
            self.save()
        # (The last epoch's export is the final one, written once the run is done.)
        last = progress.epoch >= plan.epochs
        if not last and self.callbacks.export_due(progress.epoch):
            self._check_state_finite("export")
            if self.fabric.is_global_zero:
                export_model(self.exported_wrapper(), self.run_dir.exported_last)
        logger.info(
            "Epoch %d/%d done, step %d, mean loss %.4f.",
            epoch + 1,
            plan.epochs,
            progress.step,
            mean_loss,
        )
        if reason is not None:
            logger.info("Early stopping after epoch %d: %s.", epoch + 1, reason)
        return reason is not None

    def _mean(self, total: torch.Tensor, count: int) -> float:
        """The mean step loss of the epoch over all processes (a host sync, once an epoch)."""
        if count == 0:
            return math.nan
        mean = total / count
        if self.fabric.world_size > 1:
            mean = self.fabric.all_reduce(mean, reduce_op="mean")
        return float(mean)

    def exported_wrapper(self) -> torch.nn.Module:
        """The wrapper whose ``get_model()`` is exported: that of the method's
        ``embedding_model()`` (the student, or the EMA network a method's paper evaluates)."""
        return self.state.unwrapped.embedding_model().wrapper  # type: ignore[no-any-return]

    # -- checkpoints ---------------------------------------------------------------------

    def save(self) -> None:
        """Write a checkpoint (all processes take part; process 0 writes)."""
        fabric, progress, run = self.fabric, self.progress, self.run_dir
        self._check_finite()
        self._check_state_finite("checkpoint")
        progress.skipped_images += gather_skipped(fabric, self.source.take_skipped())
        state = self.state.state_dict(weights_only=self.checkpointer.args.save_weights_only)
        if state is not None:
            with self.stop.deferred():  # a second Ctrl-C waits until the file is complete
                self.checkpointer.write(state)
                run.write_state("running", step=progress.step, max_steps=progress.max_steps)
            if self.checkpointer.last_step is None:
                run.discard_previous()  # the new run has proven itself: drop the old one
        self.checkpointer.done(progress.step)

    def _last_good(self) -> str:
        last, checkpoint = self.checkpointer.last_step, self.run_dir.last_checkpoint
        if last is None:
            return "No checkpoint was written before it."
        return (
            f"The last checkpoint, {checkpoint} (step {last}), holds the last good "
            f"weights: start a new run from them with checkpoint='{checkpoint}' and a new "
            "out folder."
        )

    def _check_finite(self) -> None:
        self.guard.check_loss(self.progress.max_steps, self._last_good())

    def _check_state_finite(self, what: str) -> None:
        progress = self.progress
        where = f"by step {progress.step} of {progress.max_steps}"
        self.guard.check_state(self.state.unwrapped, where, what, self._last_good())

    # -- the end -------------------------------------------------------------------------

    def finish(self) -> None:
        """The last monitor check and kNN probe (all processes), then export the model and
        record the end of the run (process 0)."""
        self._check_state_finite("export")
        step, monitor = self.progress.step, self.monitor
        if monitor.enabled and monitor.last_step != step:
            monitor.check(self._embedding_model(), step, self.loggers)
        if monitor.val is not None and monitor.last_knn_step != step:
            monitor.knn(self._embedding_model(), step, self.loggers)
        monitor.log_cost(time.perf_counter() - self.created)
        if not self.fabric.is_global_zero:
            return
        plan, run, progress = self.plan, self.run_dir, self.progress
        export_model(self.exported_wrapper(), run.exported_last)
        if self.loggers is not None and self.loggers.jsonl is not None:
            self.loggers.jsonl.write(
                {
                    "event": "end",
                    "step": progress.step,
                    "epochs": plan.epochs,
                    "train_time_s": progress.train_time_s,
                    "images_per_s": progress.images / max(progress.train_time_s, 1e-9),
                    "skipped_images": progress.skipped_images,
                }
            )
        run.write_state("finished", step=progress.step, max_steps=progress.max_steps)
        if progress.skipped_images:
            logger.warning(
                "Skipped %d unreadable image(s); their names are listed above.",
                progress.skipped_images,
            )
        logger.info("Done in %.1f s. Exported model: %s", progress.train_time_s, run.exported_last)
        logger.info(
            'Load it into your model with: model.load_state_dict(torch.load("%s", '
            "weights_only=True))  (model: what your wrapper's get_model() returns)",
            run.exported_last,
        )

    def close(self) -> None:
        """Stop the data's worker processes (also after an error: see ImageSource.close),
        and end a logger's run that was started but never handed to the run's loggers."""
        source: ImageSource | None = getattr(self, "source", None)
        if source is not None:
            source.close()
        for writer in self.started:
            try:
                writer.close("failed", None)
            except Exception as e:  # a logger's service failing must not hide the error
                logger.warning("Closing the %s logger failed: %s", type(writer).__name__, e)
        self.started = []

    def _interrupt_message(self, signum: int) -> str:
        progress, run = self.progress, self.run_dir
        return (
            f"Stopped by {signal_name(signum)} at step {progress.step} of {progress.max_steps}; "
            f"checkpoint saved to {run.last_checkpoint}. Resume with the same options and "
            f"resume_interrupted=True (CLI: resume_interrupted=true)."
        )


def export_model(wrapper: torch.nn.Module, path: Any) -> None:
    """Write the ``state_dict`` of ``wrapper.get_model()`` (on the CPU) to ``path``."""
    path = Path(path)
    state = {k: v.detach().cpu() for k, v in wrapper.get_model().state_dict().items()}  # type: ignore[operator]
    needed = torch_save_size(state)
    check_free_space(path.parent, needed, f"the export {path}")
    try:
        atomic_torch_save(state, path, needed)
    except DiskFullError as e:
        note = "the earlier export is kept" if path.is_file() else "nothing was exported"
        raise e.with_note(note) from e.__cause__


def _reseed(fabric: Any, seed: int) -> None:
    """Seed every RNG again, without a second "Seed set to" line in the log (the
    ``verbose`` argument is newer than lightning-fabric 2.2)."""
    try:
        fabric.seed_everything(seed, workers=True, verbose=False)
    except TypeError:
        fabric.seed_everything(seed, workers=True)


def _unwrap(method: Any) -> Any:
    """The method inside Fabric's module wrapper."""
    return method.module if hasattr(method, "module") else method
