from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path
from typing import Any

import pytest

import lightly_train
from lightly_train._peer import TOP_LEVEL
from lt_core import ConfigError
from lt_train import TrainConfig


def test_public_api() -> None:
    assert callable(lightly_train.train)
    assert "simclr" in lightly_train.list_methods() and "dino" in lightly_train.list_methods()
    assert "torchvision/resnet18" in lightly_train.list_models()


FACADE = "lightly_train.train (packages/lightly-train/src/lightly_train/_train.py)"
DOCS = Path(__file__).resolve().parents[3] / "docs"


def _train_options() -> dict[str, inspect.Parameter]:
    return {
        name: p
        for name, p in inspect.signature(lightly_train.train).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }


def test_train_signature_matches_train_config() -> None:
    """The facade lists every option of TrainConfig once, in its order, with its default,
    then the peer's top-level names that lightly_train._peer translates."""
    params = _train_options()
    fields = dataclasses.fields(TrainConfig)
    names = [f.name for f in fields]
    for name in names:
        assert name in params, f"TrainConfig.{name} is missing from the signature of {FACADE}"
    assert list(params) == [*names, *TOP_LEVEL], (
        f"the options of {FACADE} must be TrainConfig's fields in their order, then "
        f"lightly_train._peer.TOP_LEVEL {TOP_LEVEL}"
    )
    for f in fields:
        default = params[f.name].default
        if f.default is not dataclasses.MISSING:
            assert default == f.default, f"{f.name}: the default of {FACADE} differs"
        elif f.default_factory is not dataclasses.MISSING:
            # Mutable defaults are None in the signature and filled by TrainConfig.
            assert default is None, f.name
        else:
            assert default is inspect.Parameter.empty, f.name
    for name in TOP_LEVEL:
        assert params[name].default is None, name
    documented = inspect.getdoc(lightly_train.train) or ""
    for name in params:
        assert f"    {name}:" in documented, f"option {name} is not documented in {FACADE}"


@pytest.mark.skipif(not DOCS.is_dir(), reason="needs the repository's docs/")
def test_training_page_has_a_row_per_option() -> None:
    text = (DOCS / "training.md").read_text()
    options = text.split("\n## Options\n")[1].split("\n## ")[0]
    rows = set(re.findall(r"^\| `(\w+)` \|", options, re.MULTILINE))
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    assert not fields - rows, f"the Options table of docs/training.md lacks {fields - rows}"
    assert not rows - fields, f"docs/training.md has rows of no TrainConfig field: {rows - fields}"


def test_train_forwards_options_to_trainconfig(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The facade hands its options to TrainConfig generically (no per-option code)."""
    from lightly_train import _train

    seen: list[TrainConfig] = []
    monkeypatch.setattr(_train, "_train", seen.append)
    values: dict[str, Any] = {
        "epochs": 3,
        "batch_size": 4,
        "seed": 7,
        "compile": True,
        "decode": "cpu",
    }
    lightly_train.train(out=tmp_path / "o", data=tmp_path, model="torchvision/resnet18", **values)
    (config,) = seen
    assert {k: getattr(config, k) for k in values} == values
    assert config.out == str(tmp_path / "o")


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
