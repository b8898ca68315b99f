"""Options of distillation: ``method_args`` (:class:`DistillationArgs`) and
``transform_args`` (:class:`DistillationTransformArgs`, LightlyTrain's one-view recipe).

The names follow LightlyTrain 0.18 where it has them (``teacher``, ``teacher_weights``,
``teacher_args``, ``queue_size``, ``temperature``, ``n_projection_layers``,
``projection_hidden_dim``, ``lr_scale_method``, ``reference_batch_size``); ``mode`` picks
between its versions' targets (v1: ``"pooled"``, v2: ``"dense"``, v3's pair of global and
local terms: ``"both"``).
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from typing import Any, Literal

from torch import nn

from lt_core import ConfigError, ConfigTypeError
from lt_methods._checks import check_int, check_lr_scaling, check_positive
from lt_methods._transform_args import (
    ColorJitterArgs,
    GaussianBlurArgs,
    MethodTransformArgs,
    RandomResizeArgs,
)

__all__ = [
    "MODES",
    "DistillationArgs",
    "DistillationColorJitterArgs",
    "DistillationRandomResizeArgs",
    "DistillationTransformArgs",
    "missing_teacher_message",
]

Auto = Literal["auto"]
MODES = ("pooled", "dense", "both")
#: Bounds of the automatic queue: at least 16 keys, at most LightlyTrain's 8192.
_MIN_QUEUE, _MAX_QUEUE = 16, 8192


def missing_teacher_message() -> str:
    """What to pass as the teacher: both forms, with examples."""
    return (
        "method='distillation' needs a teacher (method_args.teacher) and got none. "
        "Pass either a model object (Python API): method_args={'teacher': my_wrapper} with "
        "a model wrapper, an lt_core.EmbeddingModel or a torchvision/timm model (add "
        "'teacher_weights': 'big/exported_models/exported_last.pt' to load its weights), "
        "or a string: the out folder of an earlier run, e.g. method_args={'teacher': "
        "'out/dino_resnet50'} (CLI: method_args.teacher=out/dino_resnet50), or a model name "
        "with its weights, e.g. method_args={'teacher': 'torchvision/resnet50', "
        "'teacher_weights': 'resnet50.pt'}. Nothing is downloaded."
    )


@dataclass(kw_only=True)
class DistillationArgs:
    """Options of :class:`Distillation` (``method_args``).

    Attributes:
        teacher: The frozen network the student learns from. A model object (a model
            wrapper, an ``lt_core.EmbeddingModel``, or, through ``lt_train``, a torchvision
            or timm model) or a string that ``lt_train`` resolves: a model name
            (``"torchvision/resnet50"``) with ``teacher_weights``, the out folder of an
            earlier run, or that run's exported model or checkpoint file. Required; there is
            no default teacher (the peer downloads DINOv2 or DINOv3, we never download).
        teacher_weights: A state dict file for the teacher (our export
            ``exported_models/exported_last.pt`` or a checkpoint), resolved by ``lt_train``.
        teacher_args: Constructor arguments of a teacher given by model name.
        mode: The target. ``"pooled"``: the student's pooled embedding, projected to the
            teacher's dimension, matches the teacher's similarities to a queue of teacher
            embeddings (LightlyTrain's distillation v1). ``"dense"``: the student's
            unpooled feature map, projected per location and resized to the teacher's
            grid, regresses the teacher's map, L2-normalized per location (v2).
            ``"both"`` (default): the sum, ``pooled + dense_weight * dense``, a global and
            a local term as in the peer's default (v3).
        queue_size: Teacher embeddings kept as keys of the pooled target. Auto: the
            largest power of two at most half the dataset, within 16-8192 (the peer's
            buckets hold 25-50% of the dataset, at most 8192); 8192 for an unknown size.
        temperature: Softmax temperature of the pooled target (peer: 0.07).
        dense_weight: Weight of the dense term in ``mode="both"``.
        n_projection_layers: Linear layers of each student projection head (1: a linear
            map, the peer's default; more: hidden layers with LayerNorm and GELU).
        projection_hidden_dim: Width of the hidden layers when ``n_projection_layers > 1``.
        mixup: Mix each batch with a shuffled copy of itself (one weight drawn uniformly
            per batch) before teacher and student see it, as the peer does.
        lr_scale_method: How the trainer scales the base learning rate to the effective
            batch; the peer's ``"sqrt"``.
        reference_batch_size: Batch size the base learning rate is given for (peer: 1536).
    """

    teacher: Any = None
    teacher_weights: Any = None
    teacher_args: dict[str, Any] | None = None
    mode: Literal["pooled", "dense", "both"] = "both"
    queue_size: int | Auto | None = "auto"
    temperature: float = 0.07
    dense_weight: float = 1.0
    n_projection_layers: int = 1
    projection_hidden_dim: int = 2048
    mixup: bool = True
    lr_scale_method: Literal["linear", "sqrt"] = "sqrt"
    reference_batch_size: int = 1536

    def __post_init__(self) -> None:
        if self.queue_size is None:
            self.queue_size = "auto"
        t = self.teacher
        if t is not None and not isinstance(t, str | os.PathLike | nn.Module):
            raise ConfigTypeError(
                f"method_args.teacher must be a model object (nn.Module), a model name or a "
                f"path, got {type(t).__name__}: {t!r}."
            )
        if isinstance(t, os.PathLike):
            self.teacher = os.fspath(t)
        w = self.teacher_weights
        if w is not None:
            if not isinstance(w, str | os.PathLike):
                raise ConfigTypeError(
                    f"method_args.teacher_weights must be the path of a state dict file, got "
                    f"{type(w).__name__}: {w!r}."
                )
            self.teacher_weights = os.fspath(w)
        if self.mode not in MODES:
            raise ConfigError(
                f"method_args.mode must be one of {', '.join(map(repr, MODES))}, got {self.mode!r}."
            )
        if self.queue_size != "auto":
            check_int("method_args.queue_size", self.queue_size, 1)
        check_positive("method_args.temperature", self.temperature)
        if not self.dense_weight >= 0:
            raise ConfigError(f"method_args.dense_weight must be >= 0, got {self.dense_weight!r}.")
        check_int("method_args.n_projection_layers", self.n_projection_layers, 1)
        check_int("method_args.projection_hidden_dim", self.projection_hidden_dim, 1)
        check_lr_scaling(self.lr_scale_method, self.reference_batch_size)

    @property
    def pooled(self) -> bool:
        return self.mode in ("pooled", "both")

    @property
    def dense(self) -> bool:
        return self.mode in ("dense", "both")

    def resolve(
        self, num_images: int | None = None, total_steps: int | None = None
    ) -> DistillationArgs:
        """A copy with the automatic ``queue_size`` set from the dataset size.

        Raises:
            ConfigError: An explicit ``queue_size`` is not smaller than the dataset: the
                queue would hold the same images' embeddings twice.
        """
        queue = self.queue_size
        if queue == "auto":
            queue = _MAX_QUEUE
            if num_images is not None:
                power = 2 ** math.floor(math.log2(max(1.0, num_images / 2)))
                queue = min(_MAX_QUEUE, max(_MIN_QUEUE, power))
        elif num_images is not None and isinstance(queue, int) and queue >= num_images:
            raise ConfigError(
                f"method_args.queue_size={queue} must be smaller than the dataset "
                f"({num_images} images). Fix: queue_size='auto' or a smaller value."
            )
        return dataclasses.replace(self, queue_size=queue)


@dataclass(kw_only=True)
class DistillationRandomResizeArgs(RandomResizeArgs):
    """Random resized crop of the view: area 0.14-1 (LightlyTrain's distillation)."""

    min_scale: float = 0.14


@dataclass(kw_only=True)
class DistillationColorJitterArgs(ColorJitterArgs):
    """LightlyTrain's distillation jitter, p=0.8: strength 0.5 times (0.8, 0.8, 0.4, 0.2)."""

    strength: float = 0.5
    saturation: float = 0.4


@dataclass(kw_only=True)
class DistillationTransformArgs(MethodTransformArgs):
    """Options of the one view teacher and student share (``transform_args``); see
    :class:`MethodTransformArgs` for the keys.

    LightlyTrain's recipe: random resized crop (area 0.14-1), horizontal flip, color
    jitter (p=0.8, strength 0.5), grayscale (p=0.2). The peer also blurs every view with a
    sigma of 0-0.1 pixels, which changes no pixel noticeably (a 3-tap kernel's outer
    weights are below 1e-21 at sigma 0.1), so the default here is no blur.
    """

    random_resize: DistillationRandomResizeArgs | None = field(
        default_factory=DistillationRandomResizeArgs
    )
    color_jitter: DistillationColorJitterArgs | None = field(
        default_factory=DistillationColorJitterArgs
    )
    gaussian_blur: GaussianBlurArgs | None = None
