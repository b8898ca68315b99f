"""The training run: ``train(config) -> out folder``.

:class:`~lt_train._trainer.Trainer` owns the run; this module runs its stages in order and
keeps the run's status (``run.json``, the loggers, the failure in ``train.log``).
"""

from __future__ import annotations

import logging
from pathlib import Path

from lt_core import LightlyTrainError
from lt_train._config import TrainConfig
from lt_train._devices import first_process
from lt_train._logs import run_log
from lt_train._report import write_report
from lt_train._speed._host_malloc import trim_heap
from lt_train._stop import TrainingInterrupted
from lt_train._trainer import Trainer

logger = logging.getLogger(__name__)

__all__ = ["train"]


def train(config: TrainConfig) -> Path:
    """Pretrain ``config.model`` with ``config.method`` on ``config.data``; return the out path.

    Every check runs before any file is written. Then the run writes into the out folder:
    ``checkpoints/last.ckpt`` (every ``checkpoint_every_n_steps`` and at each epoch end),
    ``exported_models/exported_last.pt`` (the ``state_dict`` of ``wrapper.get_model()``),
    ``metrics.jsonl``, ``train.log``, ``config.json``, ``run.json``, TensorBoard events
    under ``tensorboard/`` and, at the end (also of a failed or interrupted run),
    ``report.html`` (see :func:`lt_train.write_report`). Every file is written atomically.

    Raises:
        LightlyTrainError: A bad option, model or data (before any file is written).
        TrainingInterrupted: SIGINT or SIGTERM stopped the run after a checkpoint; resume
            with ``resume_interrupted=True``.
        LossNotFiniteError: The loss became NaN or infinite.
    """
    with run_log(console=first_process()) as log:
        trainer = Trainer(config, log)
        trainer.setup()
        try:
            trainer.start()
            _run(trainer)
        finally:
            trainer.close()  # also after an error: see ImageSource.close
            trainer.release()  # the out folder's lock, on any exit but SIGKILL
            trim_heap()
        trainer.fabric.barrier()
    return trainer.run_dir.root


def _run(trainer: Trainer) -> None:
    """Fit and finish, keeping the run's status: ``run.json`` says finished, interrupted
    or failed, and the loggers close with it."""
    status, report = "failed", True
    try:
        trainer.begin()
        with trainer.stop.installed():
            trainer.fit()
        trainer.finish()
        status = "success"
    except TrainingInterrupted as e:
        status = "interrupted"
        if trainer.fabric.is_global_zero:
            progress = trainer.progress
            trainer.run_dir.write_state(
                "interrupted", step=progress.step, max_steps=progress.max_steps
            )
        logger.warning("%s", e)
        raise
    except KeyboardInterrupt:  # a second Ctrl-C: stopped at once, the checkpoints intact
        status, report = "interrupted", False  # asked to stop at once: no report
        _log_second_interrupt(trainer)
        raise
    except BaseException as e:
        _log_failure(e, trainer)
        raise
    finally:
        if trainer.loggers is not None:
            exported = trainer.run_dir.exported_last if status == "success" else None
            trainer.loggers.close(status, exported)
        if report and trainer.fabric.is_global_zero:
            _write_report(trainer)


def _write_report(trainer: Trainer) -> None:
    """Write report.html, best effort: a failure is a warning and never hides the run's
    own error (this runs in a ``finally``)."""
    try:
        path = write_report(trainer.run_dir.root)
    except Exception as e:
        logger.warning(
            "Could not write the run report (%s: %s). Write it later with "
            "lightly_train.report(out) (CLI: lightly-train report out=...).",
            type(e).__name__,
            e,
        )
    else:
        logger.info("Run report: %s (open it in a browser).", path)


def _log_second_interrupt(trainer: Trainer) -> None:
    progress, last = trainer.progress, getattr(trainer, "checkpointer", None)
    last_step = None if last is None else last.last_step
    if last_step is None:
        where = "No checkpoint was written yet: a new run starts from step 0"
    else:
        where = (
            f"The last checkpoint, {trainer.run_dir.last_checkpoint} (step {last_step}), is "
            "complete"
        )
    logger.warning(
        "Stopped at once by a second Ctrl-C at step %d. %s; resume with the same options and "
        "resume_interrupted=True (CLI: resume_interrupted=true).",
        progress.step,
        where,
    )
    if trainer.fabric.is_global_zero:
        try:
            trainer.run_dir.write_state(
                "interrupted", step=progress.step, max_steps=progress.max_steps
            )
        except OSError:
            pass


def _log_failure(error: BaseException, trainer: Trainer) -> None:
    """Put the failure in train.log (a traceback only for unexpected errors) and run.json."""
    step = trainer.progress.step
    if isinstance(error, LightlyTrainError | OSError):
        logger.error("Training stopped at step %d: %s", step, error)
    else:
        logger.exception("Training failed at step %d.", step)
    if not trainer.fabric.is_global_zero:
        return
    try:
        trainer.run_dir.write_state(
            "failed",
            step=step,
            max_steps=trainer.progress.max_steps,
            error=str(error) if isinstance(error, LightlyTrainError | OSError) else repr(error),
        )
    except OSError:
        pass
    if trainer.aside is not None and trainer.aside.exists():
        logger.error(
            "The earlier run's files are kept in %s (this run wrote no checkpoint).",
            trainer.aside,
        )
