"""Two CPU processes with DDP (gloo), launched by the CLI as a user would.

A two-process run SIGKILLed and resumed (bit-identical losses and weights) is in
test_e2e_multinode.py, with its processes launched by torchrun as two nodes."""

from __future__ import annotations

import json
import shutil
import subprocess
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
