"""Small model wrappers for fast end-to-end runs, with faults on demand."""

from __future__ import annotations

import os
import signal

from torch import Tensor, nn


class Tiny(nn.Module):
    """A small convnet wrapper that can turn its features to NaN after ``nan_after``
    training-mode forward passes (the dry run is in eval mode and stays finite)."""

    def __init__(self, nan_after: int | None = None) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.BatchNorm2d(8), nn.ReLU())
        self.nan_after = nan_after
        self.batch_sizes: list[int] = []

    def get_model(self) -> nn.Module:
        return self.net

    def forward_features(self, x: Tensor) -> dict[str, Tensor]:
        y = self.net(x)
        if self.training:
            self.batch_sizes.append(len(x))
            if self.nan_after is not None and len(self.batch_sizes) > self.nan_after:
                y = y * float("nan")
        return {"features": y}

    def forward_pool(self, x: dict[str, Tensor]) -> dict[str, Tensor]:
        return {"pooled_features": x["features"].mean((2, 3), keepdim=True)}

    def feature_dim(self) -> int:
        return 8


class CtrlC(Tiny):
    """Presses Ctrl-C (sends SIGINT to this process) during training forward ``at``."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at = at

    def forward_features(self, x: Tensor) -> dict[str, Tensor]:
        out = super().forward_features(x)
        if self.training and len(self.batch_sizes) == self.at:
            os.kill(os.getpid(), signal.SIGINT)
        return out
