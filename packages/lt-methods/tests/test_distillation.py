"""Distillation: its losses against known values, the modes, the frozen teacher in eval
mode, the queue, the state dict without the teacher, and its option checks."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from conftest import TinyWrapper, make_model

from lt_core import ConfigError, ConfigTypeError, EmbeddingModel
from lt_methods import Distillation, DistillationArgs
from lt_methods._distillation import dense_loss, mix, queue_loss


def _method(mode: str = "both", teacher: Any = None, **args: Any) -> Distillation:
    teacher = teacher if teacher is not None else EmbeddingModel(TinyWrapper(dim=24))
    return Distillation(
        make_model(),
        {"teacher": teacher, "mode": mode, "queue_size": 16, **args},
        {"image_size": [32, 32]},
    )


def test_queue_loss_is_zero_for_the_teachers_embeddings_and_positive_otherwise() -> None:
    t = F.normalize(torch.randn(4, 8), dim=-1)
    keys = torch.cat([t, F.normalize(torch.randn(6, 8), dim=-1)])
    assert queue_loss(t, t, keys, 0.07).item() == pytest.approx(0.0, abs=1e-6)
    assert queue_loss(-t, t, keys, 0.07).item() > 1.0


def test_queue_loss_known_value() -> None:
    # Keys e0, e1; teacher = e0, student = e1, temperature 1: p_t = softmax(1, 0),
    # p_s = softmax(0, 1); KL = (p - q) * log(p / q) summed = tanh(1/2) * 1.
    keys = torch.eye(2)
    value = queue_loss(keys[1:], keys[:1], keys, 1.0).item()
    assert value == pytest.approx(math.tanh(0.5), rel=1e-5)


def test_dense_loss_known_values_and_resizing() -> None:
    t = torch.randn(2, 5, 4, 4)
    assert dense_loss(t, t).item() == pytest.approx(0.0, abs=1e-6)
    assert dense_loss(-t, t).item() == pytest.approx(4.0, rel=1e-5)  # |a + a|^2 = 4
    a = torch.zeros(1, 2, 3, 3)
    a[:, 0] = 1.0
    b = torch.zeros(1, 2, 3, 3)
    b[:, 1] = 1.0
    assert dense_loss(a, b).item() == pytest.approx(2.0)  # orthogonal: 2 - 2 cos = 2
    # A student map on another grid is resized to the teacher's: constant maps stay equal.
    assert dense_loss(torch.ones(1, 2, 2, 2), torch.ones(1, 2, 7, 7)).item() == pytest.approx(0.0)


@pytest.mark.parametrize("mode", ["pooled", "dense", "both"])
def test_modes_train_the_student_only(mode: str) -> None:
    method = _method(mode)
    method.train()
    assert not method.teacher.training and method.model.training
    teacher_before = {k: v.clone() for k, v in method.teacher.state_dict().items()}
    views = [torch.randn(8, 3, 32, 32)]
    out = method(views, step=0, max_steps=1, steps_per_epoch=1)
    assert set(out) == ({"loss", "loss_pooled", "loss_dense"} if mode == "both" else {"loss"})
    out["loss"].backward()
    assert all(p.grad is None and not p.requires_grad for p in method.teacher.parameters())
    assert all(p.grad is not None for p in method.model.parameters())
    groups = [p for g in method.param_groups() for p in g["params"]]
    assert not {id(p) for p in method.teacher.parameters()} & {id(p) for p in groups}
    # Teacher BN statistics do not move (eval mode), so a rebuilt teacher is the same.
    for k, v in method.teacher.state_dict().items():
        assert torch.equal(v, teacher_before[k]), k
    assert hasattr(method, "queue") == (mode != "dense")
    assert hasattr(method, "dense_head") == (mode != "pooled")


def test_heads_project_to_the_teachers_width() -> None:
    method = _method("both")
    assert method.model.embed_dim == 16 and method.teacher.embed_dim == 24
    assert method.pooled_head(torch.randn(3, 16)).shape == (3, 24)
    assert method.queue.bank.shape == (16, 24)
    mlp = _method("pooled", n_projection_layers=3, projection_hidden_dim=32)
    assert mlp.pooled_head(torch.randn(3, 16)).shape == (3, 24)
    assert sum(isinstance(m, torch.nn.Linear) for m in mlp.pooled_head.modules()) == 3


def test_queue_holds_the_latest_teacher_embeddings_and_is_checkpointed() -> None:
    method = _method("pooled", mixup=False)
    x = torch.randn(8, 3, 32, 32)
    method(x.unsqueeze(0).unbind(0), step=0, max_steps=1, steps_per_epoch=1)
    with torch.no_grad():
        expected = F.normalize(method.teacher(x), dim=-1)
    assert torch.allclose(method.queue.bank[:8], expected, atol=1e-6)
    assert int(method.queue.bank_ptr) == 8
    state = method.state_dict()
    assert "queue.bank" in state and "queue.bank_ptr" in state
    assert not any(k.startswith("teacher.") for k in state)
    other = _method("pooled", teacher=method.teacher, mixup=False)
    other.load_state_dict(state)  # strict: the teacher's keys are not needed
    assert torch.equal(other.queue.bank, method.queue.bank)


def test_mix_is_a_convex_combination_of_the_batch() -> None:
    x = torch.arange(4.0).view(4, 1, 1, 1).expand(4, 3, 2, 2)
    torch.manual_seed(1)
    mixed = mix(x)
    assert mixed.shape == x.shape
    assert mixed.min() >= 0 and mixed.max() <= 3
    assert not torch.equal(mixed, x)


def test_teacher_as_a_wrapper_object() -> None:
    method = _method("pooled", teacher=TinyWrapper(dim=12))
    assert isinstance(method.teacher, EmbeddingModel) and method.teacher.embed_dim == 12


@pytest.mark.parametrize(
    ("teacher", "error", "match"),
    [
        (None, ConfigError, r"needs a teacher.*'teacher': 'out/dino_resnet50'.*teacher_weights"),
        ("out/run", ConfigTypeError, "lt_train resolves"),
        (torch.nn.Linear(2, 2), ConfigTypeError, "neither an lt_core.EmbeddingModel"),
    ],
)
def test_teacher_errors(teacher: Any, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        Distillation(make_model(), {"teacher": teacher})


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({"mode": "spatial"}, "method_args.mode must be one of"),
        ({"queue_size": 0}, "method_args.queue_size"),
        ({"temperature": 0.0}, "method_args.temperature"),
        ({"dense_weight": -1.0}, "method_args.dense_weight"),
        ({"n_projection_layers": 0}, "method_args.n_projection_layers"),
        ({"teacher": 3}, "method_args.teacher must be"),
        ({"teacher_weights": 3}, "method_args.teacher_weights must be"),
    ],
)
def test_arg_validation(values: dict[str, Any], match: str) -> None:
    from lt_core import from_dict

    with pytest.raises((ConfigError, ConfigTypeError), match=match):
        from_dict(DistillationArgs, values, "method_args")


def test_queue_size_auto_follows_the_dataset() -> None:
    args = DistillationArgs()
    assert args.resolve(None).queue_size == 8192
    assert args.resolve(24).queue_size == 16
    assert args.resolve(1000).queue_size == 256
    assert args.resolve(50_000).queue_size == 8192
    assert DistillationArgs(queue_size=64).resolve(1000).queue_size == 64
    with pytest.raises(ConfigError, match="smaller than the dataset"):
        DistillationArgs(queue_size=64).resolve(50)
