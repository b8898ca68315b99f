"""Checks that a model wrapper follows the protocol, before any training starts."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from lt_core._errors import WrapperError, WrapperTypeError, WrapperValueError
from lt_core._protocol import WRAPPER_METHODS

__all__ = ["WrapperInfo", "check_wrapper_static", "validate_wrapper"]

_DOCS = "See docs/custom_models.md for a complete example."


@dataclass(frozen=True)
class WrapperInfo:
    """What the dry run learned about a wrapper.

    Attributes:
        feature_dim: Channels of the feature map, as returned by ``feature_dim()``.
        feature_size: ``(H, W)`` of the ``features`` map at the validated image size.
        pooled_size: ``(h, w)`` of the ``pooled_features`` map, or ``None`` if
            ``forward_pool`` was not checked.
    """

    feature_dim: int
    feature_size: tuple[int, int]
    pooled_size: tuple[int, int] | None


def _name(wrapper: object) -> str:
    return type(wrapper).__name__


def check_wrapper_static(wrapper: object) -> int:
    """Check everything that needs no forward pass; return ``feature_dim()``.

    Raises:
        WrapperTypeError: ``wrapper`` is not an ``nn.Module``, lacks a method, or a
            method returns the wrong type.
        WrapperValueError: ``feature_dim()`` is not positive.
    """
    if not isinstance(wrapper, nn.Module):
        raise WrapperTypeError(
            f"The model wrapper must be a torch.nn.Module, got {type(wrapper).__module__}."
            f"{type(wrapper).__qualname__}. Fix: make your wrapper class inherit from "
            f"torch.nn.Module and call super().__init__() in its __init__. {_DOCS}"
        )
    missing = [m for m in WRAPPER_METHODS if not callable(getattr(wrapper, m, None))]
    if missing:
        lines = "\n".join(f"    def {WRAPPER_METHODS[m]}" for m in missing)
        raise WrapperTypeError(
            f"{_name(wrapper)} is missing the wrapper method(s) {', '.join(missing)}. "
            f"A model wrapper must implement:\n{lines}\n"
            "If you passed a plain model (for example torchvision's resnet18()), wrap it "
            f"in a class that implements these methods, or pass a model name such as "
            f"'torchvision/resnet18'. {_DOCS}"
        )
    model = _call(wrapper, "get_model")
    if not isinstance(model, nn.Module):
        raise WrapperTypeError(
            f"{_name(wrapper)}.get_model() must return a torch.nn.Module (the model whose "
            f"weights are exported), got {type(model).__name__}. Fix: return the wrapped "
            "model itself, for example `return self._model`."
        )
    dim = _call(wrapper, "feature_dim")
    if isinstance(dim, bool) or not isinstance(dim, int):
        raise WrapperTypeError(
            f"{_name(wrapper)}.feature_dim() must return an int (the channel count C of the "
            f"features (B, C, H, W)), got {dim!r} of type {type(dim).__name__}. "
            "Fix: return an int, for example `return 512` for a ResNet-18."
        )
    if dim <= 0:
        raise WrapperValueError(
            f"{_name(wrapper)}.feature_dim() must return a positive int, got {dim}. "
            "Fix: return the channel count of the feature map, for example 512 for a ResNet-18."
        )
    return dim


def validate_wrapper(
    wrapper: object,
    *,
    image_size: int | tuple[int, int] = 224,
    batch_size: int = 2,
    in_channels: int = 3,
    check_pool: bool = True,
    device: torch.device | str | None = None,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> WrapperInfo:
    """Check that ``wrapper`` follows the wrapper protocol, with a dry run.

    Runs the static checks of :func:`check_wrapper_static`, then calls ``forward_features``
    and ``forward_pool`` on a random batch at the training resolution, without gradients
    and in eval mode (each submodule's training flag is restored afterwards). Checks the
    return types, keys, ranks, batch size, channel count against ``feature_dim()`` and that
    all values are finite.

    Args:
        wrapper: The model wrapper to check.
        image_size: Training resolution, an int for square images or ``(height, width)``.
        batch_size: Batch size of the dry run; at least 2 so batch-norm layers work.
        in_channels: Channels of the input images.
        check_pool: Also check ``forward_pool``. Dense methods that skip pooling pass False.
        device: Device of the dry-run batch. Defaults to the device of the wrapper's first
            parameter (CPU if it has none).
        memory_format: Memory format of the dry-run batch, e.g. ``torch.channels_last`` to
            check a wrapper converted with ``wrapper.to(memory_format=torch.channels_last)``.

    Returns:
        The feature dimension and spatial sizes found by the dry run.

    Raises:
        WrapperTypeError: A method is missing or returns the wrong type.
        WrapperValueError: A returned tensor has a wrong shape or non-finite values.
        WrapperError: A method raised an exception during the dry run.
    """
    dim = check_wrapper_static(wrapper)
    assert isinstance(wrapper, nn.Module)  # checked above; narrows the type
    h, w = (image_size, image_size) if isinstance(image_size, int) else image_size
    if device is None:
        param = next(iter(wrapper.parameters()), None)
        device = param.device if param is not None else torch.device("cpu")
    x = torch.randn(batch_size, in_channels, h, w, device=device)
    x = x.contiguous(memory_format=memory_format)
    with _eval_mode(wrapper), torch.no_grad():
        out = _call(wrapper, "forward_features", x)
        features = _check_output(wrapper, "forward_features", out, "features", x, dim)
        pooled_size = None
        if check_pool:
            pool_out = _call(wrapper, "forward_pool", out)
            pooled = _check_output(wrapper, "forward_pool", pool_out, "pooled_features", x, dim)
            pooled_size = (pooled.shape[2], pooled.shape[3])
    return WrapperInfo(dim, (features.shape[2], features.shape[3]), pooled_size)


@contextlib.contextmanager
def _eval_mode(module: nn.Module) -> Iterator[None]:
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield
    finally:
        for m, mode in modes:
            m.training = mode


def _call(wrapper: object, method: str, *args: Any) -> Any:
    try:
        return getattr(wrapper, method)(*args)
    except WrapperError:
        raise
    except Exception as e:
        shape = (
            f" on a batch of shape {tuple(args[0].shape)}"
            if args and isinstance(args[0], Tensor)
            else ""
        )
        raise WrapperError(
            f"{_name(wrapper)}.{method}() raised {type(e).__name__}{shape}: {e}. "
            f"Fix the method so that it returns {WRAPPER_METHODS[method].split(' -> ')[1]}."
        ) from e


def _check_output(wrapper: object, method: str, out: Any, key: str, x: Tensor, dim: int) -> Tensor:
    where = f"{_name(wrapper)}.{method}()"
    expected = f"a dict {{'{key}': Tensor of shape (B, feature_dim, H, W)}}"
    if isinstance(out, Tensor):
        raise WrapperTypeError(
            f"{where} must return {expected}, got a Tensor of shape {tuple(out.shape)}. "
            f"Fix: return {{'{key}': tensor}} instead of the tensor."
        )
    if not isinstance(out, Mapping):
        raise WrapperTypeError(f"{where} must return {expected}, got {type(out).__name__}.")
    if key not in out:
        raise WrapperValueError(
            f"{where} returned a dict without the key '{key}' (keys: {sorted(map(str, out))}). "
            f"Fix: put the feature map under '{key}'."
        )
    t = out[key]
    if not isinstance(t, Tensor):
        raise WrapperTypeError(f"{where}['{key}'] must be a Tensor, got {type(t).__name__}.")
    shape = tuple(t.shape)
    if t.ndim != 4:
        hint = (
            " If the model pools or flattens, return the map before pooling in "
            "forward_features and pool in forward_pool; ViT tokens (B, N, C) must be "
            "reshaped to (B, C, H, W)."
            if method == "forward_features"
            else " Keep the spatial dimensions, for example `pooled.reshape(B, C, 1, 1)` or "
            "torch.nn.AdaptiveAvgPool2d(1)."
        )
        raise WrapperValueError(
            f"{where}['{key}'] must have 4 dimensions (B, feature_dim, H, W), got shape "
            f"{shape}.{hint}"
        )
    if shape[0] != x.shape[0]:
        raise WrapperValueError(
            f"{where}['{key}'] has batch size {shape[0]} for an input batch of size "
            f"{x.shape[0]} (input shape {tuple(x.shape)}, output shape {shape}). Fix: keep "
            "the batch dimension first and do not reduce over it."
        )
    if shape[1] != dim:
        raise WrapperValueError(
            f"{where}['{key}'] has {shape[1]} channels (shape {shape}) but feature_dim() "
            f"returns {dim}. Fix: make feature_dim() return {shape[1]}, or return features "
            "with channels in dimension 1 (B, C, H, W), not channels-last."
        )
    if not t.is_floating_point():
        raise WrapperTypeError(f"{where}['{key}'] must be a floating-point tensor, got {t.dtype}.")
    if not bool(torch.isfinite(t).all()):
        bad = int((~torch.isfinite(t)).sum())
        raise WrapperValueError(
            f"{where}['{key}'] contains {bad} NaN or infinite values on a random input batch. "
            "Fix: check the model's initialization and any division or log in the forward pass."
        )
    return t
