"""What the ``callbacks`` option decides inside the loop besides checkpoints (see
:mod:`lt_train._checkpointer`): early stopping (on the loss, or on a collapse the health
monitors flag), periodic export, and the learning-rate and device metrics."""

from __future__ import annotations

import math
import resource
import sys

import torch

from lt_train._run_args import CallbackArgs

__all__ = ["RunCallbacks"]


class RunCallbacks:
    """The loop asks this object when to export or stop, and for extra metrics.

    Args:
        args: The run's callbacks (``TrainConfig.callbacks``).
        epochs: Epochs of the run.
    """

    def __init__(self, args: CallbackArgs, epochs: int) -> None:
        self.args = args
        self.epochs = epochs
        self._best = math.inf
        self._bad_epochs = 0
        self._collapse: str | None = None

    @property
    def check_finite(self) -> bool:
        es = self.args.early_stopping
        return es is None or es.check_finite

    def export_due(self, epochs_done: int) -> bool:
        export = self.args.model_export
        return export is not None and epochs_done % export.every_n_epochs == 0

    def stop_on_collapse(self, reason: str) -> bool:
        """Whether the run stops now that the monitors flagged a collapse (``reason``);
        :meth:`early_stop` then returns it."""
        es = self.args.early_stopping
        if es is None or not es.stop_on_collapse:
            return False
        self._collapse = f"{reason} (callbacks.early_stopping.stop_on_collapse=True)"
        return True

    def early_stop(self, epoch_loss: float) -> str | None:
        """A reason to stop after this epoch, or None."""
        es = self.args.early_stopping
        if self._collapse is not None:
            return self._collapse
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
