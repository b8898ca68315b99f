"""The accelerator, the precision and the processes of a run, decided once, and its Fabric."""

from __future__ import annotations

import os
from typing import Any

import torch
from lightning_fabric import Fabric
from lightning_fabric.strategies import DDPStrategy

from lt_core import ConfigError

__all__ = [
    "first_process",
    "local_processes",
    "make_fabric",
    "resolve_accelerator",
    "resolve_precision",
]


def resolve_accelerator(name: str) -> str:
    """``"auto"``: ``"cuda"`` where a CUDA GPU is available, else ``"cpu"``; ``"gpu"`` is
    ``"cuda"``. An accelerator that is not available is an error naming the fix."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name in ("cuda", "gpu") and not torch.cuda.is_available():
        raise ConfigError(
            f"accelerator='{name}' but no CUDA device is available. Use accelerator='cpu' or "
            "'auto', or install a CUDA build of torch."
        )
    if name == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("accelerator='mps' but MPS is not available. Use accelerator='cpu'.")
    return "cuda" if name == "gpu" else name


def resolve_precision(name: str, accelerator: str) -> str:
    """``"auto"``: bf16-mixed on a CUDA GPU that supports it, else 32-true."""
    if name == "auto":
        if accelerator == "cuda" and torch.cuda.is_bf16_supported():
            return "bf16-mixed"
        return "32-true"
    if name == "16-mixed" and accelerator == "cpu":
        raise ConfigError(
            "precision='16-mixed' needs a GPU; on the CPU use precision='bf16-mixed' or '32-true'."
        )
    return name


def local_processes(devices: int | list[int] | str, accelerator: str) -> int:
    """Training processes on this machine for a ``devices`` option (``"auto"``: every
    CUDA GPU, or one process on another accelerator)."""
    if isinstance(devices, int):
        return max(1, devices)
    if isinstance(devices, list):
        return max(1, len(devices))
    if devices != "auto":  # "0,1"
        return max(1, len([d for d in devices.split(",") if d.strip()]))
    return max(1, torch.cuda.device_count()) if accelerator == "cuda" else 1


def first_process() -> bool:
    """Whether this is process 0 (launchers set these variables before the script runs;
    srun sets SLURM_PROCID, the rank that Fabric's SLURM environment uses)."""
    ranks = ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID")
    return all(int(os.environ.get(v, "0") or 0) == 0 for v in ranks)


def make_fabric(config: Any, accelerator: str, precision: str) -> Fabric:
    """The Fabric of a run: ``config``'s devices, nodes and strategy (DDP when there is
    more than one process) on the resolved ``accelerator`` and ``precision``."""
    devices: Any = config.devices
    if devices == "auto" and accelerator == "cpu":
        devices = 1
    strategy: Any = config.strategy
    if strategy == "auto" and (local_processes(devices, accelerator) > 1 or config.num_nodes > 1):
        strategy = "ddp"
    if strategy in ("ddp", "ddp_find_unused_parameters_true"):
        # Wrapped models often hold layers that the features never use (a classifier head).
        strategy = DDPStrategy(find_unused_parameters=True)
    elif strategy == "ddp_find_unused_parameters_false":
        strategy = DDPStrategy(find_unused_parameters=False)
    return Fabric(
        accelerator=accelerator,
        devices=devices,
        num_nodes=config.num_nodes,
        strategy=strategy,
        precision=precision,  # type: ignore[arg-type]
    )
