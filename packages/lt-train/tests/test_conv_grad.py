"""The CPU weight gradient of convolutions with a tiny output (``_conv_grad``): the same
gradients as torch's own, used only where it applies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from _tiny import tiny_config, write_images
from torch import nn

from lt_train import train
from lt_train._speed import _conv_grad
from lt_train._speed._conv_grad import MAX_OUTPUT_PIXELS, small_conv_grads, small_conv_grads_apply

FAST = "_SmallOutputConv2dBackward"


def _grads(x: torch.Tensor, conv: nn.Conv2d, fast: bool) -> tuple[str, list[torch.Tensor]]:
    x = x.detach().clone().requires_grad_()
    conv.zero_grad()
    with small_conv_grads(fast):
        y = conv(x)
    (y * torch.linspace(-1, 1, y.numel()).reshape(y.shape)).sum().backward()
    grads = [x.grad, conv.weight.grad] + ([conv.bias.grad] if conv.bias is not None else [])
    return type(y.grad_fn).__name__, [g.clone() for g in grads]  # type: ignore[union-attr]


CASES = [  # (in_channels, out_channels, input hw, conv options): outputs of 1 to 4 pixels
    (16, 24, (1, 1), dict(kernel_size=3, padding=1)),
    (16, 24, (2, 2), dict(kernel_size=3, padding=1, bias=False)),
    (8, 8, (4, 4), dict(kernel_size=3, stride=2, padding=1)),
    (8, 12, (3, 5), dict(kernel_size=(3, 2), stride=(2, 3), padding=(1, 0))),
    (8, 8, (3, 4), dict(kernel_size=3, dilation=2, padding=1)),
    (4, 4, (4, 4), dict(kernel_size=3, padding=1, padding_mode="reflect", stride=2)),
]


@pytest.mark.parametrize(("cin", "cout", "hw", "options"), CASES)
@pytest.mark.parametrize("channels_last", [False, True])
def test_same_gradients_as_torch(
    cin: int, cout: int, hw: tuple[int, int], options: dict[str, Any], channels_last: bool
) -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(cin, cout, **options)
    x = torch.randn(5, cin, *hw)
    if channels_last:
        conv = conv.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        x = x.contiguous(memory_format=torch.channels_last)
    out_pixels = conv(x).shape[2] * conv(x).shape[3]
    assert out_pixels <= MAX_OUTPUT_PIXELS
    ref_fn, ref = _grads(x, conv, fast=False)
    fn, got = _grads(x, conv, fast=True)
    assert ref_fn != FAST and fn == FAST
    for r, g in zip(ref, got):
        torch.testing.assert_close(g, r, rtol=1e-5, atol=1e-6)


def test_other_calls_run_untouched() -> None:
    torch.manual_seed(0)
    x = torch.randn(2, 8, 2, 2)
    untouched = {
        "larger output": (nn.Conv2d(8, 8, 3, padding=1), torch.randn(2, 8, 3, 3)),
        "1x1 kernel": (nn.Conv2d(8, 8, 1), x),
        "groups": (nn.Conv2d(8, 8, 3, padding=1, groups=2), x),
        "string padding": (nn.Conv2d(8, 8, 3, padding="same"), x),
        "float64 input, float32 weight": (nn.Conv2d(8, 8, 3, padding=1), x.double()),
        "frozen weight": (nn.Conv2d(8, 8, 3, padding=1).requires_grad_(False), x),
    }
    for what, (conv, inp) in untouched.items():
        with small_conv_grads():
            try:
                y = conv(inp.requires_grad_())
            except RuntimeError:  # the mixed dtypes: torch's own error, as without the mode
                assert what.startswith("float64")
                continue
        assert type(y.grad_fn).__name__ != FAST, what
    conv = nn.Conv2d(8, 8, 3, padding=1)
    with small_conv_grads(), torch.no_grad():
        assert conv(x).grad_fn is None
    with small_conv_grads(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert type(conv(x).grad_fn).__name__ != FAST
    with small_conv_grads(enabled=False):
        assert type(conv(x).grad_fn).__name__ != FAST
    with small_conv_grads():
        assert type(F.conv2d(x, conv.weight, None, 1, 1).grad_fn).__name__ == FAST


def test_double_backward_is_refused() -> None:
    conv = nn.Conv2d(4, 4, 3, padding=1)
    x = torch.randn(2, 4, 1, 1, requires_grad=True)
    with small_conv_grads():
        y = conv(x).square().sum()
    (gx,) = torch.autograd.grad(y, x, create_graph=True)
    with pytest.raises(RuntimeError, match=r"once_differentiable|double backward|differentiable"):
        gx.sum().backward()


def test_where_it_applies(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert small_conv_grads_apply(cpu, compiled=False)
    assert not small_conv_grads_apply(cpu, compiled=True)
    assert not small_conv_grads_apply(cuda, compiled=False)
    monkeypatch.setenv("LIGHTLY_TRAIN_CPU_CONV_GRAD", "0")
    assert not small_conv_grads_apply(cpu, compiled=False)


class _Deep(nn.Module):
    """Down to 2x2 features: the second convolution's output has 4 pixels."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=4, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, 2, 1)
        )

    def get_model(self) -> nn.Module:
        return self.net

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"features": self.net(x)}

    def forward_pool(self, x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"pooled_features": x["features"].mean((2, 3), keepdim=True)}

    def feature_dim(self) -> int:
        return 16


def test_a_cpu_run_uses_it_and_trains_as_without(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = write_images(tmp_path / "images", 16)
    calls = []
    apply = _conv_grad._SmallOutputConv2d.apply

    def counted(*args: Any) -> Any:
        calls.append(args[0].shape)
        return apply(*args)

    monkeypatch.setattr(_conv_grad._SmallOutputConv2d, "apply", counted)
    weights = {}
    for setting in ("1", "0"):
        monkeypatch.setenv("LIGHTLY_TRAIN_CPU_CONV_GRAD", setting)
        out = tmp_path / f"out{setting}"
        torch.manual_seed(0)
        train(tiny_config(out, data, model=_Deep(), epochs=2, seed=1))
        weights[setting] = torch.load(out / "exported_models" / "exported_last.pt")
        if setting == "1":
            assert calls and all(shape[2:] == (4, 4) for shape in calls)
            calls.clear()
    assert not calls
    for key, value in weights["0"].items():
        torch.testing.assert_close(weights["1"][key], value, rtol=1e-4, atol=1e-5)
