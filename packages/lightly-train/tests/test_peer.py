"""lightly-train 0.18.0's option names: translated to ours or rejected, in _peer only."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path
from typing import Any

import pytest

import lightly_train
from lightly_train._cli import main
from lightly_train._peer import PEER_NAMES, TOP_LEVEL, markdown_table, translate
from lt_core import ConfigError, ConfigTypeError, from_dict
from lt_train import TrainConfig

DOCS = Path(__file__).resolve().parents[3] / "docs"
REQUIRED = {"out": "out", "data": "data", "model": "torchvision/resnet18"}


def _nested(key: str, value: Any, **siblings: Any) -> dict[str, Any]:
    """``{"a": {"b": value, **siblings}}`` for key ``"a.b"``."""
    *path, last = key.split(".")
    result: dict[str, Any] = {last: value, **siblings}
    for part in reversed(path):
        result = {part: result}
    return result


# An accepted value of every peer name; a test checks that each name has one.
ACCEPTED: dict[str, list[Any]] = {
    "resume": [None, False],
    "trainer_args": [None, {}],
    "activation_checkpoint_args": [None, {}, {"enabled": False, "every_n_blocks": 2}],
    "callbacks.model_checkpoint.save_last": [True],
    "callbacks.model_checkpoint.monitor": [None],
    "callbacks.model_checkpoint.mode": ["min", "max"],
    "callbacks.model_checkpoint.auto_insert_metric_name": [True],
    "callbacks.model_checkpoint.save_on_train_epoch_end": [None, True],
    "callbacks.model_checkpoint.enable_version_counter": [False],
    "callbacks.early_stopping.monitor": ["train_loss", "loss", "collapse"],
    "loggers.tensorboard.log_graph": [False],
}

REJECTED: list[tuple[dict[str, Any], str]] = [
    ({"trainer_args": {"max_epochs": 3}}, r"trainer_args \(max_epochs\) are options of Lightning"),
    ({"trainer_args": 3}, r"trainer_args must be of type dict"),
    ({"activation_checkpoint_args": {"enabled": True}}, r"enabled=True is not supported yet"),
    ({"activation_checkpoint_args": {"enable": False}}, r"Did you mean 'enabled'"),
    ({"activation_checkpoint_args": {"every_n_blocks": 0}}, r"every_n_blocks must be an int >= 1"),
    ({"resume": False, "resume_interrupted": True}, "contradict"),
    ({"resume": "yes"}, r"resume must be of type bool"),
    (_nested("callbacks.model_checkpoint.save_last", False), r"save_last must be True"),
    (_nested("callbacks.model_checkpoint.monitor", "val_loss"), r"monitor is not supported"),
    (_nested("callbacks.model_checkpoint.mode", "maximal"), r"mode must be 'min' or 'max'"),
    (
        _nested("callbacks.model_checkpoint.auto_insert_metric_name", True, filename="{step}"),
        r"auto_insert_metric_name=True with a filename is not supported",
    ),
    (
        _nested("callbacks.model_checkpoint.auto_insert_metric_name", False),
        r"auto_insert_metric_name=False needs a filename",
    ),
    (
        _nested("callbacks.model_checkpoint.save_on_train_epoch_end", False),
        r"save_on_train_epoch_end=False is not supported",
    ),
    (
        _nested("callbacks.model_checkpoint.enable_version_counter", True),
        r"enable_version_counter=True is not supported",
    ),
    (_nested("callbacks.early_stopping.monitor", "val_loss"), r"monitor must be 'train_loss'"),
    (_nested("loggers.tensorboard.log_graph", True), r"log_graph=True is not supported"),
]


def test_every_peer_name_has_accepted_examples() -> None:
    assert set(ACCEPTED) == {p.key for p in PEER_NAMES}


@pytest.mark.parametrize(
    ("key", "value"), [(k, v) for k, values in ACCEPTED.items() for v in values]
)
def test_accepted_values_leave_options_trainconfig_takes(key: str, value: Any) -> None:
    options = {**REQUIRED, **_nested(key, value)}
    translated = translate(options)
    group: Any = translated
    for part in key.split(".")[:-1]:
        group = group[part]
    assert key.rsplit(".", 1)[-1] not in group
    config = from_dict(TrainConfig, translated, "")
    assert config.resume_interrupted is False


@pytest.mark.parametrize(("options", "message"), REJECTED)
def test_values_that_cannot_be_honoured_fail_naming_option_and_fix(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises((ConfigError, ConfigTypeError), match=message) as info:
        translate({**REQUIRED, **options})
    text = str(info.value)
    assert "\n" not in text
    assert any(fix in text for fix in ("Fix:", "Pass ", "must be", "Valid keys")), text
    assert next(iter(options)) in text  # names the option


@pytest.mark.parametrize("resume_interrupted", [None, False, True])
def test_resume_becomes_resume_interrupted(resume_interrupted: bool | None) -> None:
    options: dict[str, Any] = {**REQUIRED, "resume": True}
    if resume_interrupted is not None:
        options["resume_interrupted"] = resume_interrupted
    translated = translate(options)
    assert translated["resume_interrupted"] is True and "resume" not in translated
    assert options["resume"] is True  # the caller's dict is unchanged


def test_translate_does_not_change_the_callers_dicts() -> None:
    callbacks = {"model_checkpoint": {"mode": "max", "save_top_k": 2}}
    translated = translate({**REQUIRED, "callbacks": callbacks})
    assert callbacks == {"model_checkpoint": {"mode": "max", "save_top_k": 2}}
    assert translated["callbacks"] == {"model_checkpoint": {"save_top_k": 2}}


def _fields(cls: type, key: str) -> set[str] | None:
    """The field names of the dataclass that ``key``'s parent path reaches from ``cls``."""
    for part in key.split(".")[:-1]:
        hints = typing.get_type_hints(cls)
        if part not in hints:
            return None
        classes = [
            t for t in (hints[part], *typing.get_args(hints[part])) if dataclasses.is_dataclass(t)
        ]
        assert classes, f"{part} of {cls.__name__} is not an option group"
        cls = classes[0]  # type: ignore[assignment]
    return {f.name for f in dataclasses.fields(cls)}


@pytest.mark.parametrize("peer", PEER_NAMES, ids=lambda p: p.key)
def test_core_options_do_not_hold_the_peer_names(peer: Any) -> None:
    """The trainer's option dataclasses have only options that do something: a peer name
    lives in _peer (and its group exists, so translate reaches it)."""
    fields = _fields(TrainConfig, peer.key)
    assert fields is not None, f"{peer.key}: no such option group in TrainConfig"
    assert peer.key.rsplit(".", 1)[-1] not in fields, (
        f"{peer.key} is a field of the trainer's options and a peer name in "
        "lightly_train/_peer.py: keep it in one place"
    )
    if peer.becomes is not None:
        assert peer.becomes in {f.name for f in dataclasses.fields(TrainConfig)}


def test_top_level_peer_names_are_options_of_train() -> None:
    assert TOP_LEVEL == ("resume", "trainer_args", "activation_checkpoint_args")


@pytest.mark.parametrize(("options", "message"), REJECTED[:6])
def test_facade_rejects_before_any_work(
    options: dict[str, Any], message: str, tmp_path: Path
) -> None:
    with pytest.raises((ConfigError, ConfigTypeError), match=message):
        lightly_train.train(
            out=tmp_path / "out", data=tmp_path, model="torchvision/resnet18", **options
        )
    assert not (tmp_path / "out").exists()


def test_cli_goes_through_the_same_translation(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "train",
            f"out={tmp_path / 'out'}",
            f"data={tmp_path}",
            "model=torchvision/resnet18",
            "callbacks.model_checkpoint.enable_version_counter=true",
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "callbacks.model_checkpoint.enable_version_counter=True is not supported" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(not DOCS.is_dir(), reason="needs the repository's docs/")
def test_migrating_page_lists_the_peer_names_as_translate_handles_them() -> None:
    assert markdown_table() in (DOCS / "migrating.md").read_text(), (
        "docs/migrating.md lacks the current table of lightly_train/_peer.py: replace it with "
        "the output of: uv run python -c 'from lightly_train._peer import markdown_table; "
        "print(markdown_table())'"
    )


@pytest.mark.parametrize(
    ("method", "mode"),
    [("distillationv1", "pooled"), ("distillationv2", "dense"), ("distillationv3", "both")],
)
def test_peer_distillation_versions_become_a_mode(method: str, mode: str) -> None:
    assert translate({"method": method}) == {
        "method": "distillation",
        "method_args": {"mode": mode},
    }
    kept = translate({"method": method, "method_args": {"mode": "pooled", "queue_size": 64}})
    assert kept["method_args"] == {"mode": "pooled", "queue_size": 64}
    assert translate({"method": "distillation"}) == {"method": "distillation"}


def test_early_stopping_on_collapse_is_the_peer_monitor_collapse() -> None:
    translated = translate({"callbacks": {"early_stopping": {"monitor": "collapse"}}})
    assert translated == {"callbacks": {"early_stopping": {"stop_on_collapse": True}}}
