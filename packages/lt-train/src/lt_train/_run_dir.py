"""The out folder: checks before any work, and the files a run writes into it."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lt_core import ConfigError

__all__ = ["RUN_FILES", "RunDir", "check_out_dir", "log_to_file"]

# Everything a run writes, relative to the out folder. overwrite=True removes only these.
RUN_FILES = (
    "checkpoints",
    "exported_models",
    "metrics.jsonl",
    "train.log",
    "tensorboard",
    "config.json",
)
LOGGER_NAMES = ("lightly_train", "lt_train", "lt_data", "lt_methods")


class RunDir:
    """Paths inside the out folder of a run."""

    def __init__(self, out: str | Path) -> None:
        self.root = Path(out)
        self.checkpoints = self.root / "checkpoints"
        self.last_checkpoint = self.checkpoints / "last.ckpt"
        self.exported = self.root / "exported_models"
        self.exported_last = self.exported / "exported_last.pt"
        self.metrics = self.root / "metrics.jsonl"
        self.log = self.root / "train.log"
        self.config = self.root / "config.json"

    def prepare(self, overwrite: bool) -> None:
        """Create the folders; with ``overwrite`` remove the files of an earlier run only."""
        if overwrite:
            for name in RUN_FILES:
                path = self.root / name
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                elif path.exists() or path.is_symlink():
                    path.unlink()
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        self.exported.mkdir(parents=True, exist_ok=True)


def check_out_dir(out: str | Path, overwrite: bool) -> None:
    """Fail before any work if ``out`` cannot be used. Writes nothing."""
    path = Path(out)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"out='{out}' is a file, not a folder. Pass a folder path for out.")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise ConfigError(
            f"The out folder '{out}' exists and is not empty. Pass overwrite=True to replace the "
            f"results of an earlier run in it ({', '.join(RUN_FILES)}; other files are kept), "
            "or choose a new out folder."
        )
    parent = path.resolve().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ConfigError(f"Cannot create out folder '{out}': '{parent}' is not a folder.")


@contextmanager
def log_to_file(path: Path | None, console: bool) -> Iterator[None]:
    """Send the lightly-train loggers to ``path`` (and to stderr if ``console`` and no handler
    is configured yet) for the duration of the run; remove the handlers afterwards."""
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    handlers: list[logging.Handler] = []
    if path is not None:
        file_handler = logging.FileHandler(path, encoding="utf-8")
        file_handler.setFormatter(fmt)
        handlers.append(file_handler)
    if console and not logging.getLogger().handlers:
        stream = logging.StreamHandler()
        stream.setFormatter(logging.Formatter("[lightly-train] %(message)s"))
        handlers.append(stream)
    loggers = [logging.getLogger(name) for name in LOGGER_NAMES]
    old_levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.INFO)
        for handler in handlers:
            logger.addHandler(handler)
    try:
        yield
    finally:
        for logger, level in zip(loggers, old_levels):
            logger.setLevel(level)
            for handler in handlers:
                logger.removeHandler(handler)
        for handler in handlers:
            handler.close()
