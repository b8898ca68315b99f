"""``lightly_train.export``: write a trained model from a checkpoint to a file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from torch import nn

from lt_core import ConfigError, closest_match_hint
from lt_train import export as _export

__all__ = ["export"]

PathLike = str | os.PathLike[str]
_OPTIONS = ("out", "checkpoint", "part", "format", "overwrite", "model")


def export(
    *,
    out: PathLike,
    checkpoint: PathLike,
    part: Literal["model", "embedding_model", "wrapped_model"] = "model",
    format: Literal[
        "package_default", "torch_state_dict", "torch_model", "onnx"
    ] = "package_default",
    overwrite: bool = False,
    model: str | nn.Module | None = None,
    **unknown: Any,
) -> Path:
    """Export the trained model, or a part of it, from a checkpoint to a file.

    ``export(out="model.pt", checkpoint="out/my_experiment/checkpoints/last.ckpt")`` writes
    the ``state_dict`` of your model, like ``exported_models/exported_last.pt`` of the run.

    Args:
        out: The file to write; its folder is created. The file is written atomically
            (complete or absent, never truncated).
        checkpoint: The run's ``checkpoints/last.ckpt``. For ``part="model"`` an exported
            ``state_dict`` (``exported_models/exported_last.pt``) works too; then the
            ``torch_model`` and ``onnx`` formats need ``model=``.
        part: What to export:

            - ``"model"``: the model you trained, ``wrapper.get_model()`` (for a named
              model such as ``"torchvision/resnet18"``, the torchvision model);
            - ``"embedding_model"``: the wrapper, its pooling and the ``embed_dim`` layer,
              which maps images ``(B, 3, H, W)`` to embeddings ``(B, D)``;
            - ``"wrapped_model"``: the model wrapper.
        format: How to write it:

            - ``"package_default"``: the model library's usual format, a ``state_dict``
              for every supported library (``"ultralytics"`` is a deprecated alias);
            - ``"torch_state_dict"``: ``torch.save(module.state_dict())``; load it with
              ``module.load_state_dict(torch.load(out, weights_only=True))``;
            - ``"torch_model"``: ``torch.save(module)``; load it with
              ``torch.load(out, weights_only=False)`` where the module's classes import;
            - ``"onnx"``: an ONNX graph with input ``"images"`` ``(batch, 3, H, W)``
              (float32, normalized as in training; H, W the training view size; the batch
              dimension is dynamic) and output ``"output"``, opset 18. Not for
              ``"wrapped_model"``. Needs ``pip install "lightly-train[onnx]"``.
        overwrite: Replace ``out`` if it exists; otherwise an existing ``out`` is an error.
        model: The model to load the weights into, for the ``torch_model`` and ``onnx``
            formats when the checkpoint cannot rebuild it: a wrapper object (a run that
            trained ``model=MyWrapper(...)``; pass a new one built the same way, it is
            copied and not changed) or a model name. Runs of a named model
            (``"torchvision/resnet18"``) rebuild it without this.

    Returns:
        The written file.

    Raises:
        ConfigError: An unknown option, part or format, an existing ``out`` without
            ``overwrite=True``, a missing or foreign checkpoint, a wrapper object run
            without ``model=``, or weights that do not fit ``model``.
        ImportError: ``format="onnx"`` without the ``onnx`` package.
    """
    if unknown:
        key = next(iter(unknown))
        raise ConfigError(
            f"Unknown option '{key}' of export.{closest_match_hint(key, _OPTIONS)} Valid "
            f"options: {', '.join(_OPTIONS)}."
        )
    return _export(
        out=out,
        checkpoint=checkpoint,
        part=part,
        format=format,
        overwrite=overwrite,
        model=model,
    )
