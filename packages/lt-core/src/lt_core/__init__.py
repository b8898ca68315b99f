"""lt-core: the model wrapper protocol, its validation and the embedding layer.

Depends on torch and the Python standard library only, so model repositories can depend
on it alone.
"""

from lt_core._config import (
    check_callable,
    closest_match_hint,
    describe_callable,
    from_dict,
    to_dict,
)
from lt_core._embedding import EmbeddingLayer, EmbeddingModel
from lt_core._errors import (
    ConfigError,
    ConfigTypeError,
    DataError,
    LightlyTrainError,
    LossNotFiniteError,
    TrainingInterrupted,
    WrapperError,
    WrapperTypeError,
    WrapperValueError,
)
from lt_core._protocol import (
    WRAPPER_METHODS,
    ForwardFeaturesOutput,
    ForwardPoolOutput,
    ModelWrapper,
)
from lt_core._validate import WrapperInfo, check_wrapper_static, validate_wrapper
from lt_core._views import IMAGENET_MEAN, IMAGENET_STD, ColorJitter, ViewConfig

__version__ = "0.1.0"

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "WRAPPER_METHODS",
    "ColorJitter",
    "ConfigError",
    "ConfigTypeError",
    "DataError",
    "EmbeddingLayer",
    "EmbeddingModel",
    "ForwardFeaturesOutput",
    "ForwardPoolOutput",
    "LightlyTrainError",
    "LossNotFiniteError",
    "ModelWrapper",
    "TrainingInterrupted",
    "ViewConfig",
    "WrapperError",
    "WrapperInfo",
    "WrapperTypeError",
    "WrapperValueError",
    "check_callable",
    "check_wrapper_static",
    "closest_match_hint",
    "describe_callable",
    "from_dict",
    "to_dict",
    "validate_wrapper",
]
