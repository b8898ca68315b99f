"""Load a run from its out folder, for the report: whatever of it is on disk.

A run may be finished, interrupted, failed or still running, and may predate the monitors,
so every part is optional: what is absent or unreadable is named in :attr:`Run.missing`
instead of failing. Only a missing folder, or one that holds no run at all, is an error.
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from lt_core import ConfigError

__all__ = ["RUN_MARKERS", "LogFacts", "Run", "read_run"]

#: A folder holding at least one of these is a run's out folder.
RUN_MARKERS = ("metrics.jsonl", "run.json", "config.json", "train.log")
_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (?P<level>[A-Z]+) (?P<name>[\w.]+): ")
_SKIPPED = re.compile(r"^Skipped unreadable image(?: \(process (?P<rank>\d+)\))? (?P<rest>.*)$")


@dataclass(kw_only=True)
class LogFacts:
    """What the report takes from ``train.log`` (the last value where a resumed run
    appended several)."""

    devices: str | None = None
    versions: str | None = None
    summary: str | None = None
    skipped: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (level, message)


@dataclass(kw_only=True)
class Run:
    """The parts of a run found on disk; ``None`` or empty where a part is absent."""

    root: Path
    config: dict[str, Any] | None = None
    state: dict[str, Any] | None = None
    series: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    log: LogFacts = field(default_factory=LogFacts)
    sample: dict[str, Any] | None = None
    start: dict[str, Any] | None = None
    last: dict[str, Any] | None = None
    views: dict[str, Any] | None = None
    missing: list[str] = field(default_factory=list)

    def values(self, key: str) -> list[tuple[int, float]]:
        """``(step, value)`` of metric ``key`` by step (each step once, the latest line)."""
        return self.series.get(key, [])

    def event(self, name: str) -> dict[str, Any] | None:
        """The last event line ``{"event": name, ...}`` of metrics.jsonl, or ``None``."""
        found = [e for e in self.events if e.get("event") == name]
        return found[-1] if found else None

    def max_rank(self) -> int | None:
        """The largest possible RankMe of the monitor sample: min(sample size, dim)."""
        embeddings = (self.last or self.start or {}).get("embeddings")
        return None if embeddings is None else int(min(embeddings.shape))


def read_run(out: str | os.PathLike[str]) -> Run:
    """Read the run in ``out``; raise :class:`ConfigError` if ``out`` holds no run."""
    root = Path(out)
    if not root.exists():
        raise ConfigError(
            f"The out folder '{out}' does not exist. Fix: pass the out folder of a run, the "
            "folder given as out= to train (e.g. out/my_experiment)."
        )
    if not root.is_dir():
        raise ConfigError(
            f"'{out}' is a file, not a run's out folder. Fix: pass the folder given as out= "
            "to train (it holds metrics.jsonl and train.log)."
        )
    if not any((root / name).is_file() for name in RUN_MARKERS):
        raise ConfigError(
            f"The folder '{out}' is not a run's out folder: it has none of "
            f"{', '.join(RUN_MARKERS)}. Fix: pass the folder given as out= to train, or "
            "start a run into it first."
        )
    run = Run(root=root)
    run.config = _json_file(root / "config.json", run.missing)
    run.state = _json_file(root / "run.json", run.missing)
    _read_metrics(root / "metrics.jsonl", run)
    run.log = _read_log(root / "train.log", run.missing)
    monitor = root / "monitor"
    run.sample = _pt_file(monitor / "sample.pt", ("names", "thumbnails"), run.missing)
    run.start = _pt_file(monitor / "embeddings_start.pt", ("step", "embeddings"), run.missing)
    run.last = _pt_file(monitor / "embeddings_last.pt", ("step", "embeddings"), run.missing)
    run.views = _pt_file(monitor / "views.pt", ("groups",), run.missing)
    _check_sample(run)
    return run


def _json_file(path: Path, missing: list[str]) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        missing.append(f"{path.name} is absent.")
        return None
    except (OSError, ValueError) as e:
        missing.append(f"{path.name} is unreadable ({e}).")
        return None
    return value if isinstance(value, dict) else None


def _read_metrics(path: Path, run: Run) -> None:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        run.missing.append("metrics.jsonl is absent: no curves (the jsonl logger was off?).")
        return
    except OSError as e:
        run.missing.append(f"metrics.jsonl is unreadable ({e}).")
        return
    by_key: dict[str, dict[int, float]] = {}
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue  # a line cut by a crash, or being written right now
        if not isinstance(record, dict):
            continue
        if "event" in record:
            run.events.append(record)
            continue
        step = record.get("step")
        if not isinstance(step, int) or isinstance(step, bool):
            continue
        for key, value in record.items():
            if key != "step" and isinstance(value, int | float) and not isinstance(value, bool):
                by_key.setdefault(key, {})[step] = float(value)
    run.series = {key: sorted(steps.items()) for key, steps in by_key.items()}


def _read_log(path: Path, missing: list[str]) -> LogFacts:
    facts = LogFacts()
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        missing.append("train.log is absent: no hardware, versions or skipped images.")
        return facts
    except OSError as e:
        missing.append(f"train.log is unreadable ({e}).")
        return facts
    for line in text.splitlines():
        match = _LOG_LINE.match(line)
        if match is None:
            continue  # a traceback's or a message's continuation line
        message, level = line[match.end() :], match["level"]
        if message.startswith("Devices:"):
            facts.devices = message.removeprefix("Devices:").strip()
        elif message.startswith("Python ") and match["name"].endswith("_run_info"):
            facts.versions = message
        elif message.startswith("Pretraining "):
            facts.summary = message
        skipped = _SKIPPED.match(message)
        if skipped:
            name, _, reason = skipped["rest"].partition(": ")
            facts.skipped.append((name, reason))
        elif level in ("WARNING", "ERROR", "CRITICAL"):
            facts.warnings.append((level, message))
    return facts


def _pt_file(path: Path, keys: tuple[str, ...], missing: list[str]) -> dict[str, Any] | None:
    if not path.is_file():
        missing.append(f"monitor/{path.name} is absent.")
        return None
    try:
        value = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # truncated, foreign or from a newer torch: name it, go on
        missing.append(f"monitor/{path.name} is unreadable ({type(e).__name__}: {e}).")
        return None
    if not isinstance(value, dict) or any(key not in value for key in keys):
        missing.append(f"monitor/{path.name} lacks the keys {', '.join(keys)}; it is ignored.")
        return None
    return value


def _check_sample(run: Run) -> None:
    """Drop monitor files whose shapes do not fit the contract or each other."""
    sample = run.sample
    if sample is not None:
        thumbs = sample["thumbnails"]
        ok = (
            isinstance(thumbs, torch.Tensor)
            and thumbs.dtype == torch.uint8
            and thumbs.ndim == 4
            and thumbs.shape[1] == 3
            and len(sample["names"]) == thumbs.shape[0]
        )
        if not ok:
            run.missing.append("monitor/sample.pt has no (N, 3, H, W) uint8 thumbnails; ignored.")
            run.sample = None
    for name in ("start", "last"):
        record = getattr(run, name)
        if record is None:
            continue
        embeddings = record["embeddings"]
        n = None if run.sample is None else run.sample["thumbnails"].shape[0]
        if not (isinstance(embeddings, torch.Tensor) and embeddings.ndim == 2) or (
            n is not None and embeddings.shape[0] != n
        ):
            run.missing.append(
                f"monitor/embeddings_{name}.pt does not hold (N, D) embeddings of the "
                f"{n} sample images; ignored."
            )
            setattr(run, name, None)
        elif not torch.isfinite(embeddings.float()).all():
            run.missing.append(f"monitor/embeddings_{name}.pt holds NaN or inf; ignored.")
            setattr(run, name, None)


def finite(value: float | None) -> bool:
    """Whether ``value`` is a number that can be shown and plotted."""
    return value is not None and math.isfinite(value)
