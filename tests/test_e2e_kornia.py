"""A user's own kornia augmentation pipeline (``transform_args.augment``) in a real run."""

from __future__ import annotations

import json
from pathlib import Path

import kornia.augmentation as K
import pytest
import torch
from torch import Tensor, nn
from torchvision.models import resnet18

import lightly_train
from lightly_train._cli import main as cli_main


class Counted(nn.Module):
    """A kornia pipeline that records the batches it is called with."""

    def __init__(self) -> None:
        super().__init__()
        self.pipeline = K.AugmentationSequential(K.RandomRotation(degrees=30.0, p=0.5))
        self.calls: list[tuple[tuple[int, ...], torch.dtype, str]] = []

    def forward(self, x: Tensor) -> Tensor:
        self.calls.append((tuple(x.shape), x.dtype, x.device.type))
        out: Tensor = self.pipeline(x)
        return out


def test_kornia_pipeline_trains_end_to_end(images: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    augment = Counted()
    lightly_train.train(
        out=out,
        data=images,
        model="torchvision/resnet18",
        method="simclr",
        epochs=1,
        batch_size=64,
        num_workers=0,
        accelerator="cpu",
        progress_bar=False,
        transform_args={"image_size": [32, 32], "augment": augment},
    )
    # Called on every batch (300 // 64 steps), with both views of its 64 images at once,
    # and once more at step 0 for the report's grid of views (monitor/views.pt).
    assert augment.calls == [((128, 3, 32, 32), torch.float32, "cpu")] * (300 // 64 + 1)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    assert losses and all(torch.isfinite(torch.tensor(losses)))
    state = torch.load(out / "exported_models" / "exported_last.pt", weights_only=True)
    resnet18().load_state_dict(state, strict=True)
    # config.json records the pipeline readably (its repr); the raw option too.
    config = json.loads((out / "config.json").read_text())
    assert config["transform_args"]["augment"] == repr(augment)
    assert "RandomRotation(degrees=30.0, p=0.5" in config["transform_args"]["augment"]


def test_augment_from_the_command_line_fails_naming_the_python_api(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    argv = [
        "train",
        f"out={out}",
        f"data={tmp_path}",
        "model=torchvision/resnet18",
        "transform_args.augment=kornia.augmentation.RandomRotation(30)",
    ]
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    assert "transform_args.augment must be a callable" in err
    assert "Fix: pass the object itself from Python" in err
    assert not out.exists()
