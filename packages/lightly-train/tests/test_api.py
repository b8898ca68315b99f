from __future__ import annotations

import dataclasses
import inspect
from pathlib import Path

import pytest

import lightly_train
from lt_core import ConfigError
from lt_train import TrainConfig


def test_public_api() -> None:
    assert callable(lightly_train.train)
    assert "simclr" in lightly_train.list_methods() and "dino" in lightly_train.list_methods()
    assert "torchvision/resnet18" in lightly_train.list_models()


def test_train_signature_matches_train_config() -> None:
    """The facade lists every option of TrainConfig once, in its order, with its default."""
    params = {
        name: p
        for name, p in inspect.signature(lightly_train.train).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }
    fields = dataclasses.fields(TrainConfig)
    assert list(params) == [f.name for f in fields]
    for f in fields:
        default = params[f.name].default
        if f.default is not dataclasses.MISSING:
            assert default == f.default, f.name
        elif f.default_factory is not dataclasses.MISSING:
            # Mutable defaults are None in the signature and filled by TrainConfig.
            assert default is None, f.name
        else:
            assert default is inspect.Parameter.empty, f.name
    documented = inspect.getdoc(lightly_train.train) or ""
    for name in params:
        assert f"    {name}:" in documented, f"option {name} is not documented"


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
