"""Optimizers (SGD, AdamW, LARS) and the warm-up + cosine learning-rate schedule."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch.optim import Optimizer

from lt_methods import OPTIMIZER_NAMES

if TYPE_CHECKING:
    from lt_train._config import OptimArgs

__all__ = ["OPTIMIZERS", "build_optimizer", "lr_at_step", "scaled_lr", "warmup_steps"]


def _sgd(groups: list[dict[str, Any]], lr: float, args: OptimArgs, fused: bool) -> Optimizer:
    optimizer = torch.optim.SGD(groups, lr=lr, momentum=args.momentum, fused=fused or None)
    if fused and args.momentum:
        # Torch's fused SGD fails ("expected Tensor ... got NoneType") when a parameter gets
        # its first gradient after the others have momentum buffers: DINO's and SwAV's
        # frozen first epoch. Zero buffers from the start avoid that and change no update:
        # the first step's 0 * momentum + grad equals torch's buffer = grad.
        for group in optimizer.param_groups:
            for param in group["params"]:
                optimizer.state[param]["momentum_buffer"] = torch.zeros_like(param)
    return optimizer


def _adamw(groups: list[dict[str, Any]], lr: float, args: OptimArgs, fused: bool) -> Optimizer:
    return torch.optim.AdamW(groups, lr=lr, betas=args.betas, fused=fused or None)


def _lars(groups: list[dict[str, Any]], lr: float, args: OptimArgs, fused: bool) -> Optimizer:
    from lt_methods import LARS

    return LARS(  # type: ignore[no-any-return]
        groups, lr=lr, momentum=args.momentum, trust_coefficient=args.trust_coefficient
    )


_BUILDERS: dict[str, Callable[[list[dict[str, Any]], float, OptimArgs, bool], Optimizer]] = {
    "sgd": _sgd,
    "adamw": _adamw,
    "lars": _lars,
}
#: The builder of each name of ``lt_methods.OPTIMIZER_NAMES``, the one table of optimizer
#: names that the ``optim`` option, the method registry, this builder and the docs read.
OPTIMIZERS = {name: _BUILDERS[name] for name in OPTIMIZER_NAMES}

REFERENCE_BATCH_SIZE = 256


def scaled_lr(
    base_lr: float,
    batch_size: int,
    method: str = "linear",
    reference_batch_size: int = REFERENCE_BATCH_SIZE,
) -> float:
    """Scale ``base_lr``, given for ``reference_batch_size`` images, to ``batch_size``:
    linearly (``"linear"``, the SimCLR/DINO rule) or with the square root (``"sqrt"``)."""
    ratio = batch_size / reference_batch_size
    if method == "sqrt":
        return base_lr * math.sqrt(ratio)
    if method != "linear":
        raise ValueError(f"Unknown lr_scale_method {method!r}; valid: linear, sqrt.")
    return base_lr * ratio


def build_optimizer(
    name: str,
    param_groups: list[dict[str, Any]],
    *,
    lr: float,
    weight_decay: float,
    args: OptimArgs,
    fused: bool = False,
) -> Optimizer:
    """Create optimizer ``name`` over ``param_groups``.

    Groups that set their own ``weight_decay`` (biases and norm parameters set 0) keep it;
    the others get ``weight_decay``. Each group remembers its peak lr as ``initial_lr``.
    ``fused``: one fused kernel for the whole update (SGD, AdamW; the parameters must be
    on their device, a CUDA GPU or the CPU, already); LARS ignores it.
    """
    groups = []
    for group in param_groups:
        group = dict(group)
        group.setdefault("weight_decay", weight_decay)
        group["initial_lr"] = lr * group.pop("lr_scale", 1.0)
        group["lr"] = group["initial_lr"]
        groups.append(group)
    if name not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {name!r}; valid: {', '.join(OPTIMIZERS)}.")
    return OPTIMIZERS[name](groups, lr, args, fused)


def warmup_steps(args: OptimArgs, epochs: int, steps_per_epoch: int) -> int:
    """Warm-up length in steps: ``warmup_epochs``, or ``min(10 epochs, 10% of the run)``."""
    total = epochs * steps_per_epoch
    epochs_ = args.warmup_epochs if args.warmup_epochs is not None else min(10.0, 0.1 * epochs)
    return min(total, round(epochs_ * steps_per_epoch))


def lr_at_step(step: int, *, max_steps: int, warmup: int, min_ratio: float) -> float:
    """Multiplier of the peak lr at ``step``: linear warm-up, then cosine decay to
    ``min_ratio``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, max_steps - warmup)
    return min_ratio + (1.0 - min_ratio) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))


def set_lr(optimizer: Optimizer, factor: float) -> float:
    """Set every group's lr to ``initial_lr * factor``; return the first group's lr."""
    for group in optimizer.param_groups:
        group["lr"] = group["initial_lr"] * factor
    return float(optimizer.param_groups[0]["lr"])
