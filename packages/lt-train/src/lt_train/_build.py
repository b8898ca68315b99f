"""The model, method and optimizer of a run, set up by Fabric."""

from __future__ import annotations

import logging
from typing import Any

from lightning_fabric import Fabric
from torch import nn

from lt_core import ConfigError, EmbeddingModel
from lt_methods import Method
from lt_train._optim import build_optimizer
from lt_train._setup import Plan
from lt_train._teacher import build_teacher

logger = logging.getLogger(__name__)

__all__ = ["build_method"]


def build_method(
    fabric: Fabric, plan: Plan, wrapper: nn.Module, init_weights: dict[str, Any] | None
) -> tuple[Any, Any]:
    """The method around ``wrapper`` (with its embedding layer) and its optimizer, both set
    up by Fabric; started from ``init_weights`` (``checkpoint=``) when given."""
    config = plan.config
    model = EmbeddingModel(wrapper, embed_dim=config.embed_dim, pool=True)
    model.to(memory_format=plan.memory_format)  # type: ignore[call-overload]
    method_args = build_teacher(plan.method_args)  # a teacher given by name or path, loaded
    method = plan.method_cls(model, method_args, plan.transform_args)
    if init_weights is not None:
        _load_init_weights(method, init_weights, config.checkpoint)
    if config.compile:
        # In place: the state_dict keys (checkpoints, export) stay those of the module.
        model.compile()
        logger.info("Compiling the model with torch.compile (the first steps take longer).")
    # Fused SGD/AdamW updates: one kernel for all parameters (on a 2-core CPU a ResNet-18
    # SGD step takes 8 ms instead of 20 ms), on the device the parameters already sit on.
    fused = fabric.device.type in ("cuda", "cpu")
    if fused:
        method.to(fabric.device)
    optimizer = build_optimizer(
        plan.optimizer,
        method.param_groups(),
        lr=plan.lr,
        weight_decay=plan.weight_decay,
        args=config.optim_args,
        fused=fused,
    )
    return fabric.setup(method, optimizer)  # type: ignore[return-value]


def _load_init_weights(method: Method, init: dict[str, Any], path: str | None) -> None:
    """Start from saved weights: a checkpoint's model (and heads, if of the same method)
    or an exported model ``state_dict``."""
    state = init["state"]
    if init["kind"] == "model":
        target = method.model.wrapper.get_model()  # type: ignore[operator]
        result = target.load_state_dict(state, strict=False)
        what = "the exported model"
    else:
        own = method.state_dict()
        same = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
        model_keys = [k for k in own if k.startswith("model.")]
        missing_model = [k for k in model_keys if k not in same]
        if missing_model:
            logger.debug("Model weights missing from or unlike %s: %s", path, missing_model)
            raise ConfigError(
                f"checkpoint='{path}' does not fit this model: {len(missing_model)} of its "
                f"{len(model_keys)} model weights are missing or of another shape "
                f"({_first(missing_model)}; {_ALL}). Fix: pass a checkpoint "
                "of the same model and embed_dim."
            )
        method.load_state_dict(same, strict=False)
        result = None
        what = f"the model and {len(same) - len(model_keys)} method weights"
    if result is not None and (result.missing_keys or result.unexpected_keys):
        missing, unexpected = result.missing_keys, result.unexpected_keys
        logger.debug("Keys missing from %s: %s; unexpected: %s", path, missing, unexpected)
        raise ConfigError(
            f"checkpoint='{path}' does not fit this model: {len(missing)} missing keys"
            f"{f' ({_first(missing)})' if missing else ''}, {len(unexpected)} unexpected keys"
            f"{f' ({_first(unexpected)})' if unexpected else ''}; {_ALL}. "
            "Fix: pass the export of the same model."
        )
    logger.info("Initialized %s from %s.", what, path)


# Nothing is written before the run starts, so the full key lists go to the debug log.
_ALL = "-v or LIGHTLY_TRAIN_LOG_LEVEL=DEBUG lists them all"


def _first(keys: list[str], count: int = 3) -> str:
    """The first ``count`` of ``keys``, quoted, and how many more."""
    shown = ", ".join(f"'{k}'" for k in keys[:count])
    return shown + (f" and {len(keys) - count} more" if len(keys) > count else "")
