"""The small convnet wrapper that the lt-train tests train (as in tests/_wrappers.py)."""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from torch import Tensor, nn

from lt_core import from_dict
from lt_train import TrainConfig


class Tiny(nn.Module):
    """Conv + batch norm, ReLU in ``forward_features``; ``channels`` features."""

    def __init__(self, channels: int = 8) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, channels, 3, stride=2), nn.BatchNorm2d(channels))
        self.channels = channels

    def get_model(self) -> nn.Module:
        return self.net

    def forward_features(self, x: Tensor) -> dict[str, Tensor]:
        return {"features": torch.relu(self.net(x))}

    def forward_pool(self, x: dict[str, Tensor]) -> dict[str, Tensor]:
        return {"pooled_features": x["features"].mean((2, 3), keepdim=True)}

    def feature_dim(self) -> int:
        return self.channels


def tiny_config(out: Path, data: Path, **options: object) -> TrainConfig:
    """A quick CPU run of :class:`Tiny` on 16x16 images (batch 8, no workers, no bar);
    ``options`` override or add ``TrainConfig`` values."""
    values: dict[str, object] = dict(
        out=str(out),
        data=str(data),
        model=Tiny(),
        epochs=1,
        batch_size=8,
        num_workers=0,
        accelerator="cpu",
        progress_bar=False,
        transform_args={"image_size": [16, 16]},
    )
    values.update(options)
    return from_dict(TrainConfig, values, "")


def write_images(folder: Path, count: int, size: int = 16, seed: int = 0) -> Path:
    """``count`` random ``size`` x ``size`` PNGs ``0.png``, ``1.png``, ... in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator().manual_seed(seed)
    for i in range(count):
        pixels = torch.randint(0, 255, (size, size, 3), generator=gen, dtype=torch.uint8)
        Image.fromarray(pixels.numpy()).save(folder / f"{i}.png")
    return folder
