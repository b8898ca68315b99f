"""Distillation's teacher from every source (object, name + weights, an earlier run's
folder, export or checkpoint), its errors, and an exact resume. Tiny CPU runs: a
torchvision ResNet-18 teacher trained 1 epoch with SimCLR on 24 images of 16 px, and the
8-channel ``Tiny`` student."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
import torchvision
from _tiny import Tiny, tiny_config, write_images
from torch import Tensor

from lt_core import ConfigError, EmbeddingModel, TrainingInterrupted, from_dict
from lt_methods import DistillationArgs
from lt_train import train
from lt_train._setup import plan_run
from lt_train._teacher import args_record, build_teacher


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_images(tmp_path_factory.mktemp("images"), 24)


@pytest.fixture(scope="module")
def teacher_run(data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The out folder of a finished SimCLR run of a named model."""
    out = tmp_path_factory.mktemp("teacher") / "out"
    train(tiny_config(out, data, model="torchvision/resnet18", method="simclr", seed=1))
    return out


def _exported(run: Path) -> dict[str, Tensor]:
    return torch.load(run / "exported_models" / "exported_last.pt", weights_only=True)


def _args(**values: Any) -> DistillationArgs:
    return from_dict(DistillationArgs, values, "method_args")


def _teacher_state(args: DistillationArgs) -> dict[str, Tensor]:
    teacher = build_teacher(args).teacher
    assert isinstance(teacher, EmbeddingModel)
    return teacher.wrapper.get_model().state_dict()  # type: ignore[operator,no-any-return]


def _same(a: dict[str, Tensor], b: dict[str, Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_teacher_from_each_source_has_the_runs_weights(teacher_run: Path) -> None:
    export = _exported(teacher_run)
    exported_file = teacher_run / "exported_models" / "exported_last.pt"
    checkpoint = teacher_run / "checkpoints" / "last.ckpt"
    sources = [
        _args(teacher=str(teacher_run)),
        _args(teacher=str(exported_file)),
        _args(teacher=str(checkpoint)),
        _args(teacher="torchvision/resnet18", teacher_weights=str(exported_file)),
        _args(teacher="torchvision/resnet18", teacher_weights=str(checkpoint)),
        _args(teacher=torchvision.models.resnet18(), teacher_weights=exported_file),
    ]
    for args in sources:
        assert _same(_teacher_state(args), export), args.teacher


def test_args_record_is_json_with_the_string_or_class_name(teacher_run: Path) -> None:
    assert args_record(_args(teacher=str(teacher_run)))["teacher"] == str(teacher_run)
    assert args_record(_args(teacher=Tiny()))["teacher"] == "Tiny"
    record = args_record(_args(teacher=EmbeddingModel(Tiny())))
    assert record["teacher"] == "EmbeddingModel(Tiny)"
    json.dumps(record)


def test_distillation_from_an_earlier_run_trains_and_records_it(
    data: Path, teacher_run: Path, tmp_path: Path
) -> None:
    out = tmp_path / "student"
    train(tiny_config(out, data, method="distillation", method_args={"teacher": str(teacher_run)}))
    config = json.loads((out / "config.json").read_text())
    assert config["method_args"]["teacher"] == str(teacher_run)
    assert config["method_args"]["queue_size"] == 16  # auto: half of 24 images, at least 16
    checkpoint = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert not any(k.startswith("teacher.") for k in checkpoint["method"])  # student only
    assert checkpoint["run"]["method_args"]["teacher"] == str(teacher_run)  # resume check


@pytest.mark.parametrize(
    ("method_args", "match"),
    [
        ({}, r"needs a teacher .*'teacher': 'out/dino_resnet50'.*teacher_weights"),
        ({"teacher": "torchvision/resnet18", "teacher_weights": "nope.pt"}, "is not a file"),
        ({"teacher": "resnet_huge"}, "neither an existing file or folder nor a model name"),
        ({"teacher": "torchvision/resnet18"}, "add method_args.teacher_weights"),
        ({"teacher": "missing/exported_last.pt"}, "neither an existing file"),
    ],
)
def test_teacher_errors_before_anything_is_written(
    data: Path, tmp_path: Path, method_args: dict[str, Any], match: str
) -> None:
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match=match):
        plan_run(tiny_config(out, data, method="distillation", method_args=method_args))
    assert not out.exists()


def test_a_folder_without_config_json_and_a_wrapper_run(data: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"without config\.json"):
        build_teacher(_args(teacher=str(tmp_path / "empty")))
    wrapper_run = tmp_path / "wrapper_run"
    train(tiny_config(wrapper_run, data))  # model=Tiny(): an object, no name on disk
    with pytest.raises(ConfigError, match=r"pass the wrapper object.*teacher_weights="):
        build_teacher(_args(teacher=str(wrapper_run)))
    # The fix the message gives works:
    exported = wrapper_run / "exported_models" / "exported_last.pt"
    state = _teacher_state(_args(teacher=Tiny(), teacher_weights=str(exported)))
    assert _same(state, _exported(wrapper_run))


def test_unknown_model_name(data: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="Unknown torchvision model 'resnet_huge'"):
        build_teacher(_args(teacher="torchvision/resnet_huge", teacher_weights=__file__))


class _AtCall(Tiny):
    """Calls ``action()`` in training forward number ``at``."""

    def __init__(self, at: int, action: Callable[[], object] = lambda: None) -> None:
        torch.manual_seed(0)  # the same initial weights in every run
        super().__init__()
        self.at, self.calls, self.action = at, 0, action

    def forward_features(self, x: Tensor) -> dict[str, Tensor]:
        if self.training:
            self.calls += 1
            if self.calls == self.at:
                self.action()
        return super().forward_features(x)


@pytest.mark.slow
def test_resume_matches_an_uninterrupted_run(data: Path, teacher_run: Path, tmp_path: Path) -> None:
    def config(out: Path, model: Tiny, **options: object) -> Any:
        return tiny_config(
            out,
            data,
            model=model,
            epochs=2,
            seed=5,
            log_every_n_steps=1,
            method="distillation",
            method_args={"teacher": str(teacher_run)},
            **options,
        )

    reference = tmp_path / "reference"
    train(config(reference, _AtCall(at=10**9)))
    out = tmp_path / "out"
    ctrl_c = _AtCall(at=4, action=lambda: os.kill(os.getpid(), signal.SIGINT))
    with pytest.raises(TrainingInterrupted):
        train(config(out, ctrl_c))
    stopped = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["step"]
    assert 0 < stopped < 6
    train(config(out, _AtCall(at=10**9), resume_interrupted=True))
    assert _same(_exported(out), _exported(reference))
    loss = [json.loads(line).get("loss") for line in (out / "metrics.jsonl").open()]
    ref = [json.loads(line).get("loss") for line in (reference / "metrics.jsonl").open()]
    assert [v for v in loss if v is not None] == [v for v in ref if v is not None]
