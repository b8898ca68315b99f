"""Everything checked and resolved before training starts (no files are written here)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lt_core import ConfigError, DataError, ViewConfig, from_dict, validate_wrapper
from lt_data import list_image_files
from lt_methods import DEFAULT_METHOD, Method, get_method
from lt_train._config import TrainConfig
from lt_train._models import get_model_wrapper
from lt_train._run_dir import check_out_dir

logger = logging.getLogger(__name__)

__all__ = ["Plan", "plan_run", "resolve_model"]


@dataclass
class Plan:
    """The resolved run: method class and options, files, wrapper, view recipe."""

    config: TrainConfig
    method_cls: type[Method]
    method_args: Any
    transform_args: Any
    files: list[Path]
    wrapper: nn.Module
    recipe: list[ViewConfig]
    image_size: tuple[int, int]
    accelerator: str
    precision: str
    num_workers: int


def resolve_model(model: Any) -> nn.Module:
    """A model name becomes its wrapper; a wrapper passes through (validated later)."""
    if isinstance(model, str):
        return get_model_wrapper(model)
    return model  # type: ignore[no-any-return]


def _accelerator(name: str) -> str:
    if name == "auto":
        if torch.cuda.is_available():
            return "cuda"
        return "cpu"
    if name in ("cuda", "gpu") and not torch.cuda.is_available():
        raise ConfigError(
            f"accelerator='{name}' but no CUDA device is available. Use accelerator='cpu' or "
            "'auto', or install a CUDA build of torch."
        )
    return "cuda" if name == "gpu" else name


def _precision(name: str, accelerator: str) -> str:
    if name == "auto":
        if accelerator == "cuda" and torch.cuda.is_bf16_supported():
            return "bf16-mixed"
        return "32-true"
    if name == "16-mixed" and accelerator == "cpu":
        raise ConfigError(
            "precision='16-mixed' needs a GPU; on the CPU use precision='bf16-mixed' or '32-true'."
        )
    return name


def _num_workers(value: int | str, devices: int | str) -> int:
    if isinstance(value, int):
        return value
    per_device = (os.cpu_count() or 1) // (devices if isinstance(devices, int) else 1)
    return max(1, min(8, per_device - 1))


def plan_run(config: TrainConfig) -> Plan:
    """Check every option, the out folder, the data and the model; resolve defaults.

    Runs before any heavy work and writes nothing, so a bad input fails fast and leaves an
    existing out folder untouched.
    """
    method_cls = get_method(config.method or DEFAULT_METHOD)
    method_args = from_dict(method_cls.Args, config.method_args, "method_args")
    transform_args = from_dict(method_cls.TransformArgs, config.transform_args, "transform_args")
    check_out_dir(config.out, config.overwrite)
    files = list_image_files(config.data)
    if len(files) < config.batch_size:
        raise DataError(
            f"batch_size={config.batch_size} is larger than the dataset ({len(files)} images in "
            f"{config.data}). Lower batch_size to at most {len(files)} or add images."
        )
    # Automatic method options (e.g. DINO's head size) follow the dataset and run length.
    method_args = method_cls.resolve_args(
        method_args,
        num_images=len(files),
        total_steps=config.epochs * (len(files) // config.batch_size),
    )
    accelerator = _accelerator(config.accelerator)
    precision = _precision(config.precision, accelerator)
    recipe = method_cls.view_recipe(transform_args)
    image_size = tuple(transform_args.image_size)
    wrapper = resolve_model(config.model)
    sizes = sorted({v.size for v in recipe}, key=lambda s: s[0] * s[1])
    for size in (sizes[0], sizes[-1]) if len(sizes) > 1 else sizes:
        validate_wrapper(wrapper, image_size=size)
    return Plan(
        config=config,
        method_cls=method_cls,
        method_args=method_args,
        transform_args=transform_args,
        files=files,
        wrapper=wrapper,
        recipe=recipe,
        image_size=(int(image_size[0]), int(image_size[1])),
        accelerator=accelerator,
        precision=precision,
        num_workers=_num_workers(config.num_workers, config.devices),
    )
