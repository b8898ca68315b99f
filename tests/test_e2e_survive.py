"""The defects of issue 7, reproduced: nothing of an earlier run is lost, failures are
clean messages (logged in train.log), a NaN loss stops the run with usable weights."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest
import torch
from _wrappers import CtrlC, Tiny
from conftest import QUICKSTART_DATA, cli_train_command

import lightly_train
from lt_core import ConfigError, LossNotFiniteError, TrainingInterrupted

FAST = {
    "epochs": 1,
    "batch_size": 64,
    "num_workers": 0,
    "accelerator": "cpu",
    "progress_bar": False,
    "transform_args": {"image_size": [32, 32]},
}


def _snapshot(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


@pytest.fixture
def finished_run(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    lightly_train.train(out=out, data=QUICKSTART_DATA, model=Tiny(), **FAST)  # type: ignore[arg-type]
    (out / "notes.txt").write_text("mine")
    return out


def test_overwrite_onto_unreadable_data_keeps_the_earlier_run(
    finished_run: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken"
    broken.mkdir()
    for i in range(70):
        (broken / f"img_{i}.jpg").write_bytes(b"not a jpeg")
    before = _snapshot(finished_run)
    cmd = cli_train_command(finished_run, broken, "overwrite=true", "batch_size=64")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2
    assert "None of the 70 images could be read" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert "img_0.jpg" in proc.stderr  # the bad files are named
    assert _snapshot(finished_run) == before  # not one byte of the earlier run changed


def test_nan_loss_stops_with_the_step_and_the_last_good_checkpoint(tmp_path: Path) -> None:
    out = tmp_path / "out"
    # SimCLR runs both views as one forward: forward 6 is step 6 (1-based).
    with pytest.raises(LossNotFiniteError) as info:
        lightly_train.train(
            out=out,
            data=QUICKSTART_DATA,
            model=Tiny(nan_after=5),
            **{**FAST, "epochs": 3, "batch_size": 32},  # type: ignore[arg-type]
            log_every_n_steps=100,
            checkpoint_every_n_steps=2,
        )
    message = str(info.value)
    assert "at step 6 of 27" in message
    assert "(step 4)" in message and "checkpoint=" in message and "optim_args.lr" in message
    state = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert state["step"] == 4  # step 6 was caught before the checkpoint of step 6
    assert all(torch.isfinite(v).all() for v in state["method"].values() if v.is_floating_point())
    assert "at step 6 of 27" in (out / "train.log").read_text()
    assert json.loads((out / "run.json").read_text())["status"] == "failed"
    # The good weights start a new run.
    lightly_train.train(
        out=tmp_path / "again",
        data=QUICKSTART_DATA,
        model=Tiny(),
        checkpoint=out / "checkpoints" / "last.ckpt",
        **FAST,  # type: ignore[arg-type]
    )


def test_overwrite_keeps_the_earlier_run_until_the_new_one_has_a_checkpoint(
    finished_run: Path,
) -> None:
    export = (finished_run / "exported_models" / "exported_last.pt").read_bytes()
    with pytest.raises(LossNotFiniteError):
        lightly_train.train(
            out=finished_run, data=QUICKSTART_DATA, model=Tiny(nan_after=0), overwrite=True, **FAST
        )  # type: ignore[arg-type]
    (aside,) = finished_run.glob(".previous_run_*")
    assert (aside / "exported_models" / "exported_last.pt").read_bytes() == export
    assert f"kept in {aside}" in (finished_run / "train.log").read_text()
    assert (finished_run / "notes.txt").read_text() == "mine"
    # A run that gets to its first checkpoint removes what it replaced.
    lightly_train.train(
        out=finished_run, data=QUICKSTART_DATA, model=Tiny(), overwrite=True, **FAST
    )  # type: ignore[arg-type]
    assert not list(finished_run.glob(".previous_run_*"))
    assert (finished_run / "notes.txt").read_text() == "mine"


def test_read_only_out_is_a_clean_error_before_any_work(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        out = Path("/sys/lightly_train_test/out")  # root may write anywhere but there
        if not Path("/sys").is_dir():
            pytest.skip("no read-only location for root")
    else:
        locked = tmp_path / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        out = locked / "out"
    cmd = cli_train_command(out, QUICKSTART_DATA)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2
    assert "Cannot write to the out folder" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_dangling_symlink_is_skipped_with_a_log_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for i, src in enumerate(sorted(QUICKSTART_DATA.rglob("*.jpg"))[:70]):
        (data / f"img_{i:02d}.jpg").symlink_to(src)
    (data / "gone.jpg").symlink_to(tmp_path / "deleted.jpg")
    out = tmp_path / "out"
    lightly_train.train(out=out, data=data, model=Tiny(), **FAST)  # type: ignore[arg-type]
    log = (out / "train.log").read_text()
    assert "gone.jpg" in log and "symbolic link" in log
    assert json.loads((out / "config.json").read_text())["resolved"]["num_images"] == 70


def test_gradient_accumulation_splits_each_step(tmp_path: Path) -> None:
    wrapper = Tiny()
    lightly_train.train(
        out=tmp_path / "out",
        data=QUICKSTART_DATA,
        model=wrapper,
        gradient_accumulation_steps=4,
        log_every_n_steps=1,
        **{**FAST, "batch_size": 16},  # type: ignore[arg-type]
    )
    # 4 steps of 64 images, each as 4 passes of 16 images (SimCLR's 2 views in one batch).
    assert wrapper.batch_sizes == [32] * 16
    records = (tmp_path / "out" / "metrics.jsonl").read_text().splitlines()
    assert len([r for r in records if '"loss"' in r]) == 4
    log = (tmp_path / "out" / "train.log").read_text()
    assert "4 steps of 64 images in 4 accumulated batches of 16" in log
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["resolved"]["lr"] == pytest.approx(0.12 * 64 / 256)  # the effective batch


def test_resume_checks_the_run_and_its_options(finished_run: Path) -> None:
    def resume(**options: object) -> None:
        lightly_train.train(
            out=finished_run,
            data=QUICKSTART_DATA,
            model=Tiny(),
            resume_interrupted=True,
            **{**FAST, **options},  # type: ignore[arg-type]
        )

    with pytest.raises(ConfigError, match=r"finished .* nothing to resume"):
        resume()
    state = json.loads((finished_run / "run.json").read_text())
    state["status"] = "running"  # as a run killed before it could say otherwise
    (finished_run / "run.json").write_text(json.dumps(state))
    with pytest.raises(ConfigError, match="batch_size: 64 -> 32; epochs: 1 -> 2"):
        resume(epochs=2, batch_size=32)
    with pytest.raises(ConfigError, match="cannot be combined"):
        resume(checkpoint=finished_run / "checkpoints" / "last.ckpt")
    resume(num_workers=1, log_every_n_steps=3)  # options that do not change the run may
    assert json.loads((finished_run / "run.json").read_text())["status"] == "finished"


def _step_losses(out: Path) -> dict[int, float]:
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in records if "loss" in r}


def test_dino_python_api_ctrl_c_then_resume_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    """DINO adds an EMA teacher, a center and schedules to the resumed state."""
    options = {
        **FAST,
        "method": "dino",
        "epochs": 2,
        "batch_size": 32,
        "log_every_n_steps": 1,
        "checkpoint_every_n_steps": 100,  # the interrupt writes the only mid-epoch checkpoint
    }
    torch.manual_seed(0)
    reference = lightly_train.train(
        out=tmp_path / "ref", data=QUICKSTART_DATA, model=Tiny(), **options
    )  # type: ignore[arg-type]
    out = tmp_path / "out"
    torch.manual_seed(0)
    before = signal.getsignal(signal.SIGINT)
    with pytest.raises(TrainingInterrupted, match="Stopped by SIGINT at step 12 of 18"):
        # DINO's student sees the 2 global views, then the local views: 2 forwards a step.
        lightly_train.train(out=out, data=QUICKSTART_DATA, model=CtrlC(at=23), **options)  # type: ignore[arg-type]
    assert signal.getsignal(signal.SIGINT) is before  # the handler is restored
    lightly_train.train(
        out=out, data=QUICKSTART_DATA, model=CtrlC(at=-1), resume_interrupted=True, **options
    )  # type: ignore[arg-type]
    assert _step_losses(out) == _step_losses(reference)
    assert len(_step_losses(out)) == 18
    ours = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["method"]
    ref = torch.load(reference / "checkpoints" / "last.ckpt", weights_only=True)["method"]
    assert "criterion.center" in ref and any(k.startswith("teacher_") for k in ref)
    assert all(torch.equal(ours[k], ref[k]) for k in ref)
