"""The run report: written from a run's files, whatever parts of them exist.

The fast tests write the files of a run by hand, in the on-disk contract of issue 22; the
slow ones train tiny runs (the report written at their end, after a failure too).
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest
import torch
from _tiny import Tiny, tiny_config, write_images

from lt_core import ConfigError
from lt_train import train, write_report
from lt_train._report._images import neighbours
from lt_train._report._read import RUN_MARKERS, read_run
from lt_train._run_dir import RUN_FILES


def write_run(
    root: Path,
    *,
    steps: int = 10,
    ranks: list[tuple[int, float]] | None = None,
    knn: list[tuple[int, float, float]] | None = None,
    collapse: tuple[int, str] | None = None,
    end: bool = True,
    status: str = "finished",
    log: str = "",
    sample: int | None = None,
    dim: int = 16,
) -> Path:
    """A run's files written by hand: ``steps`` step lines, monitor lines at ``ranks``,
    kNN lines, a collapse event, the end event, run.json and train.log; with ``sample``,
    monitor/*.pt of that many images."""
    root.mkdir(parents=True, exist_ok=True)
    lines: list[dict[str, object]] = [
        {"step": s, "loss": 5.0 - s / 10, "lr": 0.1 * s, "images_per_s": 100.0 + s,
         "data_wait": 0.1, "epoch": 0}
        for s in range(1, steps + 1)
    ]  # fmt: skip
    for step, rank in ranks or []:
        lines.append(
            {"step": step, "monitor/rankme": rank, "monitor/alpha_req": 1.5,
             "monitor/embedding_std": 0.8, "monitor/std_ratio": 1.0,
             "monitor/collapsed": int(collapse is not None and step >= collapse[0])}
        )  # fmt: skip
    for step, top1, top5 in knn or []:
        lines.append({"step": step, "val/knn_top1": top1, "val/knn_top5": top5})
    if collapse is not None:
        lines.append({"event": "collapse", "step": collapse[0], "reason": collapse[1]})
    if end:
        lines.append(
            {"event": "end", "step": steps, "epochs": 1, "train_time_s": 12.5,
             "images_per_s": 99.5, "skipped_images": 0}
        )  # fmt: skip
    (root / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    (root / "run.json").write_text(json.dumps({"status": status, "step": steps, "max_steps": 20}))
    (root / "config.json").write_text(json.dumps({"epochs": 1, "method": "simclr"}))
    (root / "train.log").write_text(log)
    if sample is not None:
        monitor = root / "monitor"
        monitor.mkdir(exist_ok=True)
        gen = torch.Generator().manual_seed(0)
        thumbs = torch.randint(0, 255, (sample, 3, 64, 64), dtype=torch.uint8, generator=gen)
        names = [f"img_{i}.png" for i in range(sample)]
        torch.save({"names": names, "thumbnails": thumbs}, monitor / "sample.pt")
        for name in ("start", "last"):
            embeddings = torch.randn(sample, dim, generator=gen).half()
            torch.save({"step": 0, "embeddings": embeddings}, monitor / f"embeddings_{name}.pt")
        views = torch.randint(0, 255, (3, 2, 3, 32, 32), dtype=torch.uint8, generator=gen)
        groups = [{"name": "global views", "size": [32, 32], "images": views}]
        torch.save({"groups": groups}, monitor / "views.pt")
    return root


def cell(page: str, ident: str) -> tuple[float, str]:
    """The ``data-value`` and shown text of the summary cell ``ident``."""
    match = re.search(rf'id="{ident}" data-value="([^"]*)">([^<]*)<', page)
    assert match, f"no summary cell {ident}"
    return float(match[1]), html.unescape(match[2])


def verdict(page: str) -> tuple[str, str]:
    match = re.search(r'id="verdict" class="[^"]*" data-state="([^"]*)">([^<]*)<', page)
    assert match
    return match[1], html.unescape(match[2])


def test_healthy_run_with_monitors_knn_views_and_neighbours(tmp_path: Path) -> None:
    root = write_run(
        tmp_path / "run",
        ranks=[(0, 3.4), (5, 7.2), (10, 11.6)],
        knn=[(0, 23.44, 50.0), (10, 61.19, 88.0)],
        sample=12,
    )
    page = write_report(root).read_text()
    assert verdict(page) == (
        "healthy",
        "Embeddings healthy: rank 12 of 12, up from 3 at the start.",
    )
    assert "kNN top-1 61.2%, up from 23.4% at step 0." in page
    assert cell(page, "final_loss") == (4.0, "4.0000")
    assert cell(page, "rankme_final") == (11.6, "11.6") and cell(page, "rankme_max")[0] == 12
    assert cell(page, "knn_top5_final") == (88.0, "88.0")
    keys = re.findall(r'class="chart" data-key="([^"]+)"', page)
    assert keys == ["loss", "lr", "images_per_s", "data_wait", "monitor/rankme",
                    "monitor/alpha_req", "monitor/embedding_std", "knn"]  # fmt: skip
    assert page.count('class="views-grid"') == 1
    assert page.count('class="q"') == 6  # six query images, five neighbours each, twice
    assert page.count('class="thumb"') == 6 * 11
    assert "What is missing" not in page
    assert "<script" not in page  # self-contained: every src and href is a data URI
    assert re.findall(r'(?:src|href)="(?!data:)', page) == []


def test_collapse_is_the_verdict(tmp_path: Path) -> None:
    reason = "RankMe stayed under 1% of its largest value for 3 checks in a row."
    root = write_run(
        tmp_path / "run", steps=1500, ranks=[(0, 30.0), (1200, 1.01)], collapse=(1200, reason)
    )
    assert verdict(write_report(root).read_text()) == (
        "collapsed",
        f"Collapsed at step 1,200: {reason}",
    )
    # Without the event line, the flag of a monitor line is enough.
    lines = (root / "metrics.jsonl").read_text().splitlines()
    (root / "metrics.jsonl").write_text("\n".join(x for x in lines if "collapse" not in x[:20]))
    state, text = verdict(write_report(root).read_text())
    assert state == "collapsed" and text.startswith("Collapsed at step 1,200:")


def test_falling_rank_and_one_check(tmp_path: Path) -> None:
    root = write_run(tmp_path / "a", ranks=[(0, 40.0), (10, 25.0)])
    assert verdict(write_report(root).read_text()) == (
        "rank-fell",
        "Embeddings not collapsed, but their rank fell: rank 25, down from 40 at the start.",
    )
    # A rank that dipped after the start and rose again (x1.5 or more) is healthy.
    root = write_run(tmp_path / "c", ranks=[(0, 76.0), (2, 34.0), (6, 6.0), (12, 24.4)])
    assert verdict(write_report(root).read_text()) == (
        "healthy",
        "Embeddings healthy: rank 24, up from 6.0 at step 6, its low since the start (76 at "
        "the start: untrained weights often spread the embeddings more than the first steps "
        "of training do).",
    )
    root = write_run(tmp_path / "d", ranks=[(0, 76.0), (6, 20.0), (12, 29.0)])
    assert verdict(write_report(root).read_text())[0] == "rank-fell"
    root = write_run(tmp_path / "b", ranks=[(0, 40.0)])
    assert verdict(write_report(root).read_text())[1].endswith("(one monitor check so far).")


def test_run_without_monitors_names_what_is_missing(tmp_path: Path) -> None:
    page = write_report(write_run(tmp_path / "run")).read_text()
    state, text = verdict(page)
    assert state == "no-monitor" and text.startswith("No monitor values: metrics.jsonl has no")
    missing = re.search(r'<ul id="missing">(.*?)</ul>', page, re.DOTALL)
    assert missing and "monitor/sample.pt is absent." in missing[1]
    assert "No kNN lines" in missing[1]
    assert "monitor/rankme" not in page and 'id="knn-verdict"' not in page


def test_still_running_run_with_a_cut_line(tmp_path: Path) -> None:
    root = write_run(tmp_path / "run", end=False, status="running", ranks=[(0, 3.0)])
    with (root / "metrics.jsonl").open("a") as f:
        f.write('{"step": 11, "loss": 3.')  # being written right now
    page = write_report(root).read_text()
    assert re.search(r'<p id="status">Running \(run.json last updated', page)
    assert "No end event in metrics.jsonl: the run has not finished." in page
    assert cell(page, "final_loss") == (4.0, "4.0000")  # step 10, the last whole line


def test_a_run_with_only_a_log(tmp_path: Path) -> None:
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "train.log").write_text(
        "2026-01-02 03:04:05,678 ERROR lt_train._train: Training stopped at step 0: boom\n"
    )
    page = write_report(tmp_path / "run").read_text()
    assert "No monitor values: metrics.jsonl has no values" in page
    assert "Training stopped at step 0: boom" in page and "metrics.jsonl is absent" in page


def test_log_facts_and_escaping(tmp_path: Path) -> None:
    log = (
        "2026-01-02 03:04:05,678 INFO lt_train._run_info: Python 3.11.7, Linux; torch 2.5.0\n"
        "2026-01-02 03:04:05,679 INFO lt_train._trainer: Devices: 1 process(es), this one on cpu\n"
        "2026-01-02 03:04:06,000 WARNING lt_data._batch_filler: Skipped unreadable image "
        "/data/<b>x</b>.png: UnidentifiedImageError: cannot identify image file\n"
        "2026-01-02 03:04:06,001 WARNING lt_data._batch_filler: Skipped unreadable image "
        "(process 1) /data/y.png: OSError: truncated\n"
        "Traceback (most recent call last):\n"
        "2026-01-02 03:04:07,000 WARNING lt_train._monitor: Collapse <script>alert(1)</script>\n"
    )
    root = write_run(tmp_path / "run", log=log, sample=4)
    (root / "run.json").write_text(json.dumps({"status": "failed", "step": 3, "error": "a<b"}))
    run = read_run(root)
    assert run.log.devices == "1 process(es), this one on cpu"
    assert run.log.versions == "Python 3.11.7, Linux; torch 2.5.0"
    assert run.log.skipped == [
        ("/data/<b>x</b>.png", "UnidentifiedImageError: cannot identify image file"),
        ("/data/y.png", "OSError: truncated"),
    ]
    page = write_report(root).read_text()
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "/data/&lt;b&gt;x&lt;/b&gt;.png" in page and "<b>x</b>" not in page
    assert '<p id="status">Failed at step 3 of None: a&lt;b</p>' in page
    assert '<p id="skipped">2 unreadable image(s) skipped.</p>' in page


def test_bad_monitor_files_are_named_not_fatal(tmp_path: Path) -> None:
    root = write_run(tmp_path / "run", sample=5)
    (root / "monitor" / "views.pt").write_bytes(b"not a torch file")
    torch.save({"step": 0, "embeddings": torch.zeros(7, 3)}, root / "monitor/embeddings_last.pt")
    page = write_report(root).read_text()
    assert "monitor/views.pt is unreadable" in page
    assert "monitor/embeddings_last.pt does not hold (N, D) embeddings of the 5 sample" in page
    assert 'id="neighbours"' not in page and "No nearest neighbours" in page


def test_not_a_run_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"does not exist\. Fix: pass the out folder"):
        write_report(tmp_path / "missing")
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="is a file, not a run's out folder"):
        write_report(tmp_path / "file")
    with pytest.raises(ConfigError, match="is not a run's out folder: it has none of"):
        write_report(tmp_path)
    assert not (tmp_path / "report.html").exists()


def test_report_is_one_of_the_run_files() -> None:
    assert "report.html" in RUN_FILES and set(RUN_MARKERS) <= set(RUN_FILES)


def test_neighbours_exclude_the_query_and_follow_the_embeddings() -> None:
    # Four pairs of nearby points: each one's nearest neighbour is its partner.
    centers = torch.eye(4)
    start = torch.cat([centers, centers + 0.01 * torch.ones(4, 4)])
    last = start[torch.tensor([1, 0, 3, 2, 5, 4, 7, 6])]  # partners are 4 apart: same
    found = neighbours(start, last, queries=8, k=1)
    assert [n.query for n in found] == list(range(8))
    assert [n.start[0][0] for n in found] == [4, 5, 6, 7, 0, 1, 2, 3]
    assert [n.last[0][0] for n in found] == [4, 5, 6, 7, 0, 1, 2, 3]
    assert all(n.start[0][1] == pytest.approx(1.0, abs=1e-3) for n in found)
    assert neighbours(start[:1], last[:1]) == []  # no other image to show


# -- tiny runs: the report at the end of the run ---------------------------------------


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_images(tmp_path_factory.mktemp("images"), 32)


def labels_csv(data: Path, classes: int = 2) -> Path:
    """``val_data`` for the tiny images: a ``path,label`` CSV, labels ``i % classes``."""
    paths = sorted(data.glob("*.png"), key=lambda p: int(p.stem))
    csv = data.parent / f"{data.name}_labels.csv"
    rows = [f"{p},{int(p.stem) % classes}" for p in paths]
    csv.write_text("path,label\n" + "\n".join(rows) + "\n")
    return csv


@pytest.mark.slow
def test_train_writes_the_report_with_its_monitors(data: Path, tmp_path: Path) -> None:
    off = train(tiny_config(tmp_path / "off", data, monitor_args={"enabled": False}))
    assert verdict((off / "report.html").read_text())[0] == "no-monitor"
    out = train(
        tiny_config(
            tmp_path / "out",
            data,
            model=Tiny(16),
            log_every_n_steps=1,
            monitor_every_n_steps=1,
            val_data=str(labels_csv(data)),
        )
    )
    page = (out / "report.html").read_text()
    assert "Run report: " in (out / "train.log").read_text()
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    monitors = [r for r in records if "monitor/rankme" in r]
    knn = [r for r in records if "val/knn_top1" in r]
    assert monitors[0]["step"] == 0 and knn[0]["step"] == 0
    assert verdict(page)[0] in ("healthy", "rank-fell")
    assert cell(page, "rankme_final")[0] == monitors[-1]["monitor/rankme"]
    assert cell(page, "knn_top1_final")[0] == knn[-1]["val/knn_top1"]
    assert cell(page, "rankme_max")[0] == 16  # min(32 images, 16 channels)


@pytest.mark.slow
def test_a_failed_run_has_a_report_and_a_report_failure_hides_nothing(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from lt_train import _train
    from lt_train._trainer import Trainer

    def fail(self: Trainer) -> None:
        raise RuntimeError("boom in finish")

    monkeypatch.setattr(Trainer, "finish", fail)
    with pytest.raises(RuntimeError, match="boom in finish"):
        train(tiny_config(tmp_path / "a", data))
    page = (tmp_path / "a" / "report.html").read_text()
    assert "Failed at step 4 of 4: RuntimeError(&#x27;boom in finish&#x27;)" in page

    def broken(out: object) -> Path:
        raise OSError("report disk gone")

    monkeypatch.setattr(_train, "write_report", broken)
    with pytest.raises(RuntimeError, match="boom in finish"):  # the run's error, not ours
        train(tiny_config(tmp_path / "b", data))
    log = (tmp_path / "b" / "train.log").read_text()
    assert "Could not write the run report (OSError: report disk gone)" in log
    monkeypatch.undo()
    out = train(tiny_config(tmp_path / "c", data))  # and a successful run still succeeds
    assert (out / "report.html").is_file()
