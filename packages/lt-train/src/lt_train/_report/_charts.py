"""The report's charts over steps, drawn with matplotlib into base64 PNGs.

``matplotlib.figure.Figure`` is used without pyplot: no global state, no GUI backend, safe
in a training process and in threads.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lt_train._report._read import Run

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["Chart", "charts"]

# (metric key, title, y label, scale of the shown value)
TRAINING = (
    ("loss", "Loss", "loss", 1.0),
    ("lr", "Learning rate", "lr", 1.0),
    ("images_per_s", "Images per second", "images/s", 1.0),
    ("data_wait", "Data-wait share", "% of step time waiting for data", 100.0),
)
MONITORS = (
    ("monitor/rankme", "RankMe (effective rank)", "rank", 1.0),
    ("monitor/alpha_req", "alpha-ReQ (eigenspectrum decay)", "alpha", 1.0),
    ("monitor/embedding_std", "Embedding std (1 = spread, 0 = collapsed)", "std x sqrt(d)", 1.0),
)
KNN = (("val/knn_top1", "top-1"), ("val/knn_top5", "top-5"))
#: Keys of step lines that are no curve of their own.
_NOT_CHARTED = {"epoch", "monitor/std_ratio", "monitor/collapsed"}
_MAX_EXTRAS = 6


@dataclass(frozen=True, kw_only=True)
class Chart:
    """One chart: ``section`` is ``"training"``, ``"monitors"``, ``"knn"`` or ``"other"``."""

    key: str
    section: str
    title: str
    png: str  # base64


def charts(run: Run) -> list[Chart]:
    """Every chart the run's metrics allow; a metric without values gets none."""
    out: list[Chart] = []
    collapse = _collapse_step(run)
    for key, title, ylabel, scale in TRAINING:
        if run.values(key):
            out.append(_line(run, key, "training", title, ylabel, scale))
    for key, title, ylabel, scale in MONITORS:
        if run.values(key):
            out.append(_line(run, key, "monitors", title, ylabel, scale, collapse))
    if any(run.values(key) for key, _ in KNN):
        out.append(_knn(run))
    known = {k for k, *_ in (*TRAINING, *MONITORS, *KNN)} | _NOT_CHARTED
    extras = [k for k in sorted(run.series) if k not in known and len(run.values(k)) > 1]
    for key in extras[:_MAX_EXTRAS]:
        out.append(_line(run, key, "other", key, key, 1.0))
    return out


def _collapse_step(run: Run) -> int | None:
    event = run.event("collapse")
    if event is not None and isinstance(event.get("step"), int):
        return int(event["step"])
    flagged = [step for step, value in run.values("monitor/collapsed") if value >= 0.5]
    return flagged[0] if flagged else None


def _figure() -> tuple[Figure, Axes]:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(3.75, 2.5), dpi=100, layout="constrained")
    axes = figure.subplots()
    axes.grid(True, alpha=0.3)
    axes.set_xlabel("step")
    return figure, axes


def _line(
    run: Run,
    key: str,
    section: str,
    title: str,
    ylabel: str,
    scale: float,
    collapse: int | None = None,
) -> Chart:
    figure, axes = _figure()
    steps, values = zip(*run.values(key))
    shown = [v * scale for v in values]
    few = len(steps) < 40
    axes.plot(steps, shown, color="#2a6fbb", lw=1.0 if few else 0.7, marker="o" if few else None)
    if key == "loss" and len(steps) >= 20:  # noisy: a moving average on top
        window = max(5, len(steps) // 20)
        axes.plot(
            steps, _moving_mean(shown, window), color="#d0592a", lw=1.5, label=f"mean of {window}"
        )
        axes.legend(loc="upper right", fontsize=8)
    largest = run.max_rank()
    if key == "monitor/rankme" and largest is not None:
        axes.axhline(largest, color="#777", ls="--", lw=1, label="max: min(sample, dim)")
        if largest > 10 * max(min(shown), 1e-9):  # small ranks under a far max: a log axis
            axes.set_yscale("log")  # RankMe is at least 1
            ylabel += " (log scale)"
        axes.legend(loc="best", fontsize=8)
    if key == "monitor/embedding_std":
        axes.axhline(1.0, color="#777", ls="--", lw=1)
        axes.set_ylim(bottom=0)
    if collapse is not None:
        axes.axvline(collapse, color="#c0392b", lw=1.2, label=f"collapse, step {collapse:,}")
        axes.legend(loc="best", fontsize=8)
    if key == "lr":
        axes.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    axes.set_title(title, fontsize=10)
    axes.set_ylabel(ylabel, fontsize=8)
    return Chart(key=key, section=section, title=title, png=_png(figure))


def _moving_mean(values: list[float], window: int) -> list[float]:
    """The mean of each value and the ``window - 1`` before it (fewer at the start)."""
    total, out = 0.0, []
    for i, value in enumerate(values):
        total += value
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def _knn(run: Run) -> Chart:
    figure, axes = _figure()
    for (key, label), color in zip(KNN, ("#2a6fbb", "#3a9a4a")):
        points = run.values(key)
        if points:
            steps, values = zip(*points)
            axes.plot(steps, values, color=color, marker="o", ms=3, label=label)
    axes.set_title("kNN accuracy (labeled val_data)", fontsize=10)
    axes.set_ylabel("accuracy, %", fontsize=8)
    axes.legend(loc="lower right", fontsize=8)
    return Chart(key="knn", section="knn", title="kNN accuracy", png=_png(figure))


def _png(figure: Figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode("ascii")
