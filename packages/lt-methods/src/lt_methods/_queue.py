"""lightly's memory bank, kept in the ``state_dict`` for an exact resume."""

from __future__ import annotations

from typing import Any

from torch import nn

__all__ = ["keep_in_state_dict", "memory_bank"]


def keep_in_state_dict(bank: nn.Module) -> nn.Module:
    """Make ``bank`` (a ``lightly`` ``MemoryBankModule``) save its keys and pointer in the
    ``state_dict``: lightly registers them as non-persistent buffers, so a resumed run
    would start from a fresh random queue."""
    for name in ("bank", "bank_ptr"):
        bank.register_buffer(name, bank.get_buffer(name), persistent=True)
    return bank


def memory_bank(size: tuple[int, int], gather_distributed: bool = False) -> Any:
    """A ``MemoryBankModule`` of ``size`` ``(K, C)`` (rows are keys) whose queue is in the
    ``state_dict`` (:func:`keep_in_state_dict`)."""
    from lightly.models.modules.memory_bank import (  # type: ignore[import-untyped]
        MemoryBankModule,
    )

    bank = MemoryBankModule(
        size=size, gather_distributed=gather_distributed, feature_dim_first=False
    )
    return keep_in_state_dict(bank)
