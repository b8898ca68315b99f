"""lt-train: the lightning-fabric training loop, checkpoints and export of lightly-train."""

from lt_train._config import OptimArgs, TrainConfig
from lt_train._embed import EmbedConfig, embed
from lt_train._export import export
from lt_train._models import get_model_wrapper, list_models
from lt_train._optim import OPTIMIZERS
from lt_train._report import write_report
from lt_train._stop import LossNotFiniteError, TrainingInterrupted
from lt_train._train import train

__version__ = "0.1.0"

__all__ = [
    "OPTIMIZERS",
    "EmbedConfig",
    "LossNotFiniteError",
    "OptimArgs",
    "TrainConfig",
    "TrainingInterrupted",
    "embed",
    "export",
    "get_model_wrapper",
    "list_models",
    "train",
    "write_report",
]
