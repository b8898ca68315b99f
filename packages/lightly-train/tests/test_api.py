from __future__ import annotations

import inspect
from pathlib import Path

import pytest

import lightly_train
from lt_core import ConfigError


def test_public_api() -> None:
    assert callable(lightly_train.train)
    assert "simclr" in lightly_train.list_methods() and "dino" in lightly_train.list_methods()
    assert "torchvision/resnet18" in lightly_train.list_models()
    params = inspect.signature(lightly_train.train).parameters
    for name in (
        "out",
        "data",
        "model",
        "method",
        "method_args",
        "embed_dim",
        "epochs",
        "batch_size",
        "num_workers",
        "accelerator",
        "devices",
        "precision",
        "seed",
        "optim",
        "optim_args",
        "transform_args",
        "loggers",
        "overwrite",
    ):
        assert name in params, name


def test_unknown_keyword_gets_closest_match(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"Unknown option 'batchsize'. Did you mean 'batch_size'\?"
    ):
        lightly_train.train(
            out=tmp_path / "o", data=tmp_path, model="torchvision/resnet18", batchsize=3
        )
    assert not (tmp_path / "o").exists()


def test_wrong_type_is_named(tmp_path: Path) -> None:
    with pytest.raises(TypeError, match="batch_size must be of type int"):
        lightly_train.train(
            out=tmp_path / "o", data=tmp_path, model="torchvision/resnet18", batch_size="64"
        )  # type: ignore[arg-type]
