"""Resolve ``<library>/<name>`` model strings."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from typing import Any

from torch import nn

from lt_core import ConfigError, closest_match_hint
from lt_train._models._args import accepted_args, build_with_args
from lt_train._models._timm import create_timm_wrapper, timm_names
from lt_train._models._torchvision import create_torchvision_wrapper, torchvision_names

LIBRARIES = ("torchvision", "timm")


def list_models() -> list[str]:
    """All model names accepted as ``model=``: ``torchvision/<name>`` for the ResNet, Wide
    ResNet, ResNeXt, ConvNeXt, EfficientNet, MobileNet-V3, RegNet and ShuffleNet-V2 families, and
    ``timm/<name>`` when timm is installed. Weights are random."""
    names = [f"torchvision/{n}" for n in torchvision_names()]
    if importlib.util.find_spec("timm") is not None:
        names += [f"timm/{n}" for n in timm_names()]
    return names


def get_model_wrapper(name: str, model_args: dict[str, Any] | None = None) -> nn.Module:
    """Create the wrapper of model ``name``, random weights unless ``model_args`` say so.

    ``name`` is ``"<library>/<name>"`` (``"torchvision/resnet18"``, ``"timm/resnet50"``),
    whose constructor gets ``model_args`` (e.g. ``{"num_classes": 10}``), or the import
    path of your own wrapper class, ``"my_package.my_module:MyWrapper"``, built with
    ``MyWrapper(**model_args)``.
    """
    if ":" in name and "/" not in name:
        return _import_wrapper(name, model_args or {})
    library, _, model_name = name.partition("/")
    if library not in LIBRARIES or not model_name:
        raise ConfigError(
            f"Unknown model '{name}'. Model names have the form '<library>/<name>' with library "
            f"one of {', '.join(LIBRARIES)}, e.g. 'torchvision/resnet18'. "
            "lightly_train.list_models() lists them all; or pass your own model wrapper."
        )
    if library == "timm":
        return create_timm_wrapper(model_name, model_args)
    names = torchvision_names()
    if model_name not in names:
        raise ConfigError(
            f"Unknown torchvision model '{model_name}'.{closest_match_hint(model_name, names)} "
            f"Supported: {', '.join(names)}."
        )
    return create_torchvision_wrapper(model_name, model_args)


def _import_from_cwd(module_name: str) -> Any:
    """Import ``module_name``, also from the current folder (as ``python -m`` would; the
    ``lightly-train`` command's own path does not include it)."""
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        cwd = os.getcwd()
        if cwd in sys.path or e.name != module_name.split(".")[0]:
            raise
        sys.path.insert(0, cwd)
        try:
            return importlib.import_module(module_name)
        finally:
            sys.path.remove(cwd)


def _import_wrapper(path: str, model_args: dict[str, Any]) -> nn.Module:
    """Build ``module:Class(**model_args)``, e.g. ``"my_package.models:MyWrapper"``."""
    module_name, _, attr = path.partition(":")
    try:
        module = _import_from_cwd(module_name)
    except ImportError as e:
        raise ConfigError(
            f"Cannot import '{module_name}' of model='{path}': {e}. Fix: install the package "
            "or run from the folder that holds the module (the current folder is on the path "
            "of the lightly-train command)."
        ) from e
    target = module
    for part in attr.split("."):
        if not hasattr(target, part):
            names = [n for n in dir(module) if not n.startswith("_")]
            raise ConfigError(
                f"Module '{module_name}' has no '{attr}' (model='{path}')."
                f"{closest_match_hint(part, names)}"
            )
        target = getattr(target, part)
    if not callable(target):
        raise ConfigError(f"model='{path}' names {type(target).__name__}, not a class.")
    wrapper = build_with_args(path, target, model_args, accepted_args(target))
    if not isinstance(wrapper, nn.Module):
        raise ConfigError(
            f"model='{path}' built a {type(wrapper).__name__}, not a torch.nn.Module wrapper "
            "(see docs/custom_models.md)."
        )
    return wrapper
