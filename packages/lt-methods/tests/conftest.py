"""Shared fixtures: a tiny CNN wrapper, small method options and random views."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from lt_core import EmbeddingModel, from_dict
from lt_methods import Method, get_method

#: Small head sizes per method so the registry-wide tests stay fast. A method that is not
#: listed here is tested with its defaults.
SMALL_ARGS: dict[str, dict[str, Any]] = {
    "simclr": {"hidden_dim": 32, "output_dim": 16},
    "dino": {"hidden_dim": 32, "bottleneck_dim": 16, "output_dim": 64},
    "densecl": {"hidden_dim": 32, "output_dim": 16, "memory_bank_size": 64},
    "byol": {"hidden_dim": 32, "output_dim": 16, "prediction_hidden_dim": 32},
    "mocov2": {"hidden_dim": 32, "output_dim": 16, "queue_length": 64},
    "mocov3": {"hidden_dim": 32, "output_dim": 16},
    "vicreg": {"hidden_dim": 32, "output_dim": 32},
    "barlowtwins": {"hidden_dim": 32, "output_dim": 32},
    "swav": {"hidden_dim": 32, "output_dim": 16, "num_prototypes": 20, "queue_length": 16},
}
IMAGE_SIZE = (32, 32)
BATCH_SIZE = 8


class TinyWrapper(nn.Module):
    """Two convolutions with batch norm; implements the four wrapper methods. Its map is
    8x8 for the 32x32 views (stride 4), so dense methods have locations to match."""

    def __init__(self, dim: int = 16) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.Conv2d(8, dim, 3, stride=2, padding=1),
            nn.BatchNorm2d(dim),
            nn.ReLU(),
        )
        self.dim = dim

    def get_model(self) -> nn.Module:
        return self.net

    def forward_features(self, x: Tensor) -> dict[str, Tensor]:
        return {"features": self.net(x)}

    def forward_pool(self, x: dict[str, Tensor]) -> dict[str, Tensor]:
        return {"pooled_features": x["features"].mean(dim=(2, 3), keepdim=True)}

    def feature_dim(self) -> int:
        return self.dim


#: A frozen teacher with another width (24) than the student (16), shared by the tests.
SMALL_ARGS["distillation"] = {
    "teacher": EmbeddingModel(TinyWrapper(dim=24)),
    "queue_size": 16,
    "projection_hidden_dim": 16,
}


def make_model(embed_dim: int | None = None) -> EmbeddingModel:
    return EmbeddingModel(TinyWrapper(), embed_dim=embed_dim)


def make_method(name: str, **overrides: Any) -> Method:
    """Build method ``name`` on a tiny model, with small heads and 32x32 views."""
    cls = get_method(name)
    args = from_dict(cls.Args, {**SMALL_ARGS.get(name, {}), **overrides}, "method_args")
    transform_args = from_dict(
        cls.TransformArgs, {"image_size": list(IMAGE_SIZE)}, "transform_args"
    )
    return cls(make_model(), args, transform_args)


def make_views(method: Method, batch_size: int = BATCH_SIZE) -> list[Tensor]:
    """Random normalized views with the shapes of the method's recipe."""
    gen = torch.Generator().manual_seed(0)
    return [
        torch.randn(batch_size, 3, *cfg.size, generator=gen)
        for cfg in type(method).view_recipe(method.transform_args)
        for _ in range(cfg.num_views)
    ]


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture
def method_factory() -> Callable[..., Method]:
    return make_method


@pytest.fixture
def views_factory() -> Callable[..., list[Tensor]]:
    return make_views


@pytest.fixture
def model_factory() -> Callable[..., EmbeddingModel]:
    return make_model
