"""What export and embed read from a checkpoint: the weights, the run's options, and the
model rebuilt around them.

A source is either a training checkpoint (``checkpoints/last.ckpt``, see
:mod:`lt_train._checkpoint`) or an exported ``state_dict`` of the model
(``exported_models/exported_last.pt``), which holds the model's weights only.
"""

from __future__ import annotations

import copy
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lt_core import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ConfigError,
    ConfigTypeError,
    EmbeddingModel,
    closest_match_hint,
)
from lt_train._checkpoint import CHECKPOINT_FORMAT, load_checkpoint
from lt_train._models import get_model_wrapper

__all__ = [
    "PARTS",
    "Source",
    "build_embedding_model",
    "build_part",
    "check_choice",
    "check_out_file",
    "part_state_dict",
    "read_source",
    "run_image_size",
    "run_normalization",
]

#: What can be exported: the user's model, the embedding model, the wrapper.
PARTS = ("model", "embedding_model", "wrapped_model")

# Key prefixes inside the checkpoint's "method" state dict.
_EMBEDDING_PREFIX = "model."
_WRAPPER_PREFIX = "model.wrapper."


@dataclass
class Source:
    """A loaded checkpoint or exported state dict.

    Attributes:
        path: The file.
        weights: The method's ``state_dict`` (a checkpoint) or the model's (an export).
        run: The run's options (a checkpoint), ``None`` for an exported state dict.
        model_prefix: Key prefix of ``wrapper.get_model()`` inside ``weights``: ``""`` for
            an exported state dict, ``None`` if the training run could not locate it.
    """

    path: Path
    weights: dict[str, Any]
    run: dict[str, Any] | None
    model_prefix: str | None

    @property
    def is_checkpoint(self) -> bool:
        return self.run is not None


def check_choice(name: str, value: object, valid: tuple[str, ...]) -> str:
    """``value`` if it is one of ``valid``, else a ConfigError listing them."""
    if not isinstance(value, str) or value not in valid:
        hint = closest_match_hint(value, valid) if isinstance(value, str) else ""
        raise ConfigError(f"Unknown {name} {value!r}.{hint} Valid values: {', '.join(valid)}.")
    return value


def check_out_file(out: str | os.PathLike[str], overwrite: bool) -> Path:
    """The output file: not a folder, not an existing file unless ``overwrite``; its parent
    folder is created."""
    path = Path(out)
    if path.is_dir():
        raise ConfigError(
            f"out='{out}' is a folder; out must be the path of a file, e.g. '{path / 'model.pt'}'."
        )
    if path.exists() or path.is_symlink():
        if not path.is_file():
            raise ConfigError(f"out='{out}' exists and is not a regular file. Pick another path.")
        if not overwrite:
            raise ConfigError(
                f"out='{out}' already exists. Fix: pass overwrite=True (CLI: overwrite=true) "
                "to replace it, or pick another path."
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def read_source(checkpoint: str | os.PathLike[str]) -> Source:
    """Load ``checkpoint``: a lightly-train checkpoint or an exported model ``state_dict``."""
    path = Path(checkpoint)
    if path.is_dir():
        raise ConfigError(
            f"checkpoint='{checkpoint}' is a folder. Fix: pass the file, e.g. "
            f"'{path / 'checkpoints' / 'last.ckpt'}'."
        )
    state = load_checkpoint(path, mmap=True)
    if isinstance(state.get("method"), dict) and isinstance(state.get("run"), dict):
        version = state.get("format", CHECKPOINT_FORMAT)
        if not isinstance(version, int) or version > CHECKPOINT_FORMAT:
            raise ConfigError(
                f"'{checkpoint}' has checkpoint format {version!r}; this version of "
                f"lightly-train reads format {CHECKPOINT_FORMAT}. Fix: upgrade lightly-train."
            )
        return Source(path, state["method"], state["run"], state.get("model_prefix"))
    if state and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        return Source(path, state, None, "")
    peer = (
        " It looks like a checkpoint of the original LightlyTrain package."
        if ("state_dict" in state and "lightly_train" in state)
        else ""
    )
    raise ConfigError(
        f"checkpoint='{checkpoint}' is neither a lightly-train checkpoint "
        f"(out/checkpoints/last.ckpt) nor an exported model state_dict "
        f"(out/exported_models/exported_last.pt).{peer} Fix: pass one of those files."
    )


def run_image_size(source: Source) -> tuple[int, int]:
    """The ``(height, width)`` the model saw in training: the global view size
    (``transform_args.global_view.view_size``, else ``transform_args.image_size``);
    224x224 for an exported state dict."""
    args = (source.run or {}).get("transform_args") or {}
    view = args.get("global_view")
    size = view.get("view_size") if isinstance(view, dict) else None
    size = size if isinstance(size, list | tuple) else args.get("image_size")
    if size is None:
        return (224, 224)
    return (int(size[0]), int(size[1]))


def run_normalization(source: Source) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The run's normalization ``(mean, std)``: ``transform_args.normalize`` (or the older
    top-level ``mean`` and ``std``), else ImageNet's."""
    args = (source.run or {}).get("transform_args") or {}
    block = args.get("normalize") if isinstance(args.get("normalize"), dict) else args
    mean = block.get("mean") or IMAGENET_MEAN
    std = block.get("std") or IMAGENET_STD
    return tuple(float(m) for m in mean), tuple(float(s) for s in std)


def _sub_state(weights: dict[str, Any], prefix: str) -> dict[str, Any]:
    return {k[len(prefix) :]: v for k, v in weights.items() if k.startswith(prefix)}


def part_state_dict(source: Source, part: str) -> dict[str, Any] | None:
    """The ``state_dict`` of ``part`` cut from the source's weights, without building a
    module; ``None`` if it cannot be cut (then build the part and take its state dict)."""
    if not source.is_checkpoint:
        if part != "model":
            raise _weights_only_error(source, part)
        return dict(source.weights)
    if part == "model":
        prefix = source.model_prefix
        return None if prefix is None else _sub_state(source.weights, prefix)
    return _sub_state(
        source.weights, _EMBEDDING_PREFIX if part == "embedding_model" else _WRAPPER_PREFIX
    )


def build_part(source: Source, part: str, model: Any = None) -> nn.Module:
    """The module of ``part`` with the source's weights, in eval mode on the CPU."""
    if not source.is_checkpoint:
        if part != "model":
            raise _weights_only_error(source, part)
        if model is None:
            raise ConfigError(
                f"'{source.path}' holds the model's weights only, not the name of its model. "
                "Fix: pass model=<the model wrapper or model name used for training>, or the "
                "run's checkpoints/last.ckpt as checkpoint."
            )
        target: nn.Module = _wrapper(model, None).get_model()
        _load(target, source.weights, source, model)
        return target.eval()
    embedding_model = build_embedding_model(source, model)
    wrapper = embedding_model.wrapper
    if part == "embedding_model":
        return embedding_model
    if part == "wrapped_model":
        return wrapper
    return wrapper.get_model().eval()  # type: ignore[operator,no-any-return]


def build_embedding_model(source: Source, model: Any = None) -> EmbeddingModel:
    """Rebuild the run's :class:`lt_core.EmbeddingModel` with the checkpoint's weights."""
    if not source.is_checkpoint:
        raise _weights_only_error(source, "embedding_model")
    run = source.run or {}
    wrapper = _wrapper(model, run)
    embedding_model = EmbeddingModel(wrapper, embed_dim=run.get("embed_dim"), pool=True)
    _load(embedding_model, _sub_state(source.weights, _EMBEDDING_PREFIX), source, model)
    return embedding_model.eval()


def _wrapper(model: Any, run: dict[str, Any] | None) -> Any:
    """The wrapper to load the weights into: ``model=`` (a copy of a wrapper, or a name),
    or the run's model name."""
    if isinstance(model, nn.Module):
        return copy.deepcopy(model)  # the caller's wrapper keeps its weights
    if model is not None and not isinstance(model, str):
        raise ConfigTypeError(
            f"model must be a model wrapper (torch.nn.Module) or a model name, got "
            f"{type(model).__name__}."
        )
    name = model if model is not None else (run or {}).get("model")
    args = (run or {}).get("model_args") if run and name == run.get("model") else None
    if isinstance(name, str) and ("/" in name or ":" in name):
        return get_model_wrapper(name, args)
    raise ConfigError(
        f"The run trained a model wrapper object ({name}), which a checkpoint cannot "
        f"rebuild. Fix: pass model=<the same wrapper class, constructed as for training> "
        "(Python only); its weights are replaced by the checkpoint's."
    )


def _load(module: nn.Module, weights: dict[str, Any], source: Source, model: Any) -> None:
    try:
        module.load_state_dict(weights, strict=True)
    except RuntimeError as e:
        given = " given as model=" if model is not None else ""
        raise ConfigError(
            f"The weights in '{source.path}' do not fit the model{given} "
            f"({type(module).__name__}): {str(e).strip()} Fix: pass the model (and "
            "embed_dim) of the training run."
        ) from e


def _weights_only_error(source: Source, part: str) -> ConfigError:
    return ConfigError(
        f"'{source.path}' holds the weights of part='model' only, so part='{part}' cannot be "
        "exported from it. Fix: pass the run's checkpoints/last.ckpt as checkpoint."
    )
