"""Metrics: metrics.jsonl, TensorBoard (through Fabric's loggers) and the progress bar."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

__all__ = ["JsonlWriter", "StepTimer"]


class JsonlWriter:
    """Appends one JSON object per line to ``metrics.jsonl``."""

    def __init__(self, path: Path) -> None:
        self._file = path.open("a", encoding="utf-8")

    def write(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


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

    def summary(self) -> dict[str, float]:
        total = max(self.total, 1e-9)
        return {"images_per_s": self.images / total, "data_wait": self.wait / total}
