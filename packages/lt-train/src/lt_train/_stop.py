"""Stopping a run cleanly: SIGINT/SIGTERM finish the current step and save a checkpoint;
a non-finite loss stops the run before a checkpoint could store broken weights."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

from lt_core import LossNotFiniteError, TrainingInterrupted

__all__ = ["LossNotFiniteError", "StopSignals", "TrainingInterrupted", "ignore_stop_signals"]


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


def signal_name(signum: int) -> str:
    with contextlib.suppress(ValueError):
        return signal.Signals(signum).name
    return f"signal {signum}"


def ignore_stop_signals(worker_id: int) -> None:
    """A DataLoader worker's start: the main process decides when to stop (after the
    current step, with a checkpoint); a worker that died from Ctrl-C or SIGTERM would break
    the step it is feeding."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
