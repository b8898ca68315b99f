"""The health monitors and the kNN probe in tiny CPU runs (32 images of 16 px, 4 steps an
epoch): what they write (metrics.jsonl lines, out/monitor/ files), a forced collapse,
resume, and that they change no weight."""

from __future__ import annotations

import json
import math
import os
import signal
from pathlib import Path
from typing import Any

import pytest
import torch
from _tiny import Tiny, tiny_config, write_images
from torch import Tensor, nn

from lt_core import TrainingInterrupted
from lt_train import train

MONITOR_KEYS = {
    "step",
    "monitor/rankme",
    "monitor/alpha_req",
    "monitor/embedding_std",
    "monitor/std_ratio",
    "monitor/collapsed",
}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_images(tmp_path_factory.mktemp("images"), 32)


@pytest.fixture(scope="module")
def val(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("val")
    write_images(root / "a", 12, seed=1)
    write_images(root / "b", 12, seed=2)
    return root


def _lines(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def _monitor_lines(out: Path) -> list[dict[str, Any]]:
    return [r for r in _lines(out) if "monitor/rankme" in r]


def _load(path: Path) -> Any:
    return torch.load(path, weights_only=True)


def test_a_run_writes_the_monitor_lines_files_and_step_0(
    data: Path, val: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    train(
        tiny_config(
            out, data, epochs=2, log_every_n_steps=1, monitor_every_n_steps=3, val_data=str(val)
        )
    )
    monitors = _monitor_lines(out)
    assert [r["step"] for r in monitors] == [0, 3, 6, 8]  # every 3 steps and at the end
    for r in monitors:
        assert set(r) == MONITOR_KEYS
        assert all(math.isfinite(v) for v in r.values())
        assert 1.0 <= r["monitor/rankme"] <= 8 and r["monitor/collapsed"] == 0
    assert monitors[0]["monitor/std_ratio"] == 1.0
    ratio = monitors[-1]["monitor/embedding_std"] / monitors[0]["monitor/embedding_std"]
    assert monitors[-1]["monitor/std_ratio"] == pytest.approx(ratio)
    knn = [r for r in _lines(out) if "val/knn_top1" in r]
    assert [r["step"] for r in knn] == [0, 4, 8]  # step 0, each epoch's end
    for r in knn:
        assert set(r) == {"step", "val/knn_top1", "val/knn_top5"}
        assert 0.0 <= r["val/knn_top1"] <= 100.0 and r["val/knn_top5"] == 100.0  # 2 classes
    assert not [r for r in _lines(out) if r.get("event") == "collapse"]

    folder = out / "monitor"
    sample = _load(folder / "sample.pt")
    assert len(sample["names"]) == 32 and all(os.path.isfile(n) for n in sample["names"])
    assert sample["thumbnails"].shape == (32, 3, 64, 64)
    assert sample["thumbnails"].dtype == torch.uint8
    start, last = _load(folder / "embeddings_start.pt"), _load(folder / "embeddings_last.pt")
    assert start["step"] == 0 and last["step"] == 8
    assert start["embeddings"].shape == last["embeddings"].shape == (32, 8)
    assert start["embeddings"].dtype == torch.float16
    assert not torch.equal(start["embeddings"], last["embeddings"])
    (group,) = _load(folder / "views.pt")["groups"]
    assert group["name"] == "views" and group["size"] == [16, 16]
    assert group["images"].shape == (6, 2, 3, 16, 16) and group["images"].dtype == torch.uint8
    assert group["images"].float().std() > 10  # real pixels, not a constant

    config = json.loads((out / "config.json").read_text())
    assert config["monitor_every_n_steps"] == 3 and config["val_data"] == str(val)
    assert config["val_args"]["k"] == 20 and config["monitor_args"]["enabled"] is True
    assert "Monitors and kNN probe took" in (out / "train.log").read_text()


class Constant(Tiny):
    """Every image gets the same embedding (a trained constant): collapsed from the start."""

    def __init__(self) -> None:
        super().__init__()
        self.level = nn.Parameter(torch.linspace(0.5, 1.5, 8).view(1, 8, 1, 1))

    def forward_features(self, x: Tensor) -> dict[str, Tensor]:
        return {"features": torch.relu(self.net(x)) * 0 + self.level}


@pytest.mark.parametrize("stop", [False, True])
def test_a_collapse_is_flagged_in_log_and_metrics_and_can_stop_the_run(
    data: Path, tmp_path: Path, stop: bool
) -> None:
    out = tmp_path / "out"
    train(
        tiny_config(
            out,
            data,
            model=Constant(),
            epochs=2,
            log_every_n_steps=1,
            monitor_every_n_steps=1,
            callbacks={"early_stopping": {"stop_on_collapse": stop}},
        )
    )
    monitors = _monitor_lines(out)
    assert monitors[0]["monitor/rankme"] == pytest.approx(1.0, abs=1e-3)
    assert [r["monitor/collapsed"] for r in monitors[:2]] == [0, 1]  # patience 2
    events = [r for r in _lines(out) if r.get("event") == "collapse"]
    assert len(events) == 1 and events[0]["step"] == 1
    assert "RankMe 1.00 < 2" in events[0]["reason"]
    log = (out / "train.log").read_text()
    assert "WARNING" in log and "Step 1: the embeddings collapsed: RankMe" in log
    end = next(r for r in _lines(out) if r.get("event") == "end")
    if stop:
        assert end["step"] == 1 and "Early stopping after epoch 1" in log
        assert "stop_on_collapse=True" in log
    else:
        assert end["step"] == 8 and all(r["monitor/collapsed"] for r in monitors[1:])


class Interrupted(Constant):
    """Ctrl-C (a real SIGINT) in training forward number ``at`` (0: never)."""

    at = 0

    def forward_features(self, x: Tensor) -> dict[str, Tensor]:
        if self.training:
            self.calls = getattr(self, "calls", 0) + 1
            if self.calls == Interrupted.at:
                os.kill(os.getpid(), signal.SIGINT)
        return super().forward_features(x)


def test_resume_keeps_the_monitor_state(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    options: dict[str, Any] = dict(
        epochs=2,
        log_every_n_steps=1,
        monitor_every_n_steps=2,
        monitor_args={"collapse": {"patience": 3}},
    )
    Interrupted.at = 3  # stops after step 3: checks at 0 and 2 counted, not yet flagged
    with pytest.raises(TrainingInterrupted):
        train(tiny_config(out, data, model=Interrupted(), **options))
    state = _load(out / "checkpoints" / "last.ckpt")
    assert state["step"] == 3 and state["monitor"]["count"] == 2
    start = (out / "monitor" / "embeddings_start.pt").read_bytes()
    Interrupted.at = 0
    train(tiny_config(out, data, model=Interrupted(), resume_interrupted=True, **options))
    monitors = _monitor_lines(out)
    assert [r["step"] for r in monitors] == [0, 2, 4, 6, 8]  # step 0 not checked again
    # The third collapsed check in a row is the resumed run's first: the count survived.
    assert [r["monitor/collapsed"] for r in monitors] == [0, 0, 1, 1, 1]
    events = [r for r in _lines(out) if r.get("event") == "collapse"]
    assert [e["step"] for e in events] == [4]
    assert (out / "monitor" / "embeddings_start.pt").read_bytes() == start


def test_weights_are_bit_identical_with_monitors_on_and_off(
    data: Path, val: Path, tmp_path: Path
) -> None:
    runs = {
        "on": dict(monitor_every_n_steps=1, val_data=str(val)),
        "off": dict(monitor_args={"enabled": False}),
    }
    for name, options in runs.items():
        train(tiny_config(tmp_path / name, data, epochs=2, log_every_n_steps=1, **options))
    on, off = (_load(tmp_path / n / "checkpoints" / "last.ckpt") for n in runs)
    assert on["method"].keys() == off["method"].keys()
    for key, value in on["method"].items():
        assert torch.equal(value, off["method"][key]), key
    losses = [[r["loss"] for r in _lines(tmp_path / n) if "loss" in r] for n in runs]
    assert losses[0] == losses[1] and len(losses[0]) == 8
    assert not (tmp_path / "off" / "monitor").exists()
    assert len(_monitor_lines(tmp_path / "on")) == 9
