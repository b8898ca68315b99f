"""Throughput and data-wait of the steps (the metric writers are in _loggers.py)."""

from __future__ import annotations

import time

__all__ = ["StepTimer"]


class StepTimer:
    """Measures throughput and the share of time spent waiting for data over a window."""

    def __init__(self) -> None:
        self.reset()
        self._mark = time.perf_counter()

    def reset(self) -> None:
        self.images = 0
        self.wait = 0.0
        self.total = 0.0

    def data_ready(self) -> None:
        """Call when a batch arrives: the time since the last step ended was data waiting."""
        now = time.perf_counter()
        self.wait += now - self._mark
        self.total += now - self._mark
        self._mark = now

    def step_done(self, images: int) -> None:
        now = time.perf_counter()
        self.total += now - self._mark
        self._mark = now
        self.images += images

    def exclude(self) -> None:
        """Leave the time since the last call or step out of the window (a monitor check
        is neither a step nor a wait for data)."""
        self._mark = time.perf_counter()

    def summary(self) -> dict[str, float]:
        total = max(self.total, 1e-9)
        return {"images_per_s": self.images / total, "data_wait": self.wait / total}
