"""What the ``callbacks`` option decides inside the loop: checkpoint cadence, early
stopping, periodic export, and the learning-rate and device metrics."""

from __future__ import annotations

import math
import resource
import sys
import time

import torch

from lt_train._run_args import CallbackArgs

__all__ = ["RunCallbacks"]


class RunCallbacks:
    """The loop asks this object when to checkpoint, export or stop.

    Args:
        args: The run's callbacks (``TrainConfig.callbacks``).
        epochs: Epochs of the run.
    """

    def __init__(self, args: CallbackArgs, epochs: int) -> None:
        assert args.model_checkpoint is not None
        self.args = args
        self.checkpoint = args.model_checkpoint
        self.epochs = epochs
        self._last_save = time.monotonic()
        self._best = math.inf
        self._bad_epochs = 0

    @property
    def check_finite(self) -> bool:
        es = self.args.early_stopping
        return es is None or es.check_finite

    def step_checkpoint_due(self, step: int) -> bool:
        every = self.checkpoint.every_n_train_steps
        if every is not None and step % every == 0:
            return True
        interval = self.checkpoint.train_time_interval
        return interval is not None and time.monotonic() - self._last_save >= interval

    def epoch_checkpoint_due(self, epochs_done: int) -> bool:
        """Every ``every_n_epochs`` epochs, and always after the last one (the finished
        state that export and resume read)."""
        every = self.checkpoint.every_n_epochs
        return epochs_done >= self.epochs or (every is not None and epochs_done % every == 0)

    def saved(self) -> None:
        self._last_save = time.monotonic()

    def export_due(self, epochs_done: int) -> bool:
        export = self.args.model_export
        return export is not None and epochs_done % export.every_n_epochs == 0

    def early_stop(self, epoch_loss: float) -> str | None:
        """A reason to stop after this epoch, or None."""
        es = self.args.early_stopping
        if es is None or not math.isfinite(epoch_loss):
            return None
        if epoch_loss < self._best:
            self._best, self._bad_epochs = epoch_loss, 0
            return None
        self._bad_epochs += 1
        if self._bad_epochs >= es.patience:
            return (
                f"the mean loss of the last {es.patience} epoch(s) did not improve on "
                f"{self._best:.4f} (callbacks.early_stopping.patience={es.patience})"
            )
        return None

    def metrics(self, metrics: dict[str, float], lr: float, device: torch.device) -> None:
        """Add the learning rate and device statistics when their callbacks are on."""
        if self.args.learning_rate_monitor is not None:
            metrics["lr"] = lr
        if self.args.device_stats_monitor is not None:
            if device.type == "cuda":
                metrics["device/max_memory_allocated_mb"] = (
                    torch.cuda.max_memory_allocated(device) / 2**20
                )
            rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            metrics["device/host_max_rss_mb"] = rss / (2**20 if sys.platform == "darwin" else 2**10)
