"""A run never writes NaN or infinite weights: the loss of every step is watched on the
device (no host sync), and the whole method state is checked before each checkpoint and
export."""

from __future__ import annotations

import math
from typing import Any

import torch

from lt_train._stop import LossNotFiniteError

__all__ = ["FiniteGuard"]

_NO_BAD_STEP = 2**62


class FiniteGuard:
    """Watches a run for non-finite values (all processes take part in the checks)."""

    def __init__(self, fabric: Any) -> None:
        self.fabric = fabric
        self.bad_step = torch.full((), _NO_BAD_STEP, dtype=torch.int64, device=fabric.device)

    def note(self, loss: torch.Tensor, step: int) -> None:
        """Remember ``step`` if ``loss`` is not finite (on the device: no host sync)."""
        self.bad_step = torch.where(
            torch.isfinite(loss), self.bad_step, torch.clamp(self.bad_step, max=step)
        )

    def check_loss(self, max_steps: int, last_good: str) -> None:
        """Stop if any process saw a non-finite loss (a host sync: called on log steps and
        before every checkpoint, so a checkpoint never holds weights trained on a NaN)."""
        first = self.bad_step.clone()
        if self.fabric.world_size > 1:
            torch.distributed.all_reduce(first, op=torch.distributed.ReduceOp.MIN)
        if int(first) == _NO_BAD_STEP:
            return
        raise LossNotFiniteError(
            f"The loss became NaN or infinite at step {int(first) + 1} of {max_steps}; "
            f"training stopped. {last_good} Try a lower learning rate (optim_args.lr), "
            "precision='32-true' instead of mixed precision, or gradient clipping "
            "(optim_args.gradient_clip_norm=1.0)."
        )

    def check_state(self, module: torch.nn.Module, where: str, what: str, last_good: str) -> None:
        """Stop before a checkpoint or export (``what``) holds a NaN or infinite parameter
        or buffer of ``module`` (heads, EMA teacher, batch norm statistics): one fused
        max-abs over all floating tensors and one host sync."""
        state = module.state_dict()
        tensors = [
            t
            for t in state.values()
            if isinstance(t, torch.Tensor) and t.is_floating_point() and t.numel() > 0
        ]
        if not tensors:
            return
        with torch.no_grad():
            norms = torch._foreach_norm(tensors, ord=math.inf)  # max |x|: NaN and inf stay
            peaks = torch.stack([p.float().to(self.fabric.device) for p in norms])
            bad = (~torch.isfinite(peaks)).any().to(torch.int64)
        if self.fabric.world_size > 1:
            torch.distributed.all_reduce(bad, op=torch.distributed.ReduceOp.MAX)
        if not int(bad):
            return
        names = [
            n
            for n, t in state.items()
            if isinstance(t, torch.Tensor)
            and t.is_floating_point()
            and not bool(torch.isfinite(t).all())
        ]
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        raise LossNotFiniteError(
            f"The model's weights or buffers became NaN or infinite {where} ({shown}), "
            f"although the loss was finite; training stopped and this {what} was not "
            f"written. {last_good} Try a lower learning rate (optim_args.lr), or gradient "
            "clipping (optim_args.gradient_clip_norm=1.0)."
        )
