"""Export a module to ONNX with a dynamic batch dimension."""

from __future__ import annotations

import importlib.util
import inspect
import io
import logging
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lt_train._atomic import atomic_write

__all__ = ["ONNX_OPSET", "export_onnx"]

logger = logging.getLogger(__name__)

#: The ONNX opset of exported models (ONNX Runtime >= 1.14 runs it).
ONNX_OPSET = 18

_INSTALL = 'pip install "lightly-train[onnx]"  (or: pip install onnx onnxscript)'


def export_onnx(module: nn.Module, path: Path, image_size: tuple[int, int]) -> None:
    """Write ``module`` (in eval mode, on the CPU, float32) to ``path`` as ONNX.

    The graph has one input ``"images"`` of shape ``(batch, 3, height, width)``, float32,
    normalized as in training, and one output ``"output"``; ``batch`` is dynamic. The
    exporter is PyTorch's ``torch.export``-based one when ``onnxscript`` is installed,
    else its TorchScript-based one (which needs ``onnx`` only). The file is written
    atomically; models above 2 GB (the protobuf limit) are not supported.

    Raises:
        ImportError: ``onnx`` is not installed.
    """
    if not _available("onnx"):
        raise ImportError(f"format='onnx' needs the onnx package. Install it with: {_INSTALL}")
    module = module.eval().to("cpu", torch.float32)
    # An example batch of 2: torch.export specializes a batch dimension of 1 to a constant.
    example = torch.zeros(2, 3, *image_size)
    # torch < 2.5 has neither the dynamo argument nor a dynamo exporter worth using
    has_choice = "dynamo" in inspect.signature(torch.onnx.export).parameters
    dynamo = has_choice and _available("onnxscript")
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter's
        if dynamo:
            data = _with_dynamo(module, example)
        else:
            data = _with_torchscript(module, example, {"dynamo": False} if has_choice else {})
    atomic_write(path, lambda f: f.write(data))
    logger.debug("ONNX export with the %s exporter.", "dynamo" if dynamo else "TorchScript")


def _available(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _with_dynamo(module: nn.Module, example: torch.Tensor) -> bytes:
    program = torch.onnx.export(
        module,
        (example,),
        dynamo=True,
        verbose=False,
        input_names=["images"],
        output_names=["output"],
        dynamic_shapes=({0: torch.export.Dim("batch")},),
        opset_version=ONNX_OPSET,
    )
    assert program is not None
    return program.model_proto.SerializeToString()  # type: ignore[no-any-return]


def _with_torchscript(module: nn.Module, example: torch.Tensor, kwargs: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    torch.onnx.export(
        module,
        (example,),
        buffer,  # type: ignore[arg-type,unused-ignore]  # the TorchScript exporter takes files
        **kwargs,
        input_names=["images"],
        output_names=["output"],
        dynamic_axes={"images": {0: "batch"}, "output": {0: "batch"}},
        opset_version=ONNX_OPSET,
    )
    return buffer.getvalue()
