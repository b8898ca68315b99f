"""lightly-train: self-supervised pretraining for any PyTorch vision model.

``train`` pretrains, ``report`` writes a run's report page, ``list_models`` and
``list_methods`` list what ``model=`` and ``method=`` accept. The command line is
``lightly-train`` (``lightly-train help``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from lightly_train._embed import embed
    from lightly_train._export import export
    from lightly_train._make_shards import make_shards
    from lightly_train._report import report
    from lightly_train._train import pretrain, train
    from lt_core import LossNotFiniteError, ModelWrapper, TrainingInterrupted, validate_wrapper
    from lt_methods import list_methods
    from lt_train import list_models

# The names are imported on first use, so the ``lightly-train`` command checks its options
# before torch is imported (lightly_train._early).
_WHERE = {
    "embed": "lightly_train._embed",
    "export": "lightly_train._export",
    "make_shards": "lightly_train._make_shards",
    "pretrain": "lightly_train._train",
    "report": "lightly_train._report",
    "train": "lightly_train._train",
    "LossNotFiniteError": "lt_core",
    "ModelWrapper": "lt_core",
    "TrainingInterrupted": "lt_core",
    "validate_wrapper": "lt_core",
    "list_methods": "lt_methods",
    "list_models": "lt_train",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'lightly_train' has no attribute '{name}'")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


__version__ = "0.1.0"

__all__ = [
    "LossNotFiniteError",
    "ModelWrapper",
    "TrainingInterrupted",
    "embed",
    "export",
    "list_methods",
    "list_models",
    "make_shards",
    "pretrain",
    "report",
    "train",
    "validate_wrapper",
]
