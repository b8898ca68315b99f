"""Wrappers for torchvision classification models (random weights)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["FAMILIES", "TorchvisionWrapper", "create_torchvision_wrapper", "torchvision_names"]


class TorchvisionWrapper(nn.Module):
    """A torchvision classifier split into a feature extractor and global average pooling.

    ``get_model()`` returns the full torchvision model, so the exported ``state_dict`` loads
    into ``torchvision.models.<name>()`` with ``strict=True``.
    """

    def __init__(self, model: nn.Module, features: nn.Module, dim: int) -> None:
        super().__init__()
        self._model = model
        self._features = features
        self._dim = dim
        self._pool = nn.AdaptiveAvgPool2d(1)

    def get_model(self) -> nn.Module:
        return self._model

    def forward_features(self, x: Tensor) -> dict[str, Tensor]:
        return {"features": self._features(x)}

    def forward_pool(self, x: dict[str, Tensor]) -> dict[str, Tensor]:
        return {"pooled_features": self._pool(x["features"])}

    def feature_dim(self) -> int:
        return self._dim


def _resnet_like(m: nn.Module) -> tuple[nn.Module, int]:  # ResNet, Wide ResNet, ResNeXt
    return nn.Sequential(*list(m.children())[:-2]), m.fc.in_features  # type: ignore[union-attr]


def _features_attr(m: nn.Module) -> tuple[nn.Module, int]:  # ConvNeXt, EfficientNet, MobileNetV3
    features = m.features  # type: ignore[union-attr]
    with torch.no_grad():
        dim = features(torch.zeros(1, 3, 64, 64)).shape[1]
    return features, int(dim)


def _shufflenet(m: nn.Module) -> tuple[nn.Module, int]:
    parts = ("conv1", "maxpool", "stage2", "stage3", "stage4", "conv5")
    return nn.Sequential(*(getattr(m, p) for p in parts)), m.fc.in_features  # type: ignore[union-attr]


def _regnet(m: nn.Module) -> tuple[nn.Module, int]:
    return nn.Sequential(m.stem, m.trunk_output), m.fc.in_features  # type: ignore[union-attr]


# name prefix -> how to split the model
FAMILIES: dict[str, Callable[[nn.Module], tuple[nn.Module, int]]] = {
    "resnet": _resnet_like,
    "wide_resnet": _resnet_like,
    "resnext": _resnet_like,
    "convnext": _features_attr,
    "efficientnet": _features_attr,
    "mobilenet_v3": _features_attr,
    "regnet": _regnet,
    "shufflenet_v2": _shufflenet,
}


def _family(name: str) -> str | None:
    # Longest prefix first so "wide_resnet" is not taken for "resnet".
    for prefix in sorted(FAMILIES, key=len, reverse=True):
        if name.startswith(prefix):
            return prefix
    return None


def torchvision_names() -> list[str]:
    """Names of the supported torchvision classification models."""
    import torchvision

    return sorted(
        n for n in torchvision.models.list_models(module=torchvision.models) if _family(n)
    )


def create_torchvision_wrapper(
    name: str, model_args: dict[str, Any] | None = None
) -> TorchvisionWrapper:
    """Create torchvision model ``name`` (random weights unless ``model_args`` names
    ``weights``), wrapped for pretraining; ``model_args`` go to
    ``torchvision.models.get_model``."""
    import typing

    import torchvision

    from lt_train._models._args import accepted_args, build_with_args

    family = _family(name)
    assert family is not None
    builder = torchvision.models.get_model_builder(name)
    model_class = typing.get_type_hints(builder).get("return")
    accepted = accepted_args(builder, model_class) if isinstance(model_class, type) else None
    model = build_with_args(
        f"torchvision/{name}", builder, model_args or {}, accepted, {"weights": None}
    )
    features, dim = FAMILIES[family](model)
    return TorchvisionWrapper(model, features, dim)
