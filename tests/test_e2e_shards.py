"""Training on WebDataset shards made from the bundled CIFAR-10 images, as on the folder."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch
from _wrappers import CtrlC, Tiny
from conftest import QUICKSTART_DATA, cli_train_command, write_tar
from torchvision.models import resnet18

import lightly_train
from lt_core import TrainingInterrupted
from lt_data import make_shards

FAST = {
    "epochs": 1,
    "batch_size": 32,
    "num_workers": 2,
    "accelerator": "cpu",
    "progress_bar": False,
    "log_every_n_steps": 1,
    "transform_args": {"image_size": [32, 32]},
}


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> str:
    """8 shards of the 300 images, and a ninth with a corrupt image and a sample without one."""
    folder = tmp_path_factory.mktemp("shards")
    stats = make_shards(QUICKSTART_DATA, folder, max_count=40, progress=False)
    assert len(stats.shards) == 8
    write_tar(
        folder / "shard-000008.tar", [("bad.jpg", b"not a jpeg"), ("nothing.txt", b"text only")]
    )
    return str(folder / "shard-{000000..000008}.tar")


def _records(out: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_train_on_shards_counts_samples_and_skips_bad_ones(shards: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    lightly_train.train(out=out, data=shards, model=Tiny(), **FAST)  # type: ignore[arg-type]
    config = json.loads((out / "config.json").read_text())
    # Counted from the tar headers: the samples with an image member (bad.jpg among them).
    assert config["resolved"]["num_images"] == 301
    assert config["resolved"]["source"] == "9 WebDataset shards"
    records = _records(out)
    # One pass, every sample once: 2 workers read about 151 samples each, 4 full batches
    # of 32 each; the epoch ends with the first worker that runs out.
    assert 6 <= len([r for r in records if "loss" in r]) <= 8
    assert records[-1]["skipped_images"] == 2
    log = (out / "train.log").read_text()
    assert "bad.jpg" in log and "no image member" in log


@pytest.mark.parametrize("cache", ["none", "ram"])
def test_shards_ctrl_c_then_resume_replays_the_stream_exactly(
    shards: str, tmp_path: Path, cache: str
) -> None:
    """Without a cache the stream is replayed to the step; with one, the first epoch's
    stream is decoded into the cache again and the second epoch deals the same batches."""
    options = {**FAST, "epochs": 2, "checkpoint_every_n_steps": 100, "data_cache": cache}
    torch.manual_seed(0)
    ref = lightly_train.train(out=tmp_path / "ref", data=shards, model=CtrlC(at=-1), **options)  # type: ignore[arg-type]
    out = tmp_path / "out"
    torch.manual_seed(0)
    with pytest.raises(TrainingInterrupted, match="at step 11 of 16"):
        lightly_train.train(out=out, data=shards, model=CtrlC(at=11), **options)  # type: ignore[arg-type]
    lightly_train.train(
        out=out, data=shards, model=CtrlC(at=-1), resume_interrupted=True, **options
    )  # type: ignore[arg-type]
    losses = {r["step"]: r["loss"] for r in _records(out) if "loss" in r}
    assert losses == {r["step"]: r["loss"] for r in _records(ref) if "loss" in r}
    assert len(losses) >= 12
    log = (out / "train.log").read_text()
    if cache == "none":
        assert "Skipping 3 batches of the stream" in log
    else:
        assert "Refilling the data cache" in log and "Skipping" not in log


def test_two_process_cpu_ddp_on_shards(shards: str, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    cmd = cli_train_command(
        out, Path(shards), "devices=2", "strategy=ddp", "num_workers=1", "log_every_n_steps=1"
    )
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    resnet18().load_state_dict(
        torch.load(out / "exported_models" / "exported_last.pt", weights_only=True)
    )
    records = _records(out)
    # 301 images, about 150 a process, batches of 32 a process (global 64): at most 4
    # steps, fewer if one process's shards run out first.
    assert 2 <= len([r for r in records if "loss" in r]) <= 4
