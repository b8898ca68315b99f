"""Which optimizer recipe a model gets: CNN or ViT (lt_train._models._family)."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from torch import nn
from torchvision.models import resnet18, vit_b_16

from lt_methods import SimCLR, get_method
from lt_train._models._family import model_family


@pytest.mark.parametrize(
    ("name", "family"),
    [
        ("torchvision/resnet18", "cnn"),
        ("torchvision/convnext_tiny", "cnn"),
        ("torchvision/vit_b_16", "vit"),
        ("torchvision/swin_t", "vit"),
        ("timm/vit_small_patch16_224", "vit"),
        ("timm/deit_tiny_patch16_224", "vit"),
        ("timm/resnet50", "cnn"),
        ("my_models.wrappers:MyResNet", "cnn"),
        ("my_models.wrappers:MyViT", "vit"),
        ("timm/efficientvit_b0", "cnn"),  # no word boundary before "vit"
    ],
)
def test_family_from_a_name(name: str, family: str) -> None:
    assert model_family(name) == family


def test_family_from_a_module() -> None:
    assert model_family(resnet18()) == "cnn"
    assert model_family(vit_b_16()) == "vit"

    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.attn = nn.MultiheadAttention(8, 2)
            self.convs = nn.Sequential(*(nn.Conv2d(8, 8, 3) for _ in range(4)))

    assert model_family(Block()) == "cnn"  # a convolutional model with an attention layer


def test_method_recipe_per_family() -> None:
    assert SimCLR.optimizer_defaults("cnn") == ("sgd", 0.12, 5e-4)
    assert SimCLR.optimizer_defaults("vit") == SimCLR.optimizer_defaults("cnn")  # no ViT recipe

    class WithViT(SimCLR):
        vit_defaults: ClassVar[Any] = ("adamw", 1.5e-4, 0.1)

    assert WithViT.optimizer_defaults("vit") == ("adamw", 1.5e-4, 0.1)
    assert WithViT.optimizer_defaults("cnn") == ("sgd", 0.12, 5e-4)
    assert get_method("dino").optimizer_defaults("vit") == ("adamw", 5e-4, 0.04)
    assert get_method("dino").optimizer_defaults("cnn") == ("lars", 0.3, 1e-6)
