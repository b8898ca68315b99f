"""The out folder: checks before any work, the files a run writes into it, and the rule that
nothing of an earlier run is lost before the new run has proven it can run."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from lt_core import ConfigError
from lt_train._atomic import atomic_write_text, remove_temp_files

logger = logging.getLogger(__name__)

__all__ = ["PREVIOUS_PREFIX", "RUN_FILES", "RunDir", "check_out_dir"]

# Everything a run writes, relative to the out folder. overwrite=True moves only these.
RUN_FILES = (
    "checkpoints",
    "exported_models",
    "metrics.jsonl",
    "train.log",
    "tensorboard",
    "config.json",
    "run.json",
)
#: With overwrite=True the earlier run's files wait in ``<out>/<PREVIOUS_PREFIX><time>/``
#: until the new run has written its first checkpoint.
PREVIOUS_PREFIX = ".previous_run_"


class RunDir:
    """Paths inside the out folder of a run, and its state file ``run.json``.

    ``run.json`` holds ``{"status": "running" | "finished" | "interrupted" | "failed",
    "step": ..., "max_steps": ...}``. A run killed without warning (SIGKILL, power loss)
    stays ``"running"``; a later run treats it as interrupted.
    """

    def __init__(self, out: str | Path, checkpoints: str | Path | None = None) -> None:
        self.root = Path(out)
        self.checkpoints = Path(checkpoints) if checkpoints else self.root / "checkpoints"
        self.last_checkpoint = self.checkpoints / "last.ckpt"
        self.exported = self.root / "exported_models"
        self.exported_last = self.exported / "exported_last.pt"
        self.metrics = self.root / "metrics.jsonl"
        self.log = self.root / "train.log"
        self.config = self.root / "config.json"
        self.state_file = self.root / "run.json"

    def state(self) -> dict[str, Any] | None:
        """The content of ``run.json``, or ``None`` if there is none (or it is unreadable)."""
        try:
            state = json.loads(self.state_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return state if isinstance(state, dict) else None

    def write_state(self, status: str, **info: Any) -> None:
        record = {"status": status, **info, "updated": time.strftime("%Y-%m-%d %H:%M:%S")}
        atomic_write_text(self.state_file, json.dumps(record, indent=2) + "\n")

    def earlier_run_files(self) -> list[Path]:
        return [self.root / n for n in RUN_FILES if os.path.lexists(self.root / n)]

    def prepare(self, overwrite: bool) -> Path | None:
        """Create the folders. With ``overwrite``, move an earlier run's files into a
        hidden ``.previous_run_<time>`` folder (other files stay) and return it; call
        :meth:`discard_previous` once the new run has a checkpoint."""
        aside: Path | None = None
        if overwrite and self.earlier_run_files():
            aside = self.root / f"{PREVIOUS_PREFIX}{time.strftime('%Y%m%d-%H%M%S')}"
            suffix = 0
            while aside.exists():
                suffix += 1
                aside = aside.with_name(f"{aside.name.split('~')[0]}~{suffix}")
            aside.mkdir()
            for path in self.earlier_run_files():
                os.replace(path, aside / path.name)
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        self.exported.mkdir(parents=True, exist_ok=True)
        remove_temp_files(self.root, self.checkpoints, self.exported)
        return aside

    def discard_previous(self) -> None:
        """Remove the earlier runs' files that ``prepare(overwrite=True)`` moved aside."""
        for path in self.root.glob(f"{PREVIOUS_PREFIX}*"):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)


def check_out_dir(
    out: str | Path, overwrite: bool, resume: bool = False, checkpoints: str | None = None
) -> None:
    """Fail before any work if ``out`` cannot be used. Leaves nothing behind.

    Checks that ``out`` is a folder (or can be created), that it is writable (a probe
    folder is created and removed), and that an earlier run in it is not replaced without
    ``overwrite=True``, or, with ``resume``, that it holds an interrupted run.
    """
    path = Path(out)
    run = RunDir(path, checkpoints)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"out='{out}' is a file, not a folder. Pass a folder path for out.")
    if resume:
        _check_resumable(run)
    elif path.is_dir() and any(path.iterdir()) and not overwrite:
        state = run.state()
        if state is not None and state.get("status") != "finished":
            raise ConfigError(
                f"The out folder '{out}' holds an interrupted run (stopped at step "
                f"{state.get('step', '?')} of {state.get('max_steps', '?')}). Pass "
                "resume_interrupted=True to continue it, overwrite=True to start over, or "
                "choose a new out folder."
            )
        raise ConfigError(
            f"The out folder '{out}' exists and is not empty. Pass overwrite=True to replace the "
            f"results of an earlier run in it ({', '.join(RUN_FILES)}; other files are kept), "
            "or choose a new out folder."
        )
    parent = path.resolve()
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ConfigError(f"Cannot create out folder '{out}': '{parent}' is not a folder.")
    _check_writable(parent, out)


def _check_resumable(run: RunDir) -> None:
    state = run.state()
    if not run.last_checkpoint.is_file():
        raise ConfigError(
            f"resume_interrupted=True, but '{run.root}' holds no checkpoint to resume from "
            f"({run.last_checkpoint} is missing). Fix: pass the out folder of the "
            "interrupted run, or drop resume_interrupted to start a new run."
        )
    if state is not None and state.get("status") == "finished":
        raise ConfigError(
            f"The run in '{run.root}' finished (step {state.get('step')} of "
            f"{state.get('max_steps')}); there is nothing to resume. Fix: use its export, "
            "pass checkpoint='<out>/checkpoints/last.ckpt' with a new out folder to train "
            "further, or overwrite=True to start over."
        )


def _check_writable(folder: Path, out: str | Path) -> None:
    try:
        probe = tempfile.mkdtemp(prefix=".lightly-train-probe-", dir=folder)
    except OSError as e:
        raise ConfigError(
            f"Cannot write to the out folder '{out}' ({folder}: {e.strerror or e}). Fix: "
            "choose an out folder in a location you can write to, or fix its permissions."
        ) from e
    with contextlib.suppress(OSError):
        os.rmdir(probe)
