"""What train.log records about the machine a run trains on (to reproduce it)."""

from __future__ import annotations

import logging
import platform
import sys
from typing import Any

import torch

logger = logging.getLogger(__name__)

__all__ = ["describe_devices", "log_versions"]


def log_versions() -> None:
    """Versions, platform and Python at the start of train.log (to reproduce a run)."""
    from importlib import metadata

    names = ("torch", "lightning-fabric", "lightly-train", "lt-core", "lt-data", "lt-methods")
    versions = []
    for name in (*names, "lt-train"):
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            pass
    logger.info(
        "Python %s, %s; %s.",
        sys.version.split()[0],
        platform.platform(),
        ", ".join(versions),
    )


def describe_devices(fabric: Any) -> str:
    """The processes and this one's device (a GPU's name, memory and CUDA version)."""
    device = fabric.device
    text = f"{fabric.world_size} process(es), this one on {device}"
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        text += f" ({props.name}, {props.total_memory / 2**30:.0f} GiB, CUDA {torch.version.cuda})"
    else:
        text += f" ({torch.get_num_threads()} threads)"
    return text


def log_start(trainer: Any) -> None:
    """The run in one line: model, method, data, steps, devices, precision, workers, lr."""
    config, plan = trainer.config, trainer.plan
    accumulated = (
        f" in {config.gradient_accumulation_steps} accumulated batches of {config.batch_size}"
        if config.gradient_accumulation_steps > 1
        else ""
    )
    logger.info(
        "Pretraining %s with %s on %d images for %d epochs (%d steps of %d images%s), "
        "%s x%d, precision %s, %d data workers, optimizer %s lr %.3g (base %.3g per 256 "
        "images), memory format %s.",
        type(trainer.wrapper).__name__,
        plan.method_cls.name,
        plan.num_images,
        plan.epochs,
        plan.max_steps,
        config.batch_size * config.gradient_accumulation_steps,
        accumulated,
        plan.accelerator,
        trainer.fabric.world_size,
        plan.precision,
        plan.num_workers,
        plan.optimizer,
        plan.lr,
        plan.base_lr,
        str(plan.memory_format).removeprefix("torch."),
    )
