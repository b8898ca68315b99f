"""Stopping a run cleanly: SIGINT/SIGTERM finish the current step and save a checkpoint;
a non-finite loss stops the run before a checkpoint could store broken weights."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any

from lt_core import LossNotFiniteError, TrainingInterrupted

__all__ = ["LossNotFiniteError", "StopSignals", "TrainingInterrupted", "ignore_stop_signals"]


class StopSignals:
    """Records SIGINT and SIGTERM instead of dying at once, while :meth:`installed`.

    The first signal sets :attr:`received` (the loop stops after the current step and
    saves a checkpoint). A second signal stops the process at once (the previous handler
    runs: a KeyboardInterrupt for Ctrl-C), except while a checkpoint is written
    (:meth:`deferred`): then it takes effect as soon as the write is complete, so the
    write is never cut into (it is atomic anyway: the previous checkpoint would be kept).
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}
        self._deferring = False
        self._pending: tuple[int, FrameType | None] | None = None

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signum
            return
        if self._deferring:
            self._pending = (signum, frame)
            return
        self._pass_on(signum, frame)

    def _pass_on(self, signum: int, frame: FrameType | None) -> None:
        """Restore the previous handlers and let the signal act as without us."""
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        previous = self._previous.get(signum, signal.SIG_DFL)
        if callable(previous):
            previous(signum, frame)  # default_int_handler: KeyboardInterrupt
        elif previous == signal.SIG_DFL:
            os.kill(os.getpid(), signum)

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """Hold back a second signal until the block (a checkpoint write) is done."""
        if self._deferring or not self._previous:
            yield
            return
        self._deferring = True
        try:
            yield
        finally:
            self._deferring = False
            pending, self._pending = self._pending, None
            if pending is not None:
                self._pass_on(*pending)

    @contextlib.contextmanager
    def installed(self) -> Iterator[StopSignals]:
        if threading.current_thread() is not threading.main_thread():
            yield self  # signal handlers can only be set in the main thread
            return
        # (None: a handler not set from Python, which cannot be restored: the default)
        self._previous = {int(sig): signal.getsignal(sig) or signal.SIG_DFL for sig in self.SIGNALS}
        for sig in self.SIGNALS:
            signal.signal(sig, self._handle)
        try:
            yield self
        finally:
            for signum, previous in self._previous.items():
                signal.signal(signum, previous)
            self._previous = {}


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
