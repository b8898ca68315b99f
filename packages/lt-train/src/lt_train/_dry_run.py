"""One dry run of the wrapper: protocol validation and the channels-last probe together."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import torch
from torch import nn

from lt_core import WrapperError, validate_wrapper

logger = logging.getLogger(__name__)

__all__ = ["dry_run"]


def dry_run(
    wrapper: nn.Module, sizes: Sequence[tuple[int, int]], channels_last: bool
) -> torch.memory_format:
    """Validate ``wrapper`` at each image size and choose its memory format.

    Channels-last speeds up convolutions on CPUs (oneDNN) and on GPU tensor cores, but
    models that call ``.view`` on an activation can fail in it. With ``channels_last`` and
    a model with convolutions, the wrapper is converted and validated on channels-last
    inputs: if that passes, this one dry run per size was both the validation and the
    probe. If it fails, the wrapper is converted back and validated in the default format,
    which raises the wrapper's real error if it has one.

    Returns:
        The memory format the wrapper is now in and should train in.

    Raises:
        WrapperError: The wrapper does not follow the protocol (see
            :func:`lt_core.validate_wrapper`).
    """
    failed: BaseException | None = None
    if channels_last and any(p.ndim == 4 for p in wrapper.parameters()):
        wrapper.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        try:
            for size in sizes:
                validate_wrapper(wrapper, image_size=size, memory_format=torch.channels_last)
            return torch.channels_last
        except WrapperError as e:
            failed = e.__cause__ or e
            wrapper.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
    for size in sizes:  # a wrapper that fails here too raises its error once, no notice
        validate_wrapper(wrapper, image_size=size)
    if failed is not None:
        logger.info(
            "Model does not run in channels-last memory format (%s); using the default.",
            _short(failed),
        )
    return torch.contiguous_format


def _short(error: BaseException, limit: int = 200) -> str:
    """The first line of ``error``, at most ``limit`` characters."""
    text = f"{type(error).__name__}: {error}".splitlines()[0]
    return text if len(text) <= limit else text[: limit - 3] + "..."
