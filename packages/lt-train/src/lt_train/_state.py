"""The state of a run that a checkpoint holds, written and read from one place.

A checkpoint is a plain dict (see :mod:`lt_train._checkpoint` for the format): the method's
``state_dict`` (the wrapped model with its embedding layer, heads, an EMA teacher, buffers
such as DINO's center), the optimizer's, the precision plugin's (the grad scaler of
16-mixed), the fields of :class:`Progress`, every process's RNG states, and what
identifies the run (the fingerprint of its options, the key prefix of the exported model,
the data cache it used), and the state of the health monitors (their first embedding
spread and collapse count).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from lightning_fabric import Fabric

from lt_data import log_skipped
from lt_train._checkpoint import CHECKPOINT_FORMAT, get_rng_state, set_rng_state

__all__ = ["Progress", "TrainState", "gather_skipped", "model_prefix"]


@dataclass
class Progress:
    """Where the run stands. Every field is saved in every checkpoint, under its name."""

    epoch: int = 0
    step: int = 0
    step_in_epoch: int = 0
    max_steps: int = 0
    skipped_images: int = 0
    images: int = 0
    train_time_s: float = 0.0

    def state_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for f in dataclasses.fields(self):
            setattr(self, f.name, type(f.default)(state[f.name]))

    @classmethod
    def of(cls, checkpoint: dict[str, Any] | None) -> Progress:
        """The progress saved in ``checkpoint``, or a new run's (``None``)."""
        progress = cls()
        if checkpoint is not None:
            progress.load_state_dict(checkpoint)
        return progress


# What a checkpoint written with save_weights_only=True leaves out (it cannot resume).
_TRAINING_ONLY = ("optimizer", "precision", "rng", "monitor")


class TrainState:
    """The live state of a run (all processes take part in :meth:`state_dict`).

    Args:
        fabric: The run's Fabric.
        method: The method, set up by Fabric.
        optimizer: Its optimizer, set up by Fabric.
        progress: The run's progress.
        identity: What identifies the run: ``"run"`` (the options' fingerprint),
            ``"model_prefix"`` and ``"data_cache"``.
        monitor: The health monitors (their collapse state is saved under
            ``"monitor"``; a checkpoint from before them loads without it).
    """

    def __init__(
        self,
        fabric: Fabric,
        method: Any,
        optimizer: Any,
        progress: Progress,
        identity: dict[str, Any],
        monitor: Any = None,
    ) -> None:
        self.fabric = fabric
        self.monitor = monitor
        self.method = method
        self.optimizer = optimizer
        self.progress = progress
        self.identity = identity

    @property
    def unwrapped(self) -> Any:
        """The method module without Fabric's (and DDP's) wrappers."""
        method = self.method
        return method.module if hasattr(method, "module") else method

    def state_dict(self, weights_only: bool = False) -> dict[str, Any] | None:
        """The checkpoint on process 0, ``None`` on the others (every process must call
        it: the RNG states of all processes are gathered)."""
        fabric = self.fabric
        rng: list[Any] = [get_rng_state()]
        if fabric.world_size > 1:
            rng = [None] * fabric.world_size
            torch.distributed.all_gather_object(rng, get_rng_state())
        if not fabric.is_global_zero:
            return None
        state: dict[str, Any] = {
            "format": CHECKPOINT_FORMAT,
            "method": self.unwrapped.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "precision": fabric.strategy.precision.state_dict(),
            **self.progress.state_dict(),
            "rng": rng,
            **self.identity,
        }
        if self.monitor is not None:
            state["monitor"] = self.monitor.state_dict()
        if weights_only:
            for key in _TRAINING_ONLY:
                state.pop(key)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from ``state``: the weights, optimizer and scaler, the progress, and
        this process's RNG streams (restored last, so nothing after draws from them)."""
        self.unwrapped.load_state_dict(state["method"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.fabric.strategy.precision.load_state_dict(state.get("precision") or {})
        self.progress.load_state_dict(state)
        if self.monitor is not None and isinstance(state.get("monitor"), dict):
            self.monitor.load_state_dict(state["monitor"])
        set_rng_state(state["rng"][self.fabric.global_rank])


def gather_skipped(fabric: Any, skipped: list[tuple[str, str]]) -> int:
    """Number of images skipped by all processes since the last call. Process 0 logs the
    names the other processes skipped (it logged its own as they came)."""
    if fabric.world_size == 1:
        return len(skipped)
    gathered: list[Any] = [None] * fabric.world_size
    torch.distributed.all_gather_object(gathered, skipped)
    if fabric.is_global_zero:
        for rank, names in enumerate(gathered):
            if rank > 0:
                log_skipped(names, rank)
    return sum(len(names) for names in gathered)


def model_prefix(method: torch.nn.Module, wrapper: torch.nn.Module) -> str | None:
    """Where ``wrapper.get_model()`` sits in the method's ``state_dict`` (e.g.
    ``"model.wrapper._model."``), so an export can be cut from a checkpoint alone."""
    method = method.module if hasattr(method, "module") else method  # type: ignore[assignment]
    target = wrapper.get_model()  # type: ignore[operator]
    for name, module in method.named_modules():
        if module is target:
            return f"{name}." if name else ""
    return None
