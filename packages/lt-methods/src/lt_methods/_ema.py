"""The pieces every method with an exponential-moving-average (EMA) network shares.

BYOL's target network, MoCo's key (momentum) encoder and DINO's teacher are all a copy of
the trained network whose weights follow it: ``ema = m * ema + (1 - m) * trained`` after
every optimizer step, with a momentum ``m`` that rises to 1 over the run (a cosine, as in
BYOL, DINO and MoCo v3) or stays constant (MoCo v1/v2). This module holds the copy, the
schedule, the short-run rule for the starting momentum and the update; the methods decide
which modules are averaged and which network is exported.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import TypeVar

import torch
from torch import Tensor, nn

from lt_core import ConfigError

__all__ = ["auto_momentum", "cosine_momentum", "forward_views", "frozen_copy", "update_ema"]

M = TypeVar("M", bound=nn.Module)

#: The lowest automatic starting momentum: below it the EMA network follows the trained
#: one so closely that it stops being a stable target.
MIN_AUTO_MOMENTUM = 0.99
#: A short run's EMA averages over about ``total_steps / RUN_FRACTION`` steps.
RUN_FRACTION = 10.0


def frozen_copy(module: M, method: str) -> M:
    """A deep copy of ``module`` with ``requires_grad`` off on every parameter, the
    starting point of an EMA network (it is then updated only by :func:`update_ema`).

    Args:
        module: The trained module (an embedding model or a head).
        method: The method's name, for the error message.

    Raises:
        ConfigError: ``module`` cannot be deep-copied (e.g. it uses the legacy
            ``torch.nn.utils.weight_norm``); the message says what to use instead.
    """
    from lightly.models.utils import deactivate_requires_grad  # type: ignore[import-untyped]

    try:
        copied = copy.deepcopy(module)
    except RuntimeError as e:
        raise ConfigError(
            f"{method} copies the model for its EMA network, but copy.deepcopy failed: {e} "
            "Models with torch.nn.utils.weight_norm cannot be copied; use "
            "torch.nn.utils.parametrizations.weight_norm instead."
        ) from e
    deactivate_requires_grad(copied)
    return copied


def auto_momentum(paper_value: float, total_steps: int | None) -> float:
    """The automatic starting momentum: ``paper_value`` for long runs, lowered for short
    ones so that the EMA averages over about a tenth of the run (``1 - 10 /
    total_steps``), but never below 0.99. At the papers' 0.996-0.999 a run of a few
    thousand steps would end with an EMA network that barely left its random start.

    Args:
        paper_value: The paper's momentum (BYOL and DINO 0.996, MoCo v2 0.999).
        total_steps: Optimizer steps of the whole run; ``None`` or 0 keeps
            ``paper_value``.
    """
    momentum = paper_value
    if total_steps is not None and total_steps > 0:
        momentum = min(paper_value, max(MIN_AUTO_MOMENTUM, 1.0 - RUN_FRACTION / total_steps))
    return round(momentum, 6)


def cosine_momentum(step: int, max_steps: int, start: float, end: float) -> float:
    """Momentum at ``step``: a half cosine from ``start`` at step 0 to ``end`` at the last
    step (``max_steps - 1``), constant after it; ``start == end`` gives a constant.
    This is BYOL's ``1 - (1 - start) * (cos(pi * k / K) + 1) / 2`` for ``end = 1``."""
    from lightly.utils.scheduler import cosine_schedule  # type: ignore[import-untyped]

    return float(cosine_schedule(min(step, max_steps), max_steps, start, end))


@torch.no_grad()
def update_ema(pairs: Iterable[tuple[nn.Module, nn.Module]], momentum: float) -> None:
    """Move each EMA module toward its trained module: ``ema = m * ema + (1 - m) *
    trained``, parameter by parameter (buffers such as batch-norm statistics are the EMA
    network's own)."""
    from lightly.models.utils import update_momentum

    for trained, ema in pairs:
        update_momentum(trained, ema, momentum)


def forward_views(model: nn.Module, head: nn.Module, views: list[Tensor]) -> list[Tensor]:
    """``head(model(view))`` of each view, in order; consecutive views of equal shape go
    through as one batch (one forward pass, shared batch-norm statistics), as the papers
    do with their two (global) views."""
    groups: list[list[Tensor]] = []
    for view in views:
        if groups and groups[-1][0].shape == view.shape:
            groups[-1].append(view)
        else:
            groups.append([view])
    out: list[Tensor] = []
    for group in groups:
        out.extend(head(model(torch.cat(group))).chunk(len(group)))
    return out
