from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn

from lt_core import WrapperError
from lt_train._dry_run import dry_run


class Wrapper(nn.Module):
    def __init__(self, use_view: bool, dim: int = 4) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.use_view = use_view
        self.dim = dim
        self.calls = 0

    def get_model(self) -> nn.Module:
        return self.conv

    def forward_features(self, x: Tensor) -> dict[str, Tensor]:
        self.calls += 1
        if self.use_view:  # .view on a channels-last tensor fails
            x = x.view(len(x), -1).view(x.shape)
        y = self.conv(x)
        return {"features": y}

    def forward_pool(self, x: dict[str, Tensor]) -> dict[str, Tensor]:
        return {"pooled_features": x["features"].mean((2, 3), keepdim=True)}

    def feature_dim(self) -> int:
        return self.dim


def test_convnet_is_converted_with_one_forward_per_size_and_mode_kept() -> None:
    w = Wrapper(use_view=False).train()
    assert dry_run(w, [(8, 8), (16, 16)], channels_last=True) == torch.channels_last
    assert w.conv.weight.is_contiguous(memory_format=torch.channels_last)
    assert w.training
    assert w.calls == 2  # validation and channels-last probe share the dry run


def test_model_failing_in_channels_last_is_reverted() -> None:
    w = Wrapper(use_view=True)
    assert dry_run(w, [(8, 8)], channels_last=True) == torch.contiguous_format
    assert w.conv.weight.is_contiguous()


def test_channels_last_off_keeps_the_default_format() -> None:
    w = Wrapper(use_view=False)
    assert dry_run(w, [(8, 8)], channels_last=False) == torch.contiguous_format
    assert w.conv.weight.is_contiguous() and w.calls == 1


def test_invalid_wrapper_raises_its_real_error() -> None:
    w = Wrapper(use_view=False, dim=5)  # feature_dim() disagrees with the features
    with pytest.raises(WrapperError, match="feature_dim"):
        dry_run(w, [(8, 8)], channels_last=True)
    assert w.conv.weight.is_contiguous()


def test_model_without_convolutions_is_left_alone() -> None:
    class Linear(Wrapper):
        def __init__(self) -> None:
            super().__init__(use_view=False)
            del self.conv
            self.lin = nn.Linear(3, 4)

        def get_model(self) -> nn.Module:
            return self.lin

        def forward_features(self, x: Tensor) -> dict[str, Tensor]:
            y = self.lin(x.mean((2, 3)))[:, :, None, None]
            return {"features": y}

    assert dry_run(Linear(), [(8, 8)], channels_last=True) == torch.contiguous_format


def test_invalid_wrapper_logs_no_channels_last_notice(caplog: pytest.LogCaptureFixture) -> None:
    w = Wrapper(use_view=False, dim=5)
    with caplog.at_level("INFO", logger="lt_train"), pytest.raises(WrapperError):
        dry_run(w, [(8, 8)], channels_last=True)
    assert "channels-last" not in caplog.text  # the error is shown once, as itself


def test_channels_last_notice_is_one_short_line(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("INFO", logger="lt_train"):
        dry_run(Wrapper(use_view=True), [(8, 8)], channels_last=True)
    (notice,) = [r.getMessage() for r in caplog.records if "channels-last" in r.getMessage()]
    assert "\n" not in notice and len(notice) < 300
