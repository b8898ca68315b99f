"""Stopping a run cleanly: SIGINT/SIGTERM finish the current step and save a checkpoint;
a non-finite loss stops the run before a checkpoint could store broken weights."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

import torch

from lt_core import LossNotFiniteError, TrainingInterrupted

__all__ = ["LossNotFiniteError", "StopSignals", "TrainingInterrupted"]


class StopSignals:
    """Records SIGINT and SIGTERM instead of dying at once, while :meth:`installed`.

    The first signal sets :attr:`received` (the loop stops after the current step); the
    handler then steps aside, so a second Ctrl-C stops the process immediately (every file
    is written atomically, so even that loses only the steps since the last checkpoint).
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signum
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)

    @contextlib.contextmanager
    def installed(self) -> Iterator[StopSignals]:
        if threading.current_thread() is not threading.main_thread():
            yield self  # signal handlers can only be set in the main thread
            return
        self._previous = {sig: signal.getsignal(sig) for sig in self.SIGNALS}
        for sig in self.SIGNALS:
            signal.signal(sig, self._handle)
        try:
            yield self
        finally:
            for sig, previous in self._previous.items():
                signal.signal(sig, previous)

    def any_process(self, group: Any | None) -> int | None:
        """The signal received by any process (``group`` is a gloo process group, or
        ``None`` in a single process), so that all processes stop after the same step."""
        if group is None:
            return self.received
        flag = torch.tensor([self.received or 0], dtype=torch.int64)
        torch.distributed.all_reduce(flag, op=torch.distributed.ReduceOp.MAX, group=group)
        value = int(flag.item())
        return value or None


def signal_name(signum: int) -> str:
    with contextlib.suppress(ValueError):
        return signal.Signals(signum).name
    return f"signal {signum}"
