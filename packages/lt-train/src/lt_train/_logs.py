"""The run's log: console output, and train.log once the out folder may be written.

Records logged before train.log can be opened (the data listing, the plan's warnings) are
kept in memory and written into train.log when it opens, so the file tells the whole story.
Each record is written and flushed as one line, so a killed run loses no finished line.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["LOGGER_NAMES", "RunLog", "run_log"]

LOGGER_NAMES = ("lightly_train", "lt_train", "lt_data", "lt_methods", "lt_core")
_FILE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class _Buffer(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class RunLog:
    """Handlers of the lightly-train loggers during one run (see :func:`run_log`)."""

    def __init__(self, console: bool) -> None:
        self._loggers = [logging.getLogger(name) for name in LOGGER_NAMES]
        self._levels = [lg.level for lg in self._loggers]
        self._handlers: list[logging.Handler] = []
        self._buffer: _Buffer | None = _Buffer()
        self._add(self._buffer)
        if console and not logging.getLogger().handlers:
            stream = logging.StreamHandler()
            stream.setFormatter(logging.Formatter("[lightly-train] %(message)s"))
            self._add(stream)
        # LIGHTLY_TRAIN_LOG_LEVEL=DEBUG (the CLI's -v) shows debug messages too.
        level = logging.getLevelName(os.environ.get("LIGHTLY_TRAIN_LOG_LEVEL", "INFO").upper())
        for lg in self._loggers:
            lg.setLevel(level if isinstance(level, int) else logging.INFO)

    def _add(self, handler: logging.Handler) -> None:
        self._handlers.append(handler)
        for lg in self._loggers:
            lg.addHandler(handler)

    def _remove(self, handler: logging.Handler) -> None:
        self._handlers.remove(handler)
        for lg in self._loggers:
            lg.removeHandler(handler)
        handler.close()

    def open_file(self, path: Path | None) -> None:
        """Append to ``path`` from now on, starting with the records buffered so far;
        ``None`` (processes other than the first) drops the buffer."""
        buffer, self._buffer = self._buffer, None
        if buffer is not None:
            self._remove(buffer)
        if path is None:
            return
        handler = logging.FileHandler(path, encoding="utf-8")
        handler.setFormatter(logging.Formatter(_FILE_FORMAT))
        for record in buffer.records if buffer is not None else []:
            handler.handle(record)
        self._add(handler)

    def close(self) -> None:
        for handler in list(self._handlers):
            self._remove(handler)
        for lg, level in zip(self._loggers, self._levels):
            lg.setLevel(level)


@contextmanager
def run_log(console: bool) -> Iterator[RunLog]:
    """Route the lightly-train loggers for the duration of a run; undo it afterwards."""
    log = RunLog(console)
    try:
        yield log
    finally:
        log.close()
