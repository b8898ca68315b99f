"""The report's verdict: one line on the embeddings' health, one on the kNN gain, one on
the run's status, each from the run's files alone."""

from __future__ import annotations

from dataclasses import dataclass

from lt_train._report._read import Run

__all__ = ["Verdict", "knn_line", "status_line", "verdict"]

RANKME = "monitor/rankme"
COLLAPSED = "monitor/collapsed"
KNN_TOP1 = "val/knn_top1"
#: A rank this many times its low since the start counts as rising again (the usual dip
#: of the first steps, then the rise; docs/report.md).
RECOVERY = 1.5


@dataclass(frozen=True, kw_only=True)
class Verdict:
    """``state`` is ``"healthy"``, ``"rank-fell"``, ``"collapsed"`` or ``"no-monitor"``."""

    state: str
    text: str


def verdict(run: Run) -> Verdict:
    """Whether the embeddings collapsed, and how their rank moved since the start.

    Healthy: the last rank is at least the first, or at least :data:`RECOVERY` times the
    lowest rank between them (the early dip that training often shows before the rank
    rises); else the rank fell.

    A collapse is the first ``{"event": "collapse"}`` line of metrics.jsonl, or, without
    one, the first monitor check with ``monitor/collapsed`` = 1.
    """
    event = run.event("collapse")
    flagged = [step for step, value in run.values(COLLAPSED) if value >= 0.5]
    if event is not None or flagged:
        step = event.get("step") if event is not None else flagged[0]
        reason = (event or {}).get("reason") or "the collapse rule fired at this monitor check."
        return Verdict(state="collapsed", text=f"Collapsed at step {_count(step)}: {reason}")
    ranks = run.values(RANKME)
    if not ranks:
        return Verdict(state="no-monitor", text=f"No monitor values: {_why_no_monitor(run)}")
    (first_step, first), (last_step, last) = ranks[0], ranks[-1]
    of = f" of {run.max_rank()}" if run.max_rank() is not None else ""
    if len(ranks) == 1:
        return Verdict(
            state="healthy",
            text=f"Embeddings not collapsed: rank {last:.0f}{of} at step {_count(last_step)} "
            "(one monitor check so far).",
        )
    start = "at the start" if first_step == 0 else f"at step {_count(first_step)}"
    if last >= first:
        return Verdict(
            state="healthy",
            text=f"Embeddings healthy: rank {last:.0f}{of}, up from {first:.0f} {start}.",
        )
    low_step, low = min(ranks[1:-1], key=lambda item: item[1], default=(last_step, last))
    if last >= RECOVERY * low:
        return Verdict(
            state="healthy",
            text=f"Embeddings healthy: rank {last:.0f}{of}, up from {low:.1f} at step "
            f"{_count(low_step)}, its low since the start ({first:.0f} {start}: untrained "
            "weights often spread the embeddings more than the first steps of training do).",
        )
    return Verdict(
        state="rank-fell",
        text=f"Embeddings not collapsed, but their rank fell: rank {last:.0f}{of}, down from "
        f"{first:.0f} {start}.",
    )


def knn_line(run: Run) -> str | None:
    """The kNN top-1 accuracy now against its first value, or ``None`` without kNN lines."""
    top1 = run.values(KNN_TOP1)
    if not top1:
        return None
    (first_step, first), (last_step, last) = top1[0], top1[-1]
    if len(top1) == 1:
        return f"kNN top-1 {last:.1f}% at step {_count(last_step)}."
    word = "up" if last >= first else "down"
    return f"kNN top-1 {last:.1f}%, {word} from {first:.1f}% at step {_count(first_step)}."


def status_line(run: Run) -> str:
    """The run's status from run.json and the end event of metrics.jsonl."""
    state = run.state or {}
    status = state.get("status")
    step, max_steps = state.get("step"), state.get("max_steps")
    where = f"step {_count(step)} of {_count(max_steps)}" if step is not None else "an unknown step"
    if status == "finished":
        return f"Finished: {where}."
    if status == "interrupted":
        return f"Interrupted at {where}; the report shows the run up to its last logged step."
    if status == "failed":
        error = state.get("error")
        return f"Failed at {where}" + (f": {error}" if error else ".")
    if status == "running":
        return (
            f"Running (run.json last updated {state.get('updated', '?')}, {where}), or killed "
            "without warning; the report shows what was logged so far."
        )
    if run.event("end") is not None:
        return "Finished (run.json is absent)."
    return "Unknown status: run.json is absent or unreadable."


def _why_no_monitor(run: Run) -> str:
    if not run.series:
        return "metrics.jsonl has no values (absent, or the run stopped before its first step)."
    return (
        "metrics.jsonl has no monitor lines (the monitors were switched off, the run "
        "stopped before their first check, or it predates them)."
    )


def _count(value: object) -> str:
    """``1200`` as ``1,200``; anything else as is."""
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)
