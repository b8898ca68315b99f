"""``lightly_train.report`` and ``lightly-train report out=...`` on a run's files."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest

import lightly_train
from lightly_train import _early
from lightly_train._cli import main
from lt_core import ConfigError
from lt_train._report import RUN_MARKERS


def _run(root: Path) -> Path:
    """An interrupted run's files, as the trainer writes them."""
    root.mkdir()
    lines = [{"step": s, "loss": 3.0 / s, "lr": 0.1, "images_per_s": 50.0, "data_wait": 0.2,
              "epoch": 0} for s in (1, 2, 3)]  # fmt: skip
    (root / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    (root / "run.json").write_text(json.dumps({"status": "interrupted", "step": 3, "max_steps": 9}))
    return root


def test_report_function(tmp_path: Path) -> None:
    path = lightly_train.report(_run(tmp_path / "run"))
    assert path == tmp_path / "run" / "report.html"
    page = path.read_text()
    assert "Interrupted at step 3 of 9" in page and 'id="final_loss" data-value="1.0"' in page
    assert list(inspect.signature(lightly_train.report).parameters) == ["out"]
    with pytest.raises(ConfigError, match="is not a run's out folder"):
        lightly_train.report(tmp_path)


def test_report_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = _run(tmp_path / "run")
    assert main(["report", f"out={out}"]) == 0
    assert f"Wrote the run report to {out / 'report.html'}" in capsys.readouterr().out
    assert (out / "report.html").is_file()
    assert main(["report", f"out={tmp_path / 'nope'}"]) == 2
    error = capsys.readouterr().err
    assert "does not exist. Fix: pass the out folder of a run" in error
    assert main(["report", f"out={tmp_path}"]) == 2
    assert "is not a run's out folder" in capsys.readouterr().err
    assert main(["report", "help"]) == 0
    assert "Write ``out/report.html``" in capsys.readouterr().out


def test_early_markers_equal_the_reports() -> None:
    assert _early.RUN_MARKERS == RUN_MARKERS
    assert set(_early.REPORT_OPTIONS) == set(inspect.signature(lightly_train.report).parameters)
