"""The out folder: checks before any work, the files a run writes into it, and the rule that
nothing of an earlier run is lost before the new run has proven it can run."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from lt_core import ConfigError
from lt_train._atomic import atomic_write_text, remove_temp_files

logger = logging.getLogger(__name__)

__all__ = ["LOCK_NAME", "PREVIOUS_PREFIX", "RUN_FILES", "OutFolderLock", "RunDir", "check_out_dir"]

# Everything a run writes, relative to the out folder. overwrite=True moves only these.
RUN_FILES = (
    "checkpoints",
    "exported_models",
    "metrics.jsonl",
    "train.log",
    "tensorboard",
    "config.json",
    "run.json",
    "report.html",
    "monitor",
)
#: With overwrite=True the earlier run's files wait in ``<out>/<PREVIOUS_PREFIX><time>/``
#: until the new run has written its first checkpoint.
PREVIOUS_PREFIX = ".previous_run_"
#: The lock file of the run that owns the out folder (see :class:`OutFolderLock`).
LOCK_NAME = ".lock"


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
    elif path.is_dir() and any(p.name != LOCK_NAME for p in path.iterdir()) and not overwrite:
        state = run.state()
        if state is not None and state.get("status") != "finished":
            what = "a failed run" if state.get("status") == "failed" else "an interrupted run"
            if not run.last_checkpoint.is_file():
                what += ", stopped before its first checkpoint"
            raise ConfigError(
                f"The out folder '{out}' holds {what} (step {state.get('step', '?')} of "
                f"{state.get('max_steps', '?')}). Pass resume_interrupted=True to continue it "
                "(from step 0 without a checkpoint), overwrite=True to start over, or choose "
                "a new out folder."
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
    """A finished run cannot be resumed. A folder without a checkpoint (a run stopped
    before its first one, or none yet) is fine: the run starts from step 0, so a requeue
    script may always pass resume_interrupted=True."""
    state = run.state()
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


class OutFolderLock:
    """The lock of the run that owns an out folder: ``<out>/.lock``, a small JSON file
    (pid, host, process start, start time, command) created with ``O_CREAT | O_EXCL``,
    which is atomic on local filesystems and on NFSv3 and later. Only the first process
    of a run takes it.

    A lock whose run is gone (same host, and its pid is not running or now belongs to a
    process started at another time) is stale and taken over; a lock of another host is
    never taken over: that run may still be running.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.path = self.root / LOCK_NAME
        self.held = False

    def holder(self) -> dict[str, Any] | None:
        """The lock's record, ``{}`` if it is unreadable, ``None`` if there is no lock."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError:
            return {}
        try:
            record = json.loads(text)
        except ValueError:
            return {}
        return record if isinstance(record, dict) else {}

    def check(self) -> None:
        """Fail if a live run holds the lock (nothing is written)."""
        holder = self.holder()
        if holder is not None and not _is_stale(holder, self.path):
            raise ConfigError(self._held_message(holder))

    def acquire(self) -> None:
        """Take the lock (creating the out folder), taking over a stale one."""
        self.root.mkdir(parents=True, exist_ok=True)
        record = _own_record()
        data = (json.dumps(record, indent=2) + "\n").encode("utf-8")
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                holder = self.holder()
                if holder is None:
                    continue  # released meanwhile
                if not _is_stale(holder, self.path):
                    raise ConfigError(self._held_message(holder)) from None
                self._take_over(holder)
                continue
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            self.held = True
            return
        raise ConfigError(
            f"Could not take the lock {self.path}: other runs keep taking it. Fix: start "
            "one run per out folder."
        )

    def _take_over(self, holder: dict[str, Any]) -> None:
        """Move a stale lock out of the way (only one of several runs doing the same wins:
        a rename of a file that another run already replaced is undone)."""
        aside = self.path.with_name(f"{LOCK_NAME}.stale-{os.getpid()}")
        try:
            os.replace(self.path, aside)
        except FileNotFoundError:
            return
        try:
            moved = json.loads(aside.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            moved = {}
        if moved != holder and holder:  # another run took the lock meanwhile: put it back
            with contextlib.suppress(OSError):
                os.link(aside, self.path)
        else:
            logger.warning(
                "Took over the lock %s of an earlier run that is gone (%s).",
                self.path,
                _describe(holder),
            )
        with contextlib.suppress(OSError):
            aside.unlink()

    def release(self) -> None:
        """Remove the lock if this process holds it."""
        if not self.held:
            return
        self.held = False
        holder = self.holder()
        if (
            holder is not None
            and holder.get("pid") == os.getpid()
            and (holder.get("host") == socket.gethostname())
        ):
            with contextlib.suppress(OSError):
                self.path.unlink()

    def _held_message(self, holder: dict[str, Any]) -> str:
        same_host = holder.get("host") == socket.gethostname()
        if same_host:
            fix = (
                "Wait for it to end, stop it, or choose another out folder (one run per out "
                "folder)."
            )
        else:
            fix = (
                "It runs on another host, so its process cannot be checked from here. Wait "
                "for it to end or choose another out folder; if that run is truly gone "
                f"(killed, its machine down), delete {self.path} and start again."
            )
        return (
            f"The out folder '{self.root}' is in use by another run ({_describe(holder)}); "
            f"nothing was written. {fix}"
        )


def _describe(holder: dict[str, Any]) -> str:
    if not holder:
        return "its lock file is empty or unreadable"
    parts = [f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')}"]
    if holder.get("started"):
        parts.append(f"started {holder['started']}")
    if holder.get("command"):
        parts.append(f"command: {holder['command']}")
    return ", ".join(parts)


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the process name (Linux), or ``None``: field 3
    (the state) is ``[0]``, field 22 (the start time) ``[19]``."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
    except OSError:
        return None


def _process_start(pid: int) -> str | None:
    """When process ``pid`` started, or ``None``."""
    fields = _stat_fields(pid)
    return fields[19] if fields is not None else None


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, killed but not yet waited for, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    fields = _stat_fields(pid)
    return fields is None or not fields or fields[0] not in ("Z", "X")


def _own_record() -> dict[str, Any]:
    pid = os.getpid()
    return {
        "pid": pid,
        "host": socket.gethostname(),
        "process_start": _process_start(pid),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
        "command": " ".join(sys.argv)[:500],
    }


#: An unreadable lock younger than this is a run writing it right now.
_FRESH_S = 10.0


def _is_stale(holder: dict[str, Any], path: Path) -> bool:
    """Whether the run that wrote ``holder`` is gone (only decidable on its own host)."""
    if not holder:  # empty or unreadable: stale once it is not being written any more
        with contextlib.suppress(OSError):
            return time.time() - path.stat().st_mtime > _FRESH_S
        return False
    if holder.get("host") != socket.gethostname():
        return False
    pid = holder.get("pid")
    if not isinstance(pid, int):
        return True
    if pid == os.getpid():
        return False  # this process (e.g. a second train() call in it after a crash)
    if not _pid_alive(pid):
        return True
    start = holder.get("process_start")
    return start is not None and _process_start(pid) not in (None, start)


def truncate_metrics(path: Path, step: int) -> None:
    """Drop the metrics of steps after the checkpoint, and the events but a collapse
    flagged by then (the checkpoint remembers it, so the resumed run does not flag it
    again): the resumed run logs them again."""
    if not path.is_file():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line cut by a crash
        if (
            isinstance(record, dict)
            and record.get("event", "collapse") == "collapse"
            and record.get("step", 0) <= step
        ):
            kept.append(line + "\n")
    atomic_write_text(path, "".join(kept))
