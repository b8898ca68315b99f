"""Quick start: pretrain a ResNet-18 on the bundled images and load the exported weights.

Run from the repository root: uv run python docs/examples/quickstart.py
(about a minute on 2 CPU cores).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn
from torchvision.models import resnet18

import lightly_train

DATA = Path(__file__).resolve().parents[1] / "quickstart_data"


class MyModelWrapper(nn.Module):
    """The four-method wrapper around a torchvision ResNet-18."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self._model = model
        self._features = nn.Sequential(*list(model.children())[:-2])  # drop avgpool and fc
        self._pool = nn.AdaptiveAvgPool2d(1)

    def get_model(self) -> nn.Module:
        return self._model

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"features": self._features(x)}

    def forward_pool(self, x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"pooled_features": self._pool(x["features"])}

    def feature_dim(self) -> int:
        return 512


def main(out: str = "out/quickstart", epochs: int = 3) -> None:
    lightly_train.train(
        out=out,
        data=DATA,
        model=MyModelWrapper(resnet18()),
        method="simclr",
        epochs=epochs,
        batch_size=64,
        transform_args={"image_size": [32, 32]},
        overwrite=True,
    )
    model = resnet18()
    state = torch.load(f"{out}/exported_models/exported_last.pt", weights_only=True)
    model.load_state_dict(state, strict=True)
    print(f"Loaded the pretrained ResNet-18 from {out}/exported_models/exported_last.pt")


if __name__ == "__main__":
    main(*sys.argv[1:2])
