"""Runs that survive: SIGKILL mid-epoch or mid-write, SIGTERM and Ctrl-C, then resume.

A resumed run must be indistinguishable from one that was never interrupted: on the CPU,
with the same thread count, every per-step loss and the exported weights are bit-identical.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import cli_train_command
from torchvision.models import resnet18

HERE = Path(__file__).parent
# 300 images, batch 32: 9 steps an epoch, 18 in all; a checkpoint every 4 steps.
OPTIONS = (
    "epochs=2",
    "batch_size=32",
    "num_workers=1",
    "log_every_n_steps=1",
    "checkpoint_every_n_steps=4",
)
STEPS = 18


def _losses(out: Path) -> dict[int, float]:
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records if "loss" in r]
    assert len(steps) == len(set(steps)), "a step was logged twice"
    return {r["step"]: r["loss"] for r in records if "loss" in r}


def _run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, **kwargs)  # type: ignore[call-overload, no-any-return]


def _state(out: Path) -> dict[str, object]:
    return json.loads((out / "run.json").read_text())  # type: ignore[no-any-return]


def _wait_for_steps(proc: subprocess.Popen[str], out: Path, steps: int) -> None:
    deadline = time.monotonic() + 300
    metrics = out / "metrics.jsonl"
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the run ended before it could be interrupted"
        if metrics.is_file() and metrics.read_text().count('"loss"') >= steps:
            return
        time.sleep(0.02)
    raise AssertionError("the run did not reach the step in time")


def _exported(out: Path) -> dict[str, torch.Tensor]:
    state = torch.load(out / "exported_models" / "exported_last.pt", weights_only=True)
    resnet18().load_state_dict(state, strict=True)
    return state  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted run with the options of every test here."""
    from conftest import QUICKSTART_DATA

    out = tmp_path_factory.mktemp("reference") / "out"
    proc = _run(cli_train_command(out, QUICKSTART_DATA, *OPTIONS))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(_losses(out)) == STEPS
    return out


def _assert_same_run(out: Path, reference: Path) -> None:
    assert _losses(out) == _losses(reference)  # exactly: same weights, data and views
    ref = _exported(reference)
    for key, value in _exported(out).items():
        assert torch.equal(value, ref[key]), key
    assert _state(out)["status"] == "finished"


def test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run(
    reference: Path, images: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    cmd = cli_train_command(out, images, *OPTIONS)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_steps(proc, out, 11)  # in the second epoch, past the checkpoints of steps 4-9
    proc.kill()
    proc.wait()
    _exported(out)  # the export of epoch 1 is complete
    assert _state(out)["status"] == "running"  # killed: never mistaken for a finished run
    again = _run(cmd)  # without resume_interrupted the earlier run is protected
    assert again.returncode == 2 and "resume_interrupted=True" in again.stderr
    resumed = _run([*cmd, "resume_interrupted=true"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Resuming the interrupted run" in (out / "train.log").read_text()
    _assert_same_run(out, reference)


def test_sigkill_while_writing_a_checkpoint_resumes_from_the_previous_one(
    reference: Path, images: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    shm = Path("/dev/shm")
    shm_before = set(shm.iterdir()) if shm.is_dir() else set()
    cmd = cli_train_command(out, images, *OPTIONS)
    # The second checkpoint (step 8) is cut in half by a kill; TMPDIR on another filesystem
    # must not matter, since temporary files live next to their destination.
    env = {**os.environ, "TMPDIR": str(shm if shm.is_dir() else tmp_path)}
    killed = _run(
        [sys.executable, str(HERE / "_fault_injection.py"), "checkpoint", "2", *cmd[3:]], env=env
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    leftovers = list((out / "checkpoints").glob(".last.ckpt.tmp-*"))
    assert len(leftovers) == 1  # the half-written file, never renamed
    state = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert state["step"] == 4  # the previous checkpoint is intact
    if shm.is_dir():  # nothing of the checkpoint went to TMPDIR
        new = set(shm.iterdir()) - shm_before
        assert not [p for p in new if "ckpt" in p.name or ".tmp-" in p.name], new
    resumed = _run([*cmd, "resume_interrupted=true"], env=env)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "step 4 of 18" in (out / "train.log").read_text()
    assert not list((out / "checkpoints").glob(".*tmp*"))
    _assert_same_run(out, reference)


def test_sigkill_while_writing_the_export_leaves_no_truncated_file(
    reference: Path, images: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    cmd = cli_train_command(out, images, *OPTIONS)
    # The first export (end of epoch 1) is cut in half by a kill.
    killed = _run([sys.executable, str(HERE / "_fault_injection.py"), "export", "1", *cmd[3:]])
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    assert not (out / "exported_models" / "exported_last.pt").exists()
    assert len(list((out / "exported_models").glob(".exported_last.pt.tmp-*"))) == 1
    assert _state(out)["status"] == "running"
    resumed = _run([*cmd, "resume_interrupted=true"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert not list((out / "exported_models").glob(".*tmp*"))
    _assert_same_run(out, reference)


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_writes_a_checkpoint_and_says_how_to_resume(
    sig: signal.Signals, code: int, images: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    cmd = cli_train_command(out, images, *OPTIONS)
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for_steps(proc, out, 2)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == code, stderr[-3000:]
    assert "Traceback" not in stderr
    assert f"Stopped by {sig.name}" in stderr and "resume_interrupted=True" in stderr
    state = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert state["step"] == len(_losses(out))  # saved after the step it was in
    assert f"step {state['step']} of {STEPS}" in stderr
    assert _state(out)["status"] == "interrupted"
    assert f"Stopped by {sig.name}" in (out / "train.log").read_text()
    resumed = _run([*cmd, "resume_interrupted=true"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert len(_losses(out)) == STEPS
