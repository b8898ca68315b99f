from __future__ import annotations

import torch
from torch import Tensor, nn

from lt_train._memory_format import supports_channels_last


class Wrapper(nn.Module):
    def __init__(self, use_view: bool) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.use_view = use_view

    def get_model(self) -> nn.Module:
        return self.conv

    def forward_features(self, x: Tensor) -> dict[str, Tensor]:
        y = self.conv(x)
        if self.use_view:  # .view on a channels-last activation fails
            y = y.transpose(1, 3).view(len(x), -1).view(len(x), 4, x.shape[2], x.shape[3])
        return {"features": y}

    def forward_pool(self, x: dict[str, Tensor]) -> dict[str, Tensor]:
        return {"pooled_features": x["features"].mean((2, 3), keepdim=True)}

    def feature_dim(self) -> int:
        return 4


def test_convnet_is_converted_and_training_mode_kept() -> None:
    w = Wrapper(use_view=False).train()
    assert supports_channels_last(w, (8, 8))
    assert w.conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert w.training


def test_model_failing_in_channels_last_is_reverted() -> None:
    w = Wrapper(use_view=True)
    assert not supports_channels_last(w, (8, 8))
    assert w.conv.weight.is_contiguous()


def test_model_without_convolutions_is_left_alone() -> None:
    class Linear(Wrapper):
        def __init__(self) -> None:
            nn.Module.__init__(self)
            self.lin = nn.Linear(3, 4)

    assert not supports_channels_last(Linear(), (8, 8))
