"""The training run on lightning-fabric: ``train(config) -> out folder``.

Reads in one sitting, in the spirit of litgpt's ``setup -> fit``: :func:`train` plans the
run (every check, nothing written), launches Fabric and builds the parts
(:mod:`lt_train._components`); :func:`_start` proves the data readable before it touches an
earlier run; :func:`_fit` (in :mod:`lt_train._loop`) runs the steps; checkpoints, export and
the bad-image policy live in their own modules.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from lightning_fabric import Fabric
from lightning_fabric.strategies import DDPStrategy

from lt_core import ConfigError, DataError, LightlyTrainError
from lt_train._atomic import atomic_write_text
from lt_train._bad_images import BatchFiller
from lt_train._checkpoint import set_rng_state
from lt_train._components import Components, build_data, build_model
from lt_train._config import TrainConfig
from lt_train._host_malloc import trim_heap
from lt_train._loggers import MetricLoggers
from lt_train._logs import RunLog, run_log
from lt_train._loop import Progress, export_model, fit
from lt_train._run_dir import RunDir
from lt_train._setup import Plan, local_processes, plan_run
from lt_train._stop import StopSignals, TrainingInterrupted

logger = logging.getLogger(__name__)

__all__ = ["train"]


def train(config: TrainConfig) -> Path:
    """Pretrain ``config.model`` with ``config.method`` on ``config.data``; return the out path.

    Every check runs before any file is written. Then the run writes into the out folder:
    ``checkpoints/last.ckpt`` (every ``checkpoint_every_n_steps`` and at each epoch end),
    ``exported_models/exported_last.pt`` (the ``state_dict`` of ``wrapper.get_model()``),
    ``metrics.jsonl``, ``train.log``, ``config.json``, ``run.json`` and TensorBoard events
    under ``tensorboard/``. Every file is written atomically.

    Raises:
        LightlyTrainError: A bad option, model or data (before any file is written).
        TrainingInterrupted: SIGINT or SIGTERM stopped the run after a checkpoint; resume
            with ``resume_interrupted=True``.
        LossNotFiniteError: The loss became NaN or infinite.
    """
    with run_log(console=_first_process()) as log:
        plan = plan_run(config)
        fabric = _make_fabric(plan)
        if config.batch_size % fabric.world_size:
            raise ConfigError(
                f"batch_size={config.batch_size} is the global batch size and must be divisible "
                f"by the number of processes ({fabric.world_size})."
            )
        fabric.launch()
        run = RunDir(config.out, config.callbacks.model_checkpoint.dirpath)  # type: ignore[union-attr]
        try:
            _run(fabric, plan, run, log)
        finally:
            trim_heap()
    return run.root


def _first_process() -> bool:
    """Whether this is process 0 (launchers set these variables before the script runs;
    srun sets SLURM_PROCID, the rank that Fabric's SLURM environment uses)."""
    ranks = ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID")
    return all(int(os.environ.get(v, "0") or 0) == 0 for v in ranks)


def _make_fabric(plan: Plan) -> Fabric:
    config = plan.config
    devices: Any = config.devices
    if devices == "auto" and plan.accelerator == "cpu":
        devices = 1
    strategy: Any = config.strategy
    if strategy == "auto" and (
        local_processes(devices, plan.accelerator) > 1 or config.num_nodes > 1
    ):
        strategy = "ddp"
    if strategy in ("ddp", "ddp_find_unused_parameters_true"):
        # Wrapped models often hold layers that the features never use (a classifier head).
        strategy = DDPStrategy(find_unused_parameters=True)
    elif strategy == "ddp_find_unused_parameters_false":
        strategy = DDPStrategy(find_unused_parameters=False)
    return Fabric(
        accelerator=plan.accelerator,
        devices=devices,
        num_nodes=config.num_nodes,
        strategy=strategy,
        precision=plan.precision,  # type: ignore[arg-type]
    )


def _run(fabric: Fabric, plan: Plan, run: RunDir, log: RunLog) -> None:
    config = plan.config
    if config.float32_matmul_precision != "auto":
        torch.set_float32_matmul_precision(config.float32_matmul_precision)
    fabric.seed_everything(config.seed, workers=True)
    parts = build_data(fabric, plan)
    try:
        _train(fabric, plan, run, log, parts)
    finally:
        parts.close()  # also after an error: see Components.close
    fabric.barrier()


def _train(fabric: Fabric, plan: Plan, run: RunDir, log: RunLog, parts: Components) -> None:
    config = plan.config
    progress = Progress.from_checkpoint(plan.resume)
    # Before the RNG states are restored: refilling may draw stand-ins for bad images (a
    # resumed run loads its model, so drawing them before the model is built changes
    # nothing).
    quiet = BatchFiller(parts.dataset, parts.micro_batch, log=False)
    parts.prefill_cache(progress.epoch, progress.step_in_epoch, quiet)
    filler = BatchFiller(parts.dataset, parts.micro_batch, log=fabric.is_global_zero)
    # The loader's workers start reading the first batches while the model is built
    # (creating the iterator draws no random number of the process; the filler draws
    # stand-ins for bad images only when a batch is taken, after the reseed below).
    batches = parts.epoch_images(progress.epoch, progress.step_in_epoch, filler)
    build_model(fabric, plan, parts)
    # Distinct augmentations per process; a resumed run continues each process's streams.
    _reseed(fabric, config.seed + fabric.global_rank)
    if plan.resume is not None:
        set_rng_state(plan.resume["rng"][fabric.global_rank])
    first = _first_batches(fabric, batches, parts.micro_batch, progress.step_in_epoch == 0)
    # The data is proven readable: only now may an earlier run's files be touched.
    aside = run.prepare(config.overwrite) if fabric.is_global_zero else None
    fabric.barrier()
    log.open_file(run.log if fabric.is_global_zero else None)
    stop = StopSignals()
    loggers: MetricLoggers | None = None
    status = "failed"
    try:
        _start(fabric, plan, run, progress, aside)
        if fabric.is_global_zero:
            loggers = MetricLoggers(config.loggers, run.root, run.metrics, plan.record())  # type: ignore[arg-type]
        with stop.installed():
            fit(fabric, plan, run, parts, progress, first, filler, stop, loggers)
        if fabric.is_global_zero:
            _finish(plan, run, progress, loggers)
        status = "success"
    except TrainingInterrupted as e:
        status = "interrupted"
        if fabric.is_global_zero:
            run.write_state("interrupted", step=progress.step, max_steps=progress.max_steps)
        logger.warning("%s", e)
        raise
    except BaseException as e:
        _log_failure(e, fabric, run, progress, aside)
        raise
    finally:
        if loggers is not None:
            loggers.close(status, run.exported_last if status == "success" else None)


def _reseed(fabric: Fabric, seed: int) -> None:
    """Seed every RNG again, without a second "Seed set to" line in the log (the
    ``verbose`` argument is newer than lightning-fabric 2.2)."""
    try:
        fabric.seed_everything(seed, workers=True, verbose=False)
    except TypeError:
        fabric.seed_everything(seed, workers=True)


def _first_batches(
    fabric: Fabric, batches: Iterator[torch.Tensor], batch_size: int, epoch_start: bool
) -> Any:
    """The image batches of the first epoch to train (``batches``), with the first one
    already read: a dataset without any readable image fails here, before the out folder
    is touched, and so does a stream that ends before its first full batch (when the
    epoch starts at its beginning; a resumed one may resume at its end)."""
    error: BaseException | None = None
    images: torch.Tensor | None = None
    try:
        images = next(batches, None)
        if images is None and epoch_start:
            raise DataError(
                f"The data gave this process no full batch of {batch_size} images in the "
                "first epoch: it could read fewer images than one batch (skipped shards and "
                "images are named above; with shards, this process's share may also just "
                "be small). Fix: check the data (for shards: tar tf <shard>, the URLs), "
                "write more, smaller shards, or lower batch_size."
            )
    except LightlyTrainError as e:
        error = e
    if fabric.world_size > 1:
        flag = torch.tensor(float(error is not None), device=fabric.device)  # NCCL: on the GPU
        failed = fabric.all_reduce(flag, reduce_op="sum")
        if error is None and float(failed) > 0:
            error = LightlyTrainError("Another process could not read any image; see its error.")
    if error is not None:
        raise error

    def chain() -> Any:
        if images is not None:
            yield images
        yield from batches

    return chain()


def _start(fabric: Fabric, plan: Plan, run: RunDir, progress: Progress, aside: Path | None) -> None:
    if not fabric.is_global_zero:
        return
    if aside is not None:
        logger.info(
            "The earlier run's files in this folder were moved to %s; they are deleted once "
            "this run has written its first checkpoint.",
            aside,
        )
    if plan.resume is not None:
        _truncate_metrics(run.metrics, progress.step)
        logger.info(
            "Resuming the interrupted run from %s: epoch %d, step %d of %d.",
            run.last_checkpoint,
            progress.epoch + 1,
            progress.step,
            progress.max_steps,
        )
    else:
        atomic_write_text(run.config, json.dumps(plan.record(), indent=2) + "\n")
    run.write_state("running", step=progress.step, max_steps=progress.max_steps)


def _finish(plan: Plan, run: RunDir, progress: Progress, loggers: MetricLoggers | None) -> None:
    export_model(plan.wrapper, run.exported_last)
    if loggers is not None and loggers.jsonl is not None:
        loggers.jsonl.write(
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


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop the metrics of steps after the checkpoint: the resumed run logs them again."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line cut by a crash
        if isinstance(record, dict) and "event" not in record and record.get("step", 0) <= step:
            kept.append(line + "\n")
    atomic_write_text(path, "".join(kept))


def _log_failure(
    error: BaseException, fabric: Fabric, run: RunDir, progress: Progress, aside: Path | None
) -> None:
    """Put the failure in train.log (a traceback only for unexpected errors) and run.json."""
    if isinstance(error, LightlyTrainError | OSError):
        logger.error("Training stopped at step %d: %s", progress.step, error)
    elif isinstance(error, KeyboardInterrupt):
        logger.error("Training stopped at once by a second Ctrl-C at step %d.", progress.step)
    else:
        logger.exception("Training failed at step %d.", progress.step)
    if not fabric.is_global_zero:
        return
    try:
        run.write_state("failed", step=progress.step, max_steps=progress.max_steps)
    except OSError:
        pass
    if aside is not None and aside.exists():
        logger.error(
            "The earlier run's files are kept in %s (this run wrote no checkpoint).", aside
        )
