"""Two CPU processes with DDP (gloo), launched by the CLI as a user would."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import torch
from conftest import cli_train_command
from torchvision.models import resnet18


def test_two_process_cpu_ddp(images: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp_out"
    cmd = cli_train_command(out, images, "devices=2", "strategy=ddp", "log_every_n_steps=1")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    resnet18().load_state_dict(
        torch.load(out / "exported_models" / "exported_last.pt", weights_only=True)
    )
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    # 300 images, global batch 64 over 2 processes of 32: each process sees 150 -> 4 steps.
    assert len([r for r in records if "loss" in r]) == 4
    config = json.loads((out / "config.json").read_text())
    assert config["resolved"]["num_images"] == 300
