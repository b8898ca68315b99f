"""Validate the seed-style ResNet-18 wrapper with lt-core, as lightly-train does before training.

Run: uv run python docs/examples/validate_resnet18.py
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import resnet18

from lt_core import EmbeddingModel, validate_wrapper


class MyModelWrapper(nn.Module):
    """The wrapper of the README's quick start: a torchvision ResNet-18."""

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


def main() -> None:
    wrapper = MyModelWrapper(resnet18())
    for size in (32, 224):
        info = validate_wrapper(wrapper, image_size=size)
        print(f"image_size={size}: valid wrapper, {info}")
    embeddings = EmbeddingModel(wrapper, embed_dim=128).eval()(torch.randn(2, 3, 32, 32))
    print(f"embedding model output: {tuple(embeddings.shape)}")


if __name__ == "__main__":
    main()
