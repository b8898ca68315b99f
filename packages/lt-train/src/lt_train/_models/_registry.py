"""Resolve ``<library>/<name>`` model strings."""

from __future__ import annotations

import importlib.util

from torch import nn

from lt_core import ConfigError, closest_match_hint
from lt_train._models._timm import create_timm_wrapper, timm_names
from lt_train._models._torchvision import create_torchvision_wrapper, torchvision_names

LIBRARIES = ("torchvision", "timm")


def list_models() -> list[str]:
    """All model names accepted as ``model=``: ``torchvision/<name>`` for the ResNet, Wide
    ResNet, ResNeXt, ConvNeXt, EfficientNet, MobileNet-V3 and RegNet families, and
    ``timm/<name>`` when timm is installed. Weights are random."""
    names = [f"torchvision/{n}" for n in torchvision_names()]
    if importlib.util.find_spec("timm") is not None:
        names += [f"timm/{n}" for n in timm_names()]
    return names


def get_model_wrapper(name: str) -> nn.Module:
    """Create the wrapper of model ``name`` (e.g. ``"torchvision/resnet18"``), random weights."""
    library, _, model_name = name.partition("/")
    if library not in LIBRARIES or not model_name:
        raise ConfigError(
            f"Unknown model '{name}'. Model names have the form '<library>/<name>' with library "
            f"one of {', '.join(LIBRARIES)}, e.g. 'torchvision/resnet18'. "
            "lightly_train.list_models() lists them all; or pass your own model wrapper."
        )
    if library == "timm":
        return create_timm_wrapper(model_name)
    names = torchvision_names()
    if model_name not in names:
        raise ConfigError(
            f"Unknown torchvision model '{model_name}'.{closest_match_hint(model_name, names)} "
            f"Supported: {', '.join(names)}."
        )
    return create_torchvision_wrapper(model_name)
