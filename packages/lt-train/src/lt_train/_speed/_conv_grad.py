"""A faster weight gradient for convolutions with a tiny output on the CPU.

On the CPU, oneDNN computes the weight gradient of a ``k x k`` convolution (``k > 1``) whose
output has at most 4 pixels (the last stages of a ResNet on 32-64 px images) 1.2-8x slower
than an ``unfold`` and one matrix product of the same numbers (measured with torch 2.15 on
2 cores: a 512 -> 512 3x3 convolution at 1x1 on a batch of 128, 71.5 against 8.7 ms). On a
ResNet-18 at 32 px these few layers are most of the backward pass.

:func:`small_conv_grads` is a context manager for the training step's forward pass. Inside
it, every plain ``conv2d`` call that needs a weight gradient and fits the case above is
recorded as :class:`_SmallOutputConv2d`: the same forward call, the same input gradient
(``aten.convolution_backward``), and the weight gradient as ``unfold`` + ``mm``. Anything
else (other devices, dtypes, tensor subclasses, groups, string padding, autocast, larger
outputs, no gradient) runs untouched. ``LIGHTLY_TRAIN_CPU_CONV_GRAD=0`` turns it off.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import FunctionCtx, once_differentiable
from torch.overrides import TorchFunctionMode

__all__ = ["MAX_OUTPUT_PIXELS", "small_conv_grads", "small_conv_grads_apply"]

#: Largest output (height x width) whose weight gradient is computed with ``unfold``: above
#: it oneDNN was as fast or faster in every measured shape.
MAX_OUTPUT_PIXELS = 4

_ENV = "LIGHTLY_TRAIN_CPU_CONV_GRAD"
_ARG_NAMES = ("input", "weight", "bias", "stride", "padding", "dilation", "groups")
_DEFAULTS: dict[str, Any] = {"bias": None, "stride": 1, "padding": 0, "dilation": 1, "groups": 1}


def _pair(value: Any) -> tuple[int, int]:
    if isinstance(value, int):
        return (value, value)
    first, second = value
    return (int(first), int(second))


class _SmallOutputConv2d(torch.autograd.Function):
    """``F.conv2d`` (groups 1, numeric padding) with the weight gradient as unfold + mm."""

    @staticmethod
    def forward(
        ctx: FunctionCtx,
        x: Tensor,
        weight: Tensor,
        bias: Tensor | None,
        geometry: tuple[tuple[int, int], tuple[int, int], tuple[int, int]],
    ) -> Tensor:
        stride, padding, dilation = geometry
        ctx.save_for_backward(x, weight)
        ctx.conv = (stride, padding, dilation, bias is not None)  # type: ignore[attr-defined]
        return F.conv2d(x, weight, bias, stride, padding, dilation)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        stride, padding, dilation, has_bias = ctx.conv
        grad_x = grad_w = grad_b = None
        if ctx.needs_input_grad[0]:
            grad_x = torch.ops.aten.convolution_backward(
                grad, x, weight, None, stride, padding, dilation, False, [0, 0], 1,
                [True, False, False],
            )[0]  # fmt: skip
        if ctx.needs_input_grad[1]:
            n, k = grad.shape[:2]
            cols = F.unfold(x, weight.shape[2:], dilation, padding, stride)  # (n, c*kh*kw, L)
            # One (k, n*L) @ (n*L, c*kh*kw) product: a batched matmul over n small products
            # was 100x slower on the CPU.
            grad_w = (
                grad.reshape(n, k, -1).transpose(0, 1).reshape(k, -1)
                @ cols.transpose(1, 2).reshape(-1, cols.shape[1])
            ).reshape(weight.shape)
        if has_bias and ctx.needs_input_grad[2]:
            grad_b = grad.sum((0, 2, 3))
        return grad_x, grad_w, grad_b, None


def _cpu_autocast() -> bool:
    try:
        return torch.is_autocast_enabled("cpu")
    except TypeError:  # torch < 2.4
        return torch.is_autocast_cpu_enabled()


def _plain(t: Any) -> bool:
    """A tensor or parameter, not a subclass (DTensor, a quantized or fake tensor)."""
    return type(t) in (Tensor, torch.nn.Parameter)


def _small_output(args: dict[str, Any]) -> bool:
    """Whether this conv2d call (its arguments by name) is one that
    :class:`_SmallOutputConv2d` speeds up."""
    x: Tensor = args["input"]
    weight: Tensor = args["weight"]
    if not (_plain(x) and _plain(weight) and weight.requires_grad):
        return False
    if x.device.type != "cpu" or x.dim() != 4 or weight.dim() != 4:
        return False
    if x.dtype not in (torch.float32, torch.float64) or weight.dtype != x.dtype:
        return False
    bias = args["bias"]
    if bias is not None and (not _plain(bias) or bias.dtype != x.dtype):
        return False
    if args["groups"] != 1 or isinstance(args["padding"], str):
        return False
    if weight.shape[2] * weight.shape[3] == 1 or _cpu_autocast():
        return False
    (sh, sw), (ph, pw), (dh, dw) = (_pair(args[k]) for k in ("stride", "padding", "dilation"))
    out_h = (x.shape[2] + 2 * ph - dh * (weight.shape[2] - 1) - 1) // sh + 1
    out_w = (x.shape[3] + 2 * pw - dw * (weight.shape[3] - 1) - 1) // sw + 1
    return out_h * out_w <= MAX_OUTPUT_PIXELS


class _SmallConvGrads(TorchFunctionMode):
    """Routes the conv2d calls that :func:`_small_output` accepts to the faster backward."""

    def __torch_function__(
        self,
        func: Any,
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        if func is torch.conv2d and torch.is_grad_enabled() and len(args) <= len(_ARG_NAMES):
            named = {**_DEFAULTS, **dict(zip(_ARG_NAMES, args)), **kwargs}
            if set(named) == set(_ARG_NAMES) and _small_output(named):
                return _SmallOutputConv2d.apply(
                    named["input"],
                    named["weight"],
                    named["bias"],
                    (_pair(named["stride"]), _pair(named["padding"]), _pair(named["dilation"])),
                )
        return func(*args, **kwargs)


def small_conv_grads_apply(device: torch.device, compiled: bool) -> bool:
    """Whether a run on ``device`` uses :func:`small_conv_grads`: on the CPU, not with
    ``torch.compile`` (it traces the forward itself), not with the environment variable
    ``LIGHTLY_TRAIN_CPU_CONV_GRAD=0``."""
    return device.type == "cpu" and not compiled and os.environ.get(_ENV, "1").strip() != "0"


@contextlib.contextmanager
def small_conv_grads(enabled: bool = True) -> Iterator[None]:
    """Within the block, conv2d calls with at most :data:`MAX_OUTPUT_PIXELS` output pixels
    compute their weight gradient with unfold + mm (see the module docstring); a no-op
    when not ``enabled``."""
    if not enabled:
        yield
        return
    with _SmallConvGrads():
        yield
