from __future__ import annotations

import importlib.util
import sys

import pytest
import torch
import torchvision

from lt_core import ConfigError, validate_wrapper
from lt_train import get_model_wrapper, list_models

# One small member of each supported torchvision family.
FAMILY_EXAMPLES = [
    "resnet18",
    "wide_resnet50_2",
    "resnext50_32x4d",
    "convnext_tiny",
    "efficientnet_b0",
    "efficientnet_v2_s",
    "mobilenet_v3_small",
    "regnet_x_400mf",
]


def test_list_models_covers_the_families() -> None:
    names = list_models()
    for name in FAMILY_EXAMPLES:
        assert f"torchvision/{name}" in names
    assert "torchvision/vit_b_16" not in names  # not a supported family


@pytest.mark.parametrize("name", FAMILY_EXAMPLES)
def test_torchvision_wrapper_validates_and_exports_strict(name: str) -> None:
    wrapper = get_model_wrapper(f"torchvision/{name}")
    info = validate_wrapper(wrapper, image_size=32)
    assert info.pooled_size == (1, 1)
    fresh = torchvision.models.get_model(name, weights=None)
    fresh.load_state_dict(wrapper.get_model().state_dict(), strict=True)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("resnet18", "Model names have the form '<library>/<name>'"),
        ("keras/resnet18", "Model names have the form"),
        ("torchvision/resnet19", "Unknown torchvision model 'resnet19'. Did you mean 'resnet18'"),
        ("torchvision/vit_b_16", "Unknown torchvision model 'vit_b_16'"),
    ],
)
def test_unknown_model_names(name: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        get_model_wrapper(name)


def test_timm_missing_gives_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "timm", None)  # makes `import timm` fail
    with pytest.raises(ImportError, match="pip install timm"):
        get_model_wrapper("timm/resnet18")


@pytest.mark.skipif(importlib.util.find_spec("timm") is None, reason="timm not installed")
@pytest.mark.parametrize("name", ["resnet18", "vit_tiny_patch16_224"])
def test_timm_wrappers(name: str) -> None:
    import timm

    wrapper = get_model_wrapper(f"timm/{name}")
    size = 224 if "vit" in name else 32
    info = validate_wrapper(wrapper, image_size=size)
    assert info.pooled_size == (1, 1)
    timm.create_model(name, pretrained=False).load_state_dict(
        wrapper.get_model().state_dict(), strict=True
    )
    assert torch.isfinite(wrapper.forward_features(torch.randn(2, 3, size, size))["features"]).all()
