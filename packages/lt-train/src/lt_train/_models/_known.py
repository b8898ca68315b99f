"""Plain model objects of known libraries (``model=torchvision.models.resnet18()``, a timm
model) wrapped like the named models, so the peer's ``model=resnet18()`` works."""

from __future__ import annotations

import sys

from torch import nn

from lt_core import WRAPPER_METHODS

__all__ = ["KNOWN_CLASSES", "looks_like_wrapper", "wrap_known_model"]

#: torchvision class name -> the family whose split it uses (see _torchvision.FAMILIES).
_TORCHVISION_CLASSES = {
    "ResNet": "resnet",
    "ConvNeXt": "convnext",
    "EfficientNet": "efficientnet",
    "MobileNetV3": "mobilenet_v3",
    "RegNet": "regnet",
    "ShuffleNetV2": "shufflenet_v2",
}
KNOWN_CLASSES = (
    *(f"torchvision.models.{name}" for name in _TORCHVISION_CLASSES),
    "any timm model (timm.create_model(...))",
)


def looks_like_wrapper(model: nn.Module) -> bool:
    """Whether ``model`` has any wrapper method: a wrapper (validation names what it
    lacks), not a plain model."""
    return any(
        callable(getattr(model, m, None)) for m in WRAPPER_METHODS if m != "forward_features"
    )


def wrap_known_model(model: nn.Module) -> nn.Module | None:
    """The wrapper of ``model`` when it is a model of a known class (its ``get_model()``
    returns ``model`` itself, so the export holds its weights); ``None`` otherwise."""
    module = type(model).__module__
    if module.startswith("torchvision.models"):
        from lt_train._models._torchvision import FAMILIES, TorchvisionWrapper

        for cls in type(model).__mro__:
            family = _TORCHVISION_CLASSES.get(cls.__name__)
            if family is not None and cls.__module__.startswith("torchvision.models"):
                features, dim = FAMILIES[family](model)
                return TorchvisionWrapper(model, features, dim)
        return None
    timm = sys.modules.get("timm")
    if (
        module.startswith("timm.")
        and timm is not None
        and callable(getattr(model, "forward_features", None))
        and isinstance(getattr(model, "num_features", None), int)
    ):
        from lt_train._models._timm import TimmWrapper

        return TimmWrapper(model)
    return None
