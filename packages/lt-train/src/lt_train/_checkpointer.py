"""When checkpoints are written and how many are kept (``callbacks.model_checkpoint``)."""

from __future__ import annotations

import contextlib
import logging
import os
import time
from pathlib import Path
from typing import Any

from lt_train._atomic import (
    DiskFullError,
    atomic_torch_save,
    check_free_space,
    fsync_dir,
    torch_save_size,
)
from lt_train._run_args import ModelCheckpointArgs

logger = logging.getLogger(__name__)

__all__ = ["Checkpointer"]

_DEFAULT_NAME = "epoch={epoch}-step={step}"


class Checkpointer:
    """Decides its own cadence and writes: every ``every_n_train_steps`` steps, whenever
    ``train_time_interval`` seconds passed since the last one, every ``every_n_epochs``
    epochs and always after the last epoch (the finished state that export and resume
    read). ``checkpoints/last.ckpt`` is always the newest; with ``save_top_k > 1`` (or
    ``-1``: all) the newest ``save_top_k`` are also kept under ``filename``.

    Args:
        args: The run's ``callbacks.model_checkpoint``.
        folder: Where the checkpoints go.
        epochs: Epochs of the run.
        last_step: The step of the newest checkpoint (a resumed run's), or ``None``.
    """

    def __init__(
        self, args: ModelCheckpointArgs, folder: Path, epochs: int, last_step: int | None = None
    ) -> None:
        self.args = args
        self.folder = folder
        self.epochs = epochs
        self.last_step = last_step
        self._last_time = time.monotonic()
        self._low_space = False  # warned already (until a check finds room again)

    @property
    def last(self) -> Path:
        return self.folder / "last.ckpt"

    def due_after_step(self, step: int) -> bool:
        """Whether step ``step`` (1-based) ends with a checkpoint by step count."""
        every = self.args.every_n_train_steps
        return every is not None and step % every == 0

    def time_due(self) -> bool:
        """Whether ``train_time_interval`` passed since the last checkpoint (processes
        must agree on it: the trainer combines their answers)."""
        interval = self.args.train_time_interval
        return interval is not None and time.monotonic() - self._last_time >= interval

    def due_after_epoch(self, epochs_done: int) -> bool:
        every = self.args.every_n_epochs
        return epochs_done >= self.epochs or (every is not None and epochs_done % every == 0)

    def done(self, step: int) -> None:
        """A checkpoint of ``step`` was written (by process 0; every process calls this)."""
        self.last_step = step
        self._last_time = time.monotonic()

    def write(self, state: dict[str, Any]) -> Path:
        """Write ``state`` to ``last.ckpt`` atomically (and keep the numbered copies)."""
        args = self.args
        needed = torch_save_size(state)
        self._check_space(needed, f"the checkpoint of step {state['step']}")
        try:
            path = self._write(state, args.save_top_k, args.filename or _DEFAULT_NAME, needed)
        except DiskFullError as e:
            if self.last_step is not None and self.last.is_file():
                note = f"the last complete checkpoint, {self.last} (step {self.last_step}), is kept"
            else:
                note = "no checkpoint was written before it"
            raise e.with_note(note) from e.__cause__
        with contextlib.suppress(OSError):
            needed = max(needed, self.last.stat().st_size)
        self._check_space(needed, "the next checkpoint")
        if args.verbose:
            logger.info("Saved checkpoint %s (step %d).", path, state["step"])
        return path

    def _check_space(self, needed: int, what: str) -> None:
        """Warn once (until there is room again) when ``what`` will not fit."""
        self._low_space = not check_free_space(
            self.folder, needed, None if self._low_space else what
        )

    def _write(self, state: dict[str, Any], keep: int, filename: str, needed: int) -> Path:
        folder, last = self.folder, self.last
        if keep == 1:
            atomic_torch_save(state, last, needed)
            return last
        numbered = folder / (filename.format(epoch=state["epoch"], step=state["step"]) + ".ckpt")
        atomic_torch_save(state, numbered, needed)
        link = folder / f".last.ckpt.tmp-link-{os.getpid()}"
        try:
            os.link(numbered, link)  # last.ckpt becomes the same file, replaced in one step
            os.replace(link, last)
            fsync_dir(folder)
        except OSError:
            with contextlib.suppress(OSError):
                link.unlink()
            atomic_torch_save(state, last, needed)
        if keep > 1:
            pattern = filename.replace("{epoch}", "*").replace("{step}", "*") + ".ckpt"
            kept = [p for p in folder.glob(pattern) if p.name != "last.ckpt"]
            kept.sort(key=lambda p: p.stat().st_mtime_ns)
            for old in kept[:-keep]:
                with contextlib.suppress(OSError):
                    old.unlink()
        return last
