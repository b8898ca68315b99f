"""Channels-last memory format: faster convolutions on CPUs (oneDNN) and GPU tensor cores."""

from __future__ import annotations

import logging

import torch
from torch import nn

logger = logging.getLogger(__name__)

__all__ = ["supports_channels_last"]


def supports_channels_last(wrapper: nn.Module, image_size: tuple[int, int]) -> bool:
    """Whether ``wrapper`` runs on channels-last inputs and weights.

    Models that call ``.view`` on an activation can fail on channels-last tensors. This
    tries one small forward pass (eval mode, no gradients) in that format on a copy-free
    conversion of the wrapper and converts it back on failure, so such models train in the
    default format instead of crashing.
    """
    params = [p for p in wrapper.parameters() if p.ndim == 4]
    if not params:
        return False  # nothing to gain without convolutions
    device = params[0].device
    modes = [(m, m.training) for m in wrapper.modules()]
    x = torch.randn(2, 3, *image_size, device=device).contiguous(memory_format=torch.channels_last)
    try:
        wrapper.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        wrapper.eval()
        with torch.no_grad():
            wrapper.forward_pool(wrapper.forward_features(x))  # type: ignore[operator]
        return True
    except Exception as e:  # any failure means: keep the default format
        logger.info("Model does not run in channels-last memory format (%s); using the default.", e)
        wrapper.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
        return False
    finally:
        for module, mode in modes:
            module.training = mode
