"""Options of DenseCL: ``method_args`` (:class:`DenseCLArgs`) and ``transform_args``
(:class:`DenseCLTransformArgs`, MoCo v2's views).

The names are those of LightlyTrain 0.18's (hidden) ``densecl`` method, plus
``dense_warmup_steps`` from the reference code; the automatic rules are ours (see
docs/methods.md).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

from lt_core import ConfigError
from lt_methods._checks import check_int, check_lr_scaling, check_positive, check_range
from lt_methods._transform_args import ColorJitterArgs, MethodTransformArgs, RandomResizeArgs

__all__ = [
    "DenseCLArgs",
    "DenseCLColorJitterArgs",
    "DenseCLRandomResizeArgs",
    "DenseCLTransformArgs",
    "resolved",
]

Auto = Literal["auto"]

#: The paper's queue (65536 keys for ImageNet's 1.28M images) and the largest share of the
#: dataset an automatic queue may hold.
_MAX_QUEUE = 65536
_QUEUE_FRACTION = 0.1
#: The paper's key-encoder momentum, and the lowest automatic one (short runs).
_MOMENTUM, _MIN_MOMENTUM = 0.999, 0.99
#: The reference code's warm-up: dense loss off for the first 1000 iterations.
_DENSE_WARMUP_STEPS = 1000
_AUTO_FIELDS = ("memory_bank_size", "momentum_start", "momentum_end", "dense_warmup_steps")


@dataclass(kw_only=True)
class DenseCLArgs:
    """Options of :class:`DenseCL` (``method_args``), with the names of LightlyTrain 0.18's
    (hidden) ``densecl`` method. ``"auto"`` and ``None`` both mean automatic (``None`` is
    stored as ``"auto"``); :meth:`resolve` sets them.

    Attributes:
        hidden_dim: Hidden width of the global and the dense projection head (paper: 2048).
        output_dim: Dimension of the projections and of the queued keys (paper: 128).
        lambda_: Weight of the dense loss, ``(1 - lambda_) * global + lambda_ * dense``
            (paper: 0.5); 0 trains MoCo v2.
        temperature: Temperature of both InfoNCE losses (paper, as MoCo v2: 0.2).
        memory_bank_size: Keys in each of the two queues (the negatives). Auto: the paper's
            65536, but at most a tenth of the dataset, rounded down to a power of two (4096
            for CIFAR-10's 50,000 images): a queue holding much of the dataset holds older
            keys of the query's own image as negatives.
        gather_distributed: Under ``torch.distributed``, enqueue the keys of all processes
            (the paper), not only this process's.
        momentum_start: EMA momentum of the key encoder at the first step. Auto: the paper's
            0.999, lowered for short runs to ``1 - 10 / total_steps`` (the key encoder
            averages over about a tenth of the run) but not below 0.99, which MoCo's
            momentum ablation still finds close to 0.999.
        momentum_end: EMA momentum at the last step, reached by a cosine. Auto: equal to
            ``momentum_start``, a constant momentum as in the paper.
        dense_warmup_steps: Optimizer steps at the start with ``lambda_ = 0`` (global loss
            only), while the features that pick the corresponding locations are still
            random. Auto: the reference code's 1000 steps, at most a tenth of the run.
        lr_scale_method: How the trainer scales the base learning rate to the effective
            batch: ``"linear"`` or ``"sqrt"`` (see :class:`lt_methods.SimCLRArgs`).
        reference_batch_size: Batch size the base learning rate is given for.
    """

    hidden_dim: int = 2048
    output_dim: int = 128
    lambda_: float = 0.5
    temperature: float = 0.2
    memory_bank_size: int | Auto | None = "auto"
    gather_distributed: bool = True
    momentum_start: float | Auto | None = "auto"
    momentum_end: float | Auto | None = "auto"
    dense_warmup_steps: int | Auto | None = "auto"
    lr_scale_method: Literal["linear", "sqrt"] = "linear"
    reference_batch_size: int = 256

    def __post_init__(self) -> None:
        for key in _AUTO_FIELDS:
            if getattr(self, key) is None:
                setattr(self, key, "auto")
        check_int("method_args.hidden_dim", self.hidden_dim, 1)
        check_int("method_args.output_dim", self.output_dim, 1)
        check_range("method_args.lambda_", self.lambda_, 0.0, 1.0)
        check_positive("method_args.temperature", self.temperature)
        if self.memory_bank_size != "auto":
            check_int("method_args.memory_bank_size", self.memory_bank_size, 1)  # type: ignore[arg-type]
        for key in ("momentum_start", "momentum_end"):
            if getattr(self, key) != "auto":
                check_range(f"method_args.{key}", getattr(self, key), 0.0, 1.0)
        if self.dense_warmup_steps != "auto":
            check_int("method_args.dense_warmup_steps", self.dense_warmup_steps, 0)  # type: ignore[arg-type]
        check_lr_scaling(self.lr_scale_method, self.reference_batch_size)

    def resolve(self, num_images: int | None = None, total_steps: int | None = None) -> DenseCLArgs:
        """A copy with the automatic options set from the dataset size and the run length;
        ``None`` for either picks the paper's values."""
        queue = self.memory_bank_size
        if queue == "auto":
            queue = _MAX_QUEUE
            if num_images is not None:
                cap = max(1, int(num_images * _QUEUE_FRACTION))
                queue = min(_MAX_QUEUE, 1 << (cap.bit_length() - 1))
        start = self.momentum_start
        if start == "auto":
            start = _MOMENTUM
            if total_steps is not None and total_steps > 0:
                start = round(min(_MOMENTUM, max(_MIN_MOMENTUM, 1 - 10 / total_steps)), 6)
        end = start if self.momentum_end == "auto" else self.momentum_end
        warmup = self.dense_warmup_steps
        if warmup == "auto":
            warmup = _DENSE_WARMUP_STEPS
            if total_steps is not None:
                warmup = min(warmup, int(total_steps * 0.1))
        return dataclasses.replace(
            self,
            memory_bank_size=queue,
            momentum_start=start,
            momentum_end=end,
            dense_warmup_steps=warmup,
        )


@dataclass(kw_only=True)
class DenseCLRandomResizeArgs(RandomResizeArgs):
    """MoCo v2's crop: area 0.2-1."""

    min_scale: float = 0.2


@dataclass(kw_only=True)
class DenseCLColorJitterArgs(ColorJitterArgs):
    """MoCo v2's color jitter, p=0.8: brightness, contrast, saturation 0.4, hue 0.1 at
    strength 1 (LightlyTrain's DenseCL values, so its overrides mean the same here)."""

    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.1


@dataclass(kw_only=True)
class DenseCLTransformArgs(MethodTransformArgs):
    """Options of DenseCL's two views (``transform_args``), MoCo v2's recipe as in the
    paper: crop area 0.2-1, color jitter 0.4/0.4/0.4/0.1 (p=0.8), grayscale (p=0.2),
    Gaussian blur (p=0.5, sigma 0.1-2 pixels at 224 pixels), horizontal flip. See
    :class:`MethodTransformArgs` for the keys."""

    random_resize: DenseCLRandomResizeArgs | None = field(default_factory=DenseCLRandomResizeArgs)
    color_jitter: DenseCLColorJitterArgs | None = field(default_factory=DenseCLColorJitterArgs)


def resolved(value: Any, name: str) -> Any:
    """``value`` once it is no longer automatic."""
    if value is None or isinstance(value, str):
        raise ConfigError(
            f"method_args.{name} is still {value!r}; resolve the options first "
            "(Method.resolve_args, which a method built directly calls itself)."
        )
    return value
