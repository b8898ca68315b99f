"""The teacher of a method that learns from one (``method_args.teacher``, distillation).

``lt_methods`` takes the teacher as a module only; here a string becomes that module, so
the command line and config files can name one:

- a model name (``"torchvision/resnet50"``, ``"timm/..."``, ``"pkg.module:Wrapper"``) with
  ``teacher_weights``, a state dict file of that model (our export or a checkpoint), and
  optional ``teacher_args`` for its constructor;
- the out folder of an earlier run (its export, else its last checkpoint), or that run's
  exported model file or checkpoint file; the run's ``config.json`` (or the checkpoint's
  options) names the model.

A model object (a wrapper, an ``lt_core.EmbeddingModel``, a torchvision or timm model) is
wrapped like ``model=``, with ``teacher_weights`` loaded into it when given. Nothing is
downloaded. :func:`check_teacher` runs in ``plan_run`` (cheap checks: files, names);
:func:`build_teacher` in ``build_method``; :func:`args_record` is what config.json and the
resume check record: the string as given, or the object's class name.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from lt_core import ConfigError, ConfigTypeError, EmbeddingModel, to_dict
from lt_methods import missing_teacher_message
from lt_train._export._source import (
    _load,
    _sub_state,
    build_embedding_model,
    read_source,
)
from lt_train._models import get_model_wrapper
from lt_train._models._known import KNOWN_CLASSES, looks_like_wrapper, wrap_known_model

__all__ = ["args_record", "build_teacher", "check_teacher"]

_EXPORT = Path("exported_models") / "exported_last.pt"
_CHECKPOINT = Path("checkpoints") / "last.ckpt"
_WEIGHT_SUFFIXES = (".pt", ".pth", ".ckpt", ".safetensors")


@dataclass
class _Source:
    """Where the teacher comes from: a model (name or object), its constructor arguments
    and a weights file."""

    model: str | nn.Module
    model_args: dict[str, Any] | None
    weights: Path | None


def _has_teacher(args: Any) -> bool:
    return dataclasses.is_dataclass(args) and any(
        f.name == "teacher" for f in dataclasses.fields(args)
    )


def check_teacher(args: Any) -> None:
    """Check ``method_args.teacher`` (and its files) of a method that has one; nothing is
    built or loaded. Methods without a ``teacher`` option pass."""
    if _has_teacher(args):
        _locate(args)


def build_teacher(args: Any) -> Any:
    """``args`` with ``teacher`` as an :class:`lt_core.EmbeddingModel` with its weights
    (unchanged for methods without a ``teacher`` option)."""
    if not _has_teacher(args):
        return args
    source = _locate(args)
    teacher = _model(source.model, source.model_args)
    if source.weights is not None:
        teacher = _load_weights(teacher, source.weights, source.model)
    return dataclasses.replace(args, teacher=teacher)


def args_record(args: Any) -> Any:
    """``to_dict(args)`` with a teacher object given as its class name (JSON, and the
    same from run to run)."""
    record = to_dict(args)
    teacher = getattr(args, "teacher", None) if _has_teacher(args) else None
    if isinstance(teacher, nn.Module):
        inner = teacher.wrapper if isinstance(teacher, EmbeddingModel) else teacher
        name = type(inner).__qualname__
        record["teacher"] = f"EmbeddingModel({name})" if inner is not teacher else name
    return record


def _locate(args: Any) -> _Source:
    teacher, weights = args.teacher, args.teacher_weights
    weights_path = Path(weights).expanduser() if weights is not None else None
    if weights_path is not None and not weights_path.is_file():
        raise ConfigError(
            f"method_args.teacher_weights='{weights}' is not a file. Fix: pass the teacher's "
            "state dict file, e.g. '<its run>/exported_models/exported_last.pt'."
        )
    if teacher is None:
        raise ConfigError(missing_teacher_message())
    if isinstance(teacher, nn.Module):
        return _Source(teacher, None, weights_path)
    if not isinstance(teacher, str):
        raise ConfigTypeError(
            f"method_args.teacher must be a model object, a model name or a path, got "
            f"{type(teacher).__name__}."
        )
    path = Path(teacher).expanduser()
    if path.exists():
        if weights is not None:
            raise ConfigError(
                f"method_args.teacher='{teacher}' is a run's folder or file, which holds the "
                "teacher's weights; teacher_weights is for a teacher given by model name. "
                "Fix: drop teacher_weights."
            )
        return _from_run(teacher, path)
    if path.suffix in _WEIGHT_SUFFIXES or ("/" not in teacher and ":" not in teacher):
        raise ConfigError(
            f"method_args.teacher='{teacher}' is neither an existing file or folder nor a "
            "model name. Fix: pass the out folder of an earlier run (or its "
            "exported_models/exported_last.pt), or a model name such as "
            "'torchvision/resnet50' with teacher_weights."
        )
    if weights_path is None:
        raise ConfigError(
            f"method_args.teacher='{teacher}' names a model, whose weights are random: it "
            "would teach nothing, and nothing is downloaded. Fix: add "
            "method_args.teacher_weights=<its state dict file>, e.g. "
            "'big/exported_models/exported_last.pt' of an earlier run, or pass that run's "
            "out folder as teacher."
        )
    return _Source(teacher, args.teacher_args, weights_path)


def _from_run(teacher: str, path: Path) -> _Source:
    """A run's folder, export or checkpoint: the weights file and the run's model."""
    if path.is_dir():
        config = path / "config.json"
        if not config.is_file():
            raise ConfigError(
                f"method_args.teacher='{teacher}' is a folder without config.json, so not the "
                "out folder of a lightly-train run. Fix: pass the out folder of an earlier "
                "run, or a model name with teacher_weights=<its state dict file>."
            )
        weights = next((path / p for p in (_EXPORT, _CHECKPOINT) if (path / p).is_file()), None)
        if weights is None:
            raise ConfigError(
                f"The run in '{teacher}' has neither {_EXPORT} nor {_CHECKPOINT}. Fix: let it "
                "finish (or resume it), or pass a model name with teacher_weights."
            )
        return _Source(*_run_model(_read_json(config), teacher, weights), weights)
    source = read_source(path)
    if source.run is not None:  # a checkpoint names its model
        return _Source(*_run_model(source.run, teacher, path), path)
    for config in (path.parent.parent / "config.json", path.parent / "config.json"):
        if config.is_file():
            return _Source(*_run_model(_read_json(config), teacher, path), path)
    raise ConfigError(
        f"method_args.teacher='{teacher}' holds a model's weights only, and no config.json "
        "of its run is beside it to name the model. Fix: pass teacher=<model name> (or the "
        f"wrapper object) with teacher_weights='{teacher}'."
    )


def _read_json(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ConfigError(f"Cannot read the teacher's run options '{path}': {e}") from e
    if not isinstance(value, dict):
        raise ConfigError(f"'{path}' is not a run's config.json (not a JSON object).")
    return value


def _run_model(run: dict[str, Any], teacher: str, weights: Path) -> tuple[str, Any]:
    name = run.get("model")
    if not isinstance(name, str) or ("/" not in name and ":" not in name):
        raise ConfigError(
            f"The run of method_args.teacher='{teacher}' trained a model wrapper object "
            f"({name}), which cannot be rebuilt from its files. Fix (Python API): pass the "
            f"wrapper object, constructed as for that run, as method_args.teacher with "
            f"teacher_weights='{weights}'."
        )
    return name, run.get("model_args")


def _model(model: str | nn.Module, model_args: dict[str, Any] | None) -> EmbeddingModel:
    if isinstance(model, EmbeddingModel):
        return model
    if isinstance(model, str):
        wrapper = get_model_wrapper(model, model_args)
    elif looks_like_wrapper(model):
        wrapper = model
    else:
        known = wrap_known_model(model)
        if known is None:
            raise ConfigTypeError(
                f"method_args.teacher is a {type(model).__module__}.{type(model).__qualname__}"
                ", which is neither a model wrapper (get_model, forward_features, "
                f"forward_pool, feature_dim) nor a model of a known class "
                f"({', '.join(KNOWN_CLASSES)}). Fix: wrap it (docs/custom_models.md)."
            )
        wrapper = known
    return EmbeddingModel(wrapper, embed_dim=None, pool=True)  # type: ignore[arg-type]


def _load_weights(teacher: EmbeddingModel, path: Path, given: Any) -> EmbeddingModel:
    """Load an export into the teacher's model, or a checkpoint's embedding model (with
    its run's embedding layer) around the teacher's wrapper."""
    source = read_source(path)
    shown = given if isinstance(given, str) else type(given).__qualname__
    if source.is_checkpoint:
        if isinstance(given, EmbeddingModel):
            _load(teacher, _sub_state(source.weights, "model."), source, shown)
            return teacher
        return build_embedding_model(source, teacher.wrapper)
    _load(teacher.wrapper.get_model(), source.weights, source, shown)  # type: ignore[operator]
    return teacher
