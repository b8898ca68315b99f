"""The report page: one self-contained HTML file (inline CSS, images as data URIs, no
script, nothing fetched), every text from the run escaped."""

from __future__ import annotations

import json
import time
from html import escape
from typing import Any

from lt_train._report._charts import Chart
from lt_train._report._images import Neighbours, ViewGrid, png
from lt_train._report._read import Run, finite
from lt_train._report._verdict import Verdict

__all__ = ["page"]

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,'Segoe UI',sans-serif;margin:0 auto;max-width:1180px;padding:16px 24px;color:#1d232a}
h1{font-size:22px;margin:4px 0}h2{font-size:17px;margin:26px 0 8px;border-bottom:1px solid #dde2e8;padding-bottom:4px}
.muted{color:#66707a}.verdict{font-size:17px;font-weight:600;padding:10px 14px;border-radius:6px;margin:10px 0 4px}
.healthy{background:#e5f4e7;color:#1b5e20}.collapsed{background:#fde8e6;color:#8e1b12}
.rank-fell,.no-monitor{background:#fff4dc;color:#6b4b00}.knn{font-size:15px;margin:6px 0}
table{border-collapse:collapse}td,th{padding:3px 10px 3px 0;text-align:left;vertical-align:top}
th{font-weight:600;color:#48525c;white-space:nowrap}.num{font-variant-numeric:tabular-nums}
.charts{display:flex;flex-wrap:wrap;gap:10px}.charts img{border:1px solid #e4e8ec}
.views{display:flex;flex-wrap:wrap;gap:24px}figure{margin:0}figcaption{font-size:12px;color:#66707a}
.nn td{padding:4px 14px 4px 0}.nn img{width:64px;height:64px;image-rendering:auto;margin-right:3px}
.nn .q img{outline:2px solid #2a6fbb}.sim{font-size:11px;color:#66707a;display:block}
pre{background:#f5f7f9;padding:10px;overflow:auto;font-size:12px}ul{margin:4px 0}
"""


def page(
    run: Run,
    health: Verdict,
    knn: str | None,
    status: str,
    charts: list[Chart],
    grids: list[ViewGrid],
    nearest: list[Neighbours],
    notes: list[str],
) -> str:
    """The whole report as HTML."""
    title = f"Run report: {run.root.resolve().name}"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">',
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f'<div class="muted">{escape(str(run.root.resolve()))} &middot; written '
        f"{escape(time.strftime('%Y-%m-%d %H:%M:%S'))} from the files of the run</div>",
        f'<p id="status">{escape(status)}</p>',
        f'<div id="verdict" class="verdict {health.state}" data-state="{health.state}">'
        f"{escape(health.text)}</div>",
    ]
    if knn:
        parts.append(f'<div id="knn-verdict" class="knn">{escape(knn)}</div>')
    parts += _summary(run)
    if notes:
        items = "".join(f"<li>{escape(note)}</li>" for note in notes)
        parts.append(f'<h2>What is missing</h2><ul id="missing">{items}</ul>')
    sections = (
        ("training", "Training"),
        ("monitors", "Embedding health (label-free monitors)"),
        ("knn", "kNN probe"),
        ("other", "Other logged values"),
    )
    for section, heading in sections:
        shown = [c for c in charts if c.section == section]
        if shown:
            parts.append(f'<h2>{heading}</h2><div class="charts">')
            parts += [
                f'<img class="chart" data-key="{escape(c.key)}" alt="{escape(c.title)}" '
                f'src="data:image/png;base64,{c.png}">'
                for c in shown
            ]
            parts.append("</div>")
    parts += _views(grids)
    parts += _neighbours(run, nearest)
    parts += _skipped(run)
    parts += _warnings(run)
    parts += _hardware(run)
    config = json.dumps(run.config, indent=2) if run.config is not None else "(config.json absent)"
    parts.append(
        '<h2>Resolved config</h2><details id="config"><summary>config.json</summary>'
        f"<pre>{escape(config)}</pre></details>"
    )
    parts.append("</body></html>\n")
    return "\n".join(parts)


def _summary(run: Run) -> list[str]:
    rows: list[tuple[str, str, Any, str]] = []

    def series(key: str, ident: str, label: str, fmt: str, first: bool = False) -> None:
        points = run.values(key)
        if points:
            step, value = points[0] if first else points[-1]
            rows.append((ident, f"{label} (step {step:,})", value, format(value, fmt)))

    series("loss", "first_loss", "Loss, first logged", ".4f", first=True)
    series("loss", "final_loss", "Loss, last logged", ".4f")
    series("monitor/rankme", "rankme_start", "RankMe, first check", ".1f", first=True)
    series("monitor/rankme", "rankme_final", "RankMe, last check", ".1f")
    if run.max_rank() is not None:
        rows.append(("rankme_max", "RankMe, largest possible", run.max_rank(), str(run.max_rank())))
    series("monitor/alpha_req", "alpha_req_final", "alpha-ReQ, last check", ".3f")
    series("monitor/embedding_std", "embedding_std_final", "Embedding std, last check", ".3f")
    series("val/knn_top1", "knn_top1_start", "kNN top-1 %, first", ".1f", first=True)
    series("val/knn_top1", "knn_top1_final", "kNN top-1 %, last", ".1f")
    series("val/knn_top5", "knn_top5_start", "kNN top-5 %, first", ".1f", first=True)
    series("val/knn_top5", "knn_top5_final", "kNN top-5 %, last", ".1f")
    end = run.event("end") or {}
    for key, ident, label, fmt in (
        ("train_time_s", "train_time_s", "Training time, s", ".1f"),
        ("images_per_s", "images_per_s", "Images per second (whole run)", ".1f"),
        ("skipped_images", "skipped_images", "Images skipped", "d"),
    ):
        value = end.get(key)
        if isinstance(value, int | float) and finite(float(value)):
            rows.append((ident, label, value, format(value, fmt)))
    if not rows:
        return []
    body = "".join(
        f'<tr><th>{escape(label)}</th><td class="num" id="{ident}" data-value="{value!r}">'
        f"{escape(text)}</td></tr>"
        for ident, label, value, text in rows
    )
    return [f'<h2>Summary</h2><table id="summary">{body}</table>']


def _views(grids: list[ViewGrid]) -> list[str]:
    if not grids:
        return []
    parts = [
        '<h2>Augmented views</h2><p class="muted">The views the method\'s recipe made of the '
        "first images of the first batch: one row per image, one column per view (a group "
        "of one view per image: one image per column).</p>",
        '<div class="views">',
    ]
    for grid in grids:
        h, w = grid.size
        parts.append(
            f'<figure><img class="views-grid" alt="{escape(grid.name)}" '
            f'src="data:image/png;base64,{grid.png}"><figcaption>{escape(grid.name)}: '
            f"{grid.rows} images x {grid.columns} views of {h}x{w} px</figcaption></figure>"
        )
    parts.append("</div>")
    return parts


def _neighbours(run: Run, nearest: list[Neighbours]) -> list[str]:
    if not nearest or run.sample is None:
        return []
    names, thumbs = run.sample["names"], run.sample["thumbnails"]
    start = run.start["step"] if run.start else "?"
    last = run.last["step"] if run.last else "?"
    cache: dict[int, str] = {}

    def image(i: int, similarity: float | None = None) -> str:
        if i not in cache:
            cache[i] = png(thumbs[i])
        note = f" (cosine {similarity:.3f})" if similarity is not None else ""
        caption = f'<span class="sim">{similarity:.2f}</span>' if similarity is not None else ""
        return (
            f'<span style="display:inline-block;text-align:center"><img class="thumb" '
            f'title="{escape(str(names[i]) + note)}" alt="{escape(str(names[i]))}" '
            f'src="data:image/png;base64,{cache[i]}">{caption}</span>'
        )

    rows = "".join(
        f'<tr><td class="q">{image(n.query)}</td>'
        f"<td>{''.join(image(i, s) for i, s in n.start)}</td>"
        f"<td>{''.join(image(i, s) for i, s in n.last)}</td></tr>"
        for n in nearest
    )
    return [
        "<h2>Nearest neighbours in the monitor sample</h2>",
        f'<p class="muted">Query images of the sample and their {len(nearest[0].start)} most '
        "similar other sample images (cosine of the L2-normalized embeddings), under the "
        f"starting weights (step {escape(str(start))}) and the last ones (step "
        f"{escape(str(last))}). Hover an image for its file name.</p>",
        f'<table class="nn" id="neighbours"><tr><th>query</th><th>start (step '
        f"{escape(str(start))})</th><th>last (step {escape(str(last))})</th></tr>{rows}</table>",
    ]


def _skipped(run: Run) -> list[str]:
    listed = run.log.skipped
    count = (run.event("end") or {}).get("skipped_images")
    count = count if isinstance(count, int) else len(listed)
    if not count and not listed:
        return ['<h2>Images skipped</h2><p id="skipped">None.</p>']
    rows = "".join(
        f"<tr><td>{escape(name)}</td><td>{escape(reason)}</td></tr>"
        for name, reason in listed[:200]
    )
    more = max(count, len(listed)) - min(len(listed), 200)
    tail = f"<p>{more:,} more not listed here: see train.log.</p>" if more > 0 else ""
    return [
        f'<h2>Images skipped</h2><p id="skipped">{max(count, len(listed)):,} unreadable '
        f"image(s) skipped.</p><table><tr><th>image</th><th>why</th></tr>{rows}</table>{tail}"
    ]


def _warnings(run: Run) -> list[str]:
    shown = [(lv, m) for lv, m in run.log.warnings if not m.startswith("Skipped ")][-30:]
    if not shown:
        return []
    items = "".join(
        f"<li><b>{escape(level)}</b> {escape(message)}</li>" for level, message in shown
    )
    return [f'<h2>Warnings and errors in train.log</h2><ul id="warnings">{items}</ul>']


def _hardware(run: Run) -> list[str]:
    end, state, log = run.event("end") or {}, run.state or {}, run.log
    rows = [
        ("Status (run.json)", state.get("status")),
        ("Step", f"{state.get('step')} of {state.get('max_steps')}" if state else None),
        ("run.json updated", state.get("updated")),
        ("Error", state.get("error")),
        ("Run", log.summary),
        ("Devices", log.devices),
        ("Versions", log.versions),
        ("Epochs", end.get("epochs")),
        ("Training time", f"{end['train_time_s']:.1f} s" if "train_time_s" in end else None),
        ("Images per second", f"{end['images_per_s']:.1f}" if "images_per_s" in end else None),
    ]
    body = "".join(
        f"<tr><th>{escape(label)}</th><td>{escape(str(value))}</td></tr>"
        for label, value in rows
        if value is not None
    )
    return [f'<h2>Hardware and timings</h2><table id="hardware">{body}</table>']
