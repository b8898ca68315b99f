from __future__ import annotations

import shutil
import sys
from pathlib import Path

import pytest
import torch
from torch import nn
from torchvision.models import resnet18

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART_DATA = ROOT / "docs" / "quickstart_data"
sys.path.insert(0, str(Path(__file__).parent))


class ResNet18Wrapper(nn.Module):
    """The seed-style wrapper of the README."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self._model = model
        self._features = nn.Sequential(*list(model.children())[:-2])
        self._pool = nn.AdaptiveAvgPool2d(1)

    def get_model(self) -> nn.Module:
        return self._model

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"features": self._features(x)}

    def forward_pool(self, x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"pooled_features": self._pool(x["features"])}

    def feature_dim(self) -> int:
        return 512


@pytest.fixture
def wrapper() -> ResNet18Wrapper:
    torch.manual_seed(0)
    return ResNet18Wrapper(resnet18())


@pytest.fixture
def images(tmp_path: Path) -> Path:
    """A copy of the bundled 300 real CIFAR-10 images."""
    dst = tmp_path / "images"
    shutil.copytree(QUICKSTART_DATA, dst)
    return dst
