"""Export a trained model from a checkpoint: as a ``state_dict``, a pickled module or ONNX."""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

from torch import nn

from lt_core import ConfigError
from lt_train._atomic import atomic_torch_save
from lt_train._export._onnx import export_onnx
from lt_train._export._source import (
    PARTS,
    build_part,
    check_choice,
    check_out_file,
    part_state_dict,
    read_source,
    run_image_size,
)

__all__ = ["EXPORT_FORMATS", "PARTS", "export"]

logger = logging.getLogger(__name__)

#: The formats of :func:`export` (``"ultralytics"`` is a deprecated alias of the first).
EXPORT_FORMATS = ("package_default", "torch_state_dict", "torch_model", "onnx")


def export(
    *,
    out: str | os.PathLike[str],
    checkpoint: str | os.PathLike[str],
    part: str = "model",
    format: str = "package_default",
    overwrite: bool = False,
    model: str | nn.Module | None = None,
) -> Path:
    """Export a part of a trained model from a checkpoint to a file.

    Args:
        out: The file to write (its folder is created). Written atomically.
        checkpoint: A run's ``checkpoints/last.ckpt``, or, for ``part="model"``, an
            exported ``state_dict`` such as ``exported_models/exported_last.pt``.
        part: ``"model"`` (``wrapper.get_model()``, the model you passed in), the
            ``"embedding_model"`` (wrapper, pooling and the ``embed_dim`` layer: images to
            ``(B, embed_dim)`` embeddings) or the ``"wrapped_model"`` (the wrapper).
        format: ``"package_default"`` (a ``state_dict``), ``"torch_state_dict"``
            (``torch.save(module.state_dict())``), ``"torch_model"``
            (``torch.save(module)``) or ``"onnx"`` (dynamic batch, the run's image size,
            opset :data:`lt_train._export._onnx.ONNX_OPSET`; not for ``"wrapped_model"``).
            ``"ultralytics"`` is a deprecated alias of ``"package_default"``.
        overwrite: Replace ``out`` if it exists.
        model: The model wrapper or model name to load the weights into, for formats
            that need a module (``torch_model``, ``onnx``) when the checkpoint cannot
            rebuild it: a run that trained a wrapper object, or an exported state dict.
            A wrapper is copied, not changed.

    Returns:
        The written file.

    Raises:
        ConfigError: A bad part or format, an existing ``out`` without ``overwrite``, an
            unusable checkpoint, or a model that the checkpoint's weights do not fit.
        ImportError: ``format="onnx"`` without the ``onnx`` package.
    """
    part = check_choice("part", part, PARTS)
    if format == "ultralytics":
        warnings.warn(
            "format='ultralytics' is deprecated; use format='package_default'.",
            FutureWarning,
            stacklevel=2,
        )
        format = "package_default"
    format = check_choice("format", format, EXPORT_FORMATS)
    if format == "onnx" and part == "wrapped_model":
        raise ConfigError(
            "format='onnx' exports a module's forward, and a wrapper has none of its own. "
            "Fix: pass part='embedding_model' (images to embeddings) or part='model'."
        )
    path = check_out_file(out, overwrite)
    if path.resolve() == Path(checkpoint).resolve():
        raise ConfigError(f"out='{out}' is the checkpoint itself. Pick another path.")
    source = read_source(checkpoint)
    if format in ("package_default", "torch_state_dict"):
        state = part_state_dict(source, part)
        if state is None:  # the run could not tell where get_model() sits in the checkpoint
            state = build_part(source, part, model).state_dict()
        atomic_torch_save(state, path)
    elif format == "torch_model":
        atomic_torch_save(build_part(source, part, model), path)
    else:
        export_onnx(build_part(source, part, model), path, run_image_size(source))
    logger.info("Exported %s (%s) of %s to %s", part, format, source.path, path)
    return path
