"""``lightly_train.report``: write a run's report page from its out folder."""

from __future__ import annotations

import os
from pathlib import Path

from lt_train import write_report

__all__ = ["report"]


def report(out: str | os.PathLike[str]) -> Path:
    """Write ``out/report.html``, the report of the run in ``out``, and return its path.

    ``train`` writes the report at the end of every run (also of a failed or interrupted
    one); call this to write it again, or for a run that is still running or was killed.
    It reads only the run's files, so it runs anywhere the out folder can be read, without
    the model or the data.

    The page is one self-contained HTML file that opens offline in any browser: the
    verdict on the embeddings' health ("Embeddings healthy: rank 212 of 512, up from 31
    at the start" or "Collapsed at step 1,200: ...") and the kNN gain; charts over steps
    of the loss, learning rate, images per second, data-wait share, the label-free
    monitors (RankMe, alpha-ReQ, embedding std) and kNN accuracy; the augmented views of
    a few images; the nearest neighbours of a few sample images under the starting and the
    final weights; the skipped images; hardware and timings; the resolved config. What the
    run has not written (no monitors, no kNN, no end yet) is listed on the page. See
    docs/report.md for what each number means.

    Args:
        out: The run's out folder, the ``out`` given to ``train``.

    Returns:
        The written file, ``out/report.html`` (written atomically).

    Raises:
        ConfigError: ``out`` does not exist, is a file, or holds no run (none of
            metrics.jsonl, run.json, config.json, train.log).
    """
    return write_report(out)
