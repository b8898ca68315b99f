"""Two CPU processes with DDP (gloo), launched by the CLI as a user would."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import torch
from conftest import QUICKSTART_DATA, cli_train_command
from torchvision.models import resnet18


def test_two_process_cpu_ddp(tmp_path: Path) -> None:
    # 40 real images and 88 unreadable ones: with 4 images per process and step, some
    # batches of each process hold no readable image at all. Such a process must still
    # step (reusing its last good batch), or the other one would wait in the gradient
    # all-reduce forever.
    data = tmp_path / "mixed"
    data.mkdir()
    for i, src in enumerate(sorted(QUICKSTART_DATA.rglob("*.jpg"))[:40]):
        shutil.copy(src, data / f"good_{i:02d}.jpg")
    for i in range(88):
        (data / f"broken_{i:02d}.jpg").write_bytes(b"not a jpeg" * (i + 1))
    out = tmp_path / "ddp_out"
    cmd = cli_train_command(
        out, data, "devices=2", "strategy=ddp", "log_every_n_steps=1", "batch_size=8"
    )
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    resnet18().load_state_dict(
        torch.load(out / "exported_models" / "exported_last.pt", weights_only=True)
    )
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    # 128 files, global batch 8 over 2 processes of 4: each process sees 64 -> 16 steps.
    assert len([r for r in records if "loss" in r]) == 16
    assert records[-1]["skipped_images"] == 88
    config = json.loads((out / "config.json").read_text())
    assert config["resolved"]["num_images"] == 128
    # Process 0 names the files that either process skipped.
    log = (out / "train.log").read_text()
    assert all(f"broken_{i:02d}.jpg" in log for i in range(88))
    assert "(process 1)" in log


def _ddp_losses(out: Path) -> dict[int, float]:
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in records if "loss" in r]
    assert len(steps) == len(set(steps))
    return {r["step"]: r["loss"] for r in records if "loss" in r}


def test_two_process_cpu_ddp_resume_after_sigkill(tmp_path: Path) -> None:
    """SIGKILL both processes mid-epoch, resume: the same losses and weights as a run that
    was never interrupted (each process restores its own RNG streams and data position)."""
    data = tmp_path / "data"
    data.mkdir()
    for i, src in enumerate(sorted(QUICKSTART_DATA.rglob("*.jpg"))[:96]):
        shutil.copy(src, data / f"img_{i:02d}.jpg")
    # 96 images over 2 processes, 8 per process and step: 6 steps an epoch, 12 in all.
    options = (
        "devices=2",
        "strategy=ddp",
        "epochs=2",
        "batch_size=16",
        "log_every_n_steps=1",
        "checkpoint_every_n_steps=2",
    )
    reference = tmp_path / "reference"
    proc = subprocess.run(
        cli_train_command(reference, data, *options), capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = tmp_path / "out"
    cmd = cli_train_command(out, data, *options)
    run = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    deadline = time.monotonic() + 300
    metrics = out / "metrics.jsonl"
    while not (metrics.is_file() and metrics.read_text().count('"loss"') >= 8):
        assert run.poll() is None and time.monotonic() < deadline
        time.sleep(0.02)
    os.killpg(run.pid, signal.SIGKILL)  # every process of the run
    run.wait()
    resumed = subprocess.run(
        [*cmd, "resume_interrupted=true"], capture_output=True, text=True, timeout=600
    )
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert _ddp_losses(out) == _ddp_losses(reference)
    assert len(_ddp_losses(out)) == 12
    ours = torch.load(out / "exported_models" / "exported_last.pt", weights_only=True)
    ref = torch.load(reference / "exported_models" / "exported_last.pt", weights_only=True)
    assert all(torch.equal(ours[k], ref[k]) for k in ref)
