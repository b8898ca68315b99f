"""Small wrappers used by the lt-core tests (torch only)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class TinyCNN(nn.Module):
    def __init__(self, dim: int = 16) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, dim, 3, stride=2, padding=1)
        self.bn = nn.BatchNorm2d(dim)

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(self.bn(self.conv(x)))


class GoodWrapper(nn.Module):
    def __init__(self, dim: int = 16) -> None:
        super().__init__()
        self.model = TinyCNN(dim)
        self.dim = dim
        self.pool = nn.AdaptiveAvgPool2d(1)

    def get_model(self) -> nn.Module:
        return self.model

    def forward_features(self, x: Tensor) -> dict[str, Tensor]:
        return {"features": self.model(x)}

    def forward_pool(self, x: dict[str, Tensor]) -> dict[str, Tensor]:
        return {"pooled_features": self.pool(x["features"])}

    def feature_dim(self) -> int:
        return self.dim


class TinyViT(nn.Module):
    def __init__(self, dim: int = 24, patch: int = 8) -> None:
        super().__init__()
        self.patch = patch
        self.embed = nn.Conv2d(3, dim, patch, stride=patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        layer = nn.TransformerEncoderLayer(dim, nhead=4, dim_feedforward=2 * dim, batch_first=True)
        self.blocks = nn.TransformerEncoder(layer, num_layers=1)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        tokens = self.embed(x).flatten(2).transpose(1, 2)  # (B, N, C)
        tokens = torch.cat([self.cls.expand(len(x), -1, -1), tokens], dim=1)
        return self.norm(self.blocks(tokens))


class ViTWrapper(nn.Module):
    """Tokens (B, 1 + N, C) reshaped to a (B, C, H, W) map; the class token passes through."""

    def __init__(self) -> None:
        super().__init__()
        self.vit = TinyViT()

    def get_model(self) -> nn.Module:
        return self.vit

    def forward_features(self, x: Tensor) -> dict[str, Tensor]:
        tokens = self.vit(x)
        h, w = x.shape[2] // self.vit.patch, x.shape[3] // self.vit.patch
        patches = tokens[:, 1:].transpose(1, 2).reshape(len(x), -1, h, w)
        return {"features": patches, "cls_token": tokens[:, 0]}

    def forward_pool(self, x: dict[str, Tensor]) -> dict[str, Tensor]:
        return {"pooled_features": x["cls_token"][:, :, None, None]}

    def feature_dim(self) -> int:
        return 24
