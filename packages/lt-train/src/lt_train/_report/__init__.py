"""The run report: ``write_report(out)`` writes ``out/report.html`` from the run's files.

One self-contained HTML page that opens offline in any browser: the verdict on the
embeddings' health and the kNN gain, charts over steps (loss, learning rate, speed,
data wait, the label-free monitors, kNN accuracy), the augmented views, nearest
neighbours under the starting and the final weights, skipped images, hardware and
timings, and the resolved config. It reads only what is on disk, so it works for a
finished, interrupted, failed or still running run (docs/report.md).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from lt_train._atomic import atomic_write_text
from lt_train._report._charts import charts
from lt_train._report._html import page
from lt_train._report._images import Neighbours, ViewGrid, neighbours, view_grids
from lt_train._report._read import RUN_MARKERS, Run, read_run
from lt_train._report._verdict import knn_line, status_line, verdict

__all__ = ["REPORT_NAME", "RUN_MARKERS", "write_report"]

logger = logging.getLogger(__name__)

#: The report's file name inside the out folder.
REPORT_NAME = "report.html"


def write_report(out: str | os.PathLike[str]) -> Path:
    """Write ``out/report.html`` (atomically) from the run in ``out``; return its path.

    Parts of the run that are absent (no monitors, no kNN lines, a run still running or
    interrupted) are left out of the page and listed under "What is missing".

    Raises:
        ConfigError: ``out`` does not exist, is a file, or holds no run (none of
            metrics.jsonl, run.json, config.json, train.log).
    """
    run = read_run(out)
    notes = list(run.missing)
    grids: list[ViewGrid] = []
    if run.views is not None:
        grids, problems = view_grids(run.views)
        notes += problems
    nearest: list[Neighbours] = []
    if run.start is not None and run.last is not None and run.sample is not None:
        nearest = neighbours(run.start["embeddings"], run.last["embeddings"])
    elif run.sample is not None or run.start is not None or run.last is not None:
        notes.append(
            "No nearest neighbours: they need monitor/sample.pt, embeddings_start.pt and "
            "embeddings_last.pt."
        )
    notes += _missing_curves(run)
    html = page(
        run,
        health=verdict(run),
        knn=knn_line(run),
        status=status_line(run),
        charts=charts(run),
        grids=grids,
        nearest=nearest,
        notes=notes,
    )
    path = run.root / REPORT_NAME
    atomic_write_text(path, html)
    return path


def _missing_curves(run: Run) -> list[str]:
    notes = []
    if run.series and not run.values("loss"):
        notes.append("No loss lines in metrics.jsonl: the run stopped before its first log.")
    if run.series and not run.values("val/knn_top1"):
        notes.append("No kNN lines in metrics.jsonl: pass labeled val_data= for the kNN probe.")
    if run.series and run.event("end") is None:
        notes.append("No end event in metrics.jsonl: the run has not finished.")
    return notes
