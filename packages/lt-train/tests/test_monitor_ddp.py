"""The monitors and the kNN probe with two CPU processes (DDP over gloo): all processes
take part in every check, nothing deadlocks, and process 0 writes what one process would."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from _tiny import write_images

SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
from _tiny import tiny_config
from lt_train import train

train(tiny_config(
    {out!r}, {data!r}, devices=2, strategy="ddp", epochs=2, log_every_n_steps=1,
    monitor_every_n_steps=3, monitor_args={{"sample_size": 31}}, val_data={val!r},
))
"""


@pytest.mark.slow
def test_two_processes_share_the_checks(tmp_path: Path) -> None:
    data = write_images(tmp_path / "data", 32)
    val = tmp_path / "val"
    write_images(val / "a", 7, seed=1)
    write_images(val / "b", 8, seed=2)
    (val / "b" / "broken.png").write_bytes(b"not an image")  # left out, never an error
    out = tmp_path / "out"
    script = tmp_path / "run.py"
    tests = str(Path(__file__).parent)
    script.write_text(
        textwrap.dedent(SCRIPT.format(tests=tests, out=str(out), data=str(data), val=str(val)))
    )
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=600, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    lines = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    # 32 images, global batch 8 over 2 processes: 4 steps an epoch, 8 in all.
    assert [r["step"] for r in lines if "monitor/rankme" in r] == [0, 3, 6, 8]
    assert [r["step"] for r in lines if "val/knn_top1" in r] == [0, 4, 8]
    sample = torch.load(out / "monitor" / "sample.pt", weights_only=True)
    assert len(sample["names"]) == 31 and len(set(sample["names"])) == 31  # both shares
    last = torch.load(out / "monitor" / "embeddings_last.pt", weights_only=True)
    assert last["embeddings"].shape == (31, 8) and last["step"] == 8
    log = (out / "train.log").read_text()  # process 0 names it, whichever process read it
    assert "kNN probe: left out the unreadable image" in log and "broken.png" in log
