"""The LARS optimizer, from lightly (``lightly.utils.lars.LARS``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from torch.optim import Optimizer

__all__ = ["LARS"]


def LARS(params: Iterable[Any], lr: float, momentum: float = 0.9, **kwargs: Any) -> Optimizer:
    """Create lightly's LARS optimizer (You, Gitman and Ginsburg, 2017, "Large Batch Training
    of Convolutional Networks", https://arxiv.org/abs/1708.03888), as used by SimCLR.

    Groups with ``weight_decay == 0`` (biases and norm layers, see
    :meth:`lt_methods.Method.param_groups`) are excluded from the trust-ratio scaling and
    get plain SGD with momentum. ``lightly`` is imported here, on first use, so that
    ``import lt_methods`` stays light.
    """
    from lightly.utils.lars import LARS as _LARS  # type: ignore[import-untyped]

    return _LARS(params, lr=lr, momentum=momentum, **kwargs)  # type: ignore[no-any-return]
