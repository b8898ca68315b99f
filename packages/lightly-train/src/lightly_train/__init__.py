"""lightly-train: self-supervised pretraining for any PyTorch vision model.

``train`` pretrains, ``list_models`` and ``list_methods`` list what ``model=`` and
``method=`` accept. The command line is ``lightly-train`` (``lightly-train help``).
"""

from lightly_train._embed import embed
from lightly_train._export import export
from lightly_train._make_shards import make_shards
from lightly_train._train import pretrain, train
from lt_core import LossNotFiniteError, ModelWrapper, TrainingInterrupted, validate_wrapper
from lt_methods import list_methods
from lt_train import list_models

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
    "train",
    "validate_wrapper",
]
