"""MoCo v2: contrastive learning against a queue of keys from a momentum encoder."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from lt_core import ConfigError, EmbeddingModel, ViewConfig
from lt_methods._byol import check_momenta, momentum_at
from lt_methods._checks import check_int, check_lr_scaling, check_positive
from lt_methods._ema import auto_momentum, forward_views, frozen_copy, update_ema
from lt_methods._method import Method
from lt_methods._queue import keep_in_state_dict
from lt_methods._registry import register_method
from lt_methods._transform_args import ColorJitterArgs, MethodTransformArgs, RandomResizeArgs

if TYPE_CHECKING:
    from lightly.loss import NTXentLoss  # type: ignore[import-untyped]
    from lightly.models.modules.heads import MoCoProjectionHead  # type: ignore[import-untyped]

__all__ = [
    "MoCoV2",
    "MoCoV2Args",
    "MoCoV2ColorJitterArgs",
    "MoCoV2RandomResizeArgs",
    "MoCoV2TransformArgs",
    "auto_queue_length",
]

Auto = Literal["auto"]

#: The paper's momentum of the key encoder (constant).
_PAPER_MOMENTUM = 0.999
#: The paper's queue (65536 keys) and the shortest automatic one.
_MAX_QUEUE = 65536
_MIN_QUEUE = 16
#: The automatic queue holds at most this fraction of the dataset's images in keys.
_QUEUE_FRACTION = 1 / 8


def auto_queue_length(num_images: int | None) -> int:
    """The automatic queue length: the largest power of two that is at most an eighth
    of ``num_images``, between 16 and the paper's 65536 (65536 when the size is unknown).

    The queue must stay far shorter than an epoch: keys stay in it for
    ``queue_length / keys_per_step`` steps, and a queue as long as the dataset holds a
    stale key of every image, including the current batch's own images, which then act
    as negatives of themselves. An eighth of the images (two keys per image with the
    symmetric loss: a sixteenth of an epoch) gives ImageNet the paper's 65536 and
    CIFAR-10 (50,000 images) 4096, the queue of lightly's CIFAR-10 benchmark. Powers of
    two are multiples of the usual batch sizes, so the queue wraps around whole batches.
    """
    if num_images is None:
        return _MAX_QUEUE
    target = max(1.0, num_images * _QUEUE_FRACTION)
    return int(min(_MAX_QUEUE, max(_MIN_QUEUE, 2 ** math.floor(math.log2(target)))))


@dataclass(kw_only=True)
class MoCoV2Args:
    """Options of :class:`MoCoV2` (``method_args``). ``"auto"`` and ``None`` both mean
    automatic.

    Attributes:
        hidden_dim: Width of the hidden layer of the MLP projection head (paper: 2048).
        output_dim: Dimension of the queries and keys (paper: 128).
        temperature: Softmax temperature of the InfoNCE loss (paper: 0.2).
        queue_length: Number of keys in the queue of negatives (paper: 65536). Auto: the
            largest power of two at most ``num_images / 8``, 16-65536 (see
            :func:`auto_queue_length`).
        momentum_start: Momentum of the key encoder at the first step. Auto: the paper's
            0.999 for runs of 10,000 steps and more, lower for shorter ones
            (``1 - 10 / total_steps``, at least 0.99) so the keys do not come from an
            encoder that barely left its random start. The paper's ablation trains well
            from 0.99 to 0.9999.
        momentum_end: Momentum at the last step, reached by a cosine. Auto: equal to
            ``momentum_start``, the paper's constant momentum; 1.0 gives the cosine
            schedule of BYOL and MoCo v3.
        symmetric_loss: Both views are queries and keys (the loss of each view's query
            against the other view's key, averaged), as in the MoCo v3 paper's "MoCo v2+"
            and solo-learn; ``False`` is the paper's single direction (query = first view,
            key = second view: half the key and query forward passes, half the signal).
        lr_scale_method: How the trainer scales the base learning rate to the effective
            batch: ``"linear"`` or ``"sqrt"``.
        reference_batch_size: Batch size the base learning rate is given for.
    """

    hidden_dim: int = 2048
    output_dim: int = 128
    temperature: float = 0.2
    queue_length: int | Auto | None = "auto"
    momentum_start: float | Auto | None = "auto"
    momentum_end: float | Auto | None = "auto"
    symmetric_loss: bool = True
    lr_scale_method: Literal["linear", "sqrt"] = "linear"
    reference_batch_size: int = 256

    def __post_init__(self) -> None:
        for key in ("queue_length", "momentum_start", "momentum_end"):
            if getattr(self, key) is None:
                setattr(self, key, "auto")
        check_int("method_args.hidden_dim", self.hidden_dim, 1)
        check_int("method_args.output_dim", self.output_dim, 1)
        check_positive("method_args.temperature", self.temperature)
        if self.queue_length != "auto":
            check_int("method_args.queue_length", self.queue_length, 1)  # type: ignore[arg-type]
        end = self.momentum_end
        check_momenta(self.momentum_start, 0.0 if end == "auto" else end)  # type: ignore[arg-type]
        check_lr_scaling(self.lr_scale_method, self.reference_batch_size)

    def resolve(self, num_images: int | None = None, total_steps: int | None = None) -> MoCoV2Args:
        """A copy with the automatic ``queue_length`` (from ``num_images``) and
        ``momentum_start`` and ``momentum_end`` (from ``total_steps``) set; ``None``
        picks the paper's values."""
        queue = self.queue_length
        if queue == "auto":
            queue = auto_queue_length(num_images)
        start = self.momentum_start
        if start == "auto":
            start = auto_momentum(_PAPER_MOMENTUM, total_steps)
        end = start if self.momentum_end == "auto" else self.momentum_end
        return dataclasses.replace(self, queue_length=queue, momentum_start=start, momentum_end=end)


@dataclass(kw_only=True)
class MoCoV2RandomResizeArgs(RandomResizeArgs):
    """Random resized crop of MoCo v2: area 0.2-1 (the reference code)."""

    min_scale: float = 0.2


@dataclass(kw_only=True)
class MoCoV2ColorJitterArgs(ColorJitterArgs):
    """MoCo v2's color jitter, p=0.8: brightness, contrast and saturation 0.4, hue 0.1,
    written as strength 0.5 times (0.8, 0.8, 0.8, 0.2)."""

    strength: float = 0.5


@dataclass(kw_only=True)
class MoCoV2TransformArgs(MethodTransformArgs):
    """Options of MoCo v2's two views (``transform_args``), its "aug+" recipe: both views
    get a random resized crop (area 0.2-1), a flip, color jitter (p=0.8: 0.4, 0.4, 0.4,
    0.1), grayscale (p=0.2) and Gaussian blur (p=0.5, sigma 0.1-2 at 224 pixels). See
    :class:`MethodTransformArgs` for the keys."""

    random_resize: MoCoV2RandomResizeArgs | None = field(default_factory=MoCoV2RandomResizeArgs)
    color_jitter: MoCoV2ColorJitterArgs | None = field(default_factory=MoCoV2ColorJitterArgs)


@register_method
class MoCoV2(Method):
    """MoCo v2: "Momentum Contrast for Unsupervised Visual Representation Learning", He,
    Fan, Wu, Xie and Girshick, CVPR 2020 (https://arxiv.org/abs/1911.05722), with the
    improvements of "Improved Baselines with Momentum Contrastive Learning", Chen, Fan,
    Girshick and He, 2020 (https://arxiv.org/abs/2003.04297): an MLP projection head,
    blur in the views and a cosine learning-rate schedule (the trainer's default).

    The query encoder (the embedding model and an MLP head) is trained so that each
    query matches the key of the other view of its image, computed by the key encoder
    (an exponential moving average of the query encoder), against a queue of keys from
    earlier batches as negatives: InfoNCE, lightly's ``NTXentLoss`` with its memory bank.
    With ``symmetric_loss`` both views are queries and keys; the two directions share
    one lookup of the queue, and then both keys of each image enter it.

    Distributed: the loss gathers the keys of all processes before they enter the queue
    (lightly's memory bank with ``gather_distributed=True``), so every process holds
    the same queue and the negatives span the global batch. The queue is part of the
    state dict, so a resumed run continues with the same negatives. Shuffle-BN is not
    applied: on one process it changes nothing (the key encoder's batch statistics come
    from the same images in any order), and like lightly's examples and benchmark we
    do not shuffle across processes either; the projection head has no batch norm.

    Export: :meth:`embedding_model` is the query encoder, the one the paper evaluates.

    Default optimizer for CNNs: LARS with trust coefficient 0.02 (``optim_args.
    trust_coefficient``), base lr 0.3 per 256 images, weight decay 1e-4, as for VICReg.
    On the quality benchmark's split (10 epochs) it scored 39.4% kNN against 38.1% for SGD
    at lr 0.12 and weight decay 5e-4 (lightly's CIFAR-10 benchmark settings, the previous
    default). The paper's SGD at 0.03 and 1e-4 at batch 256 was tuned for 200 ImageNet
    epochs. ViTs: MoCo v3's recipe (AdamW, lr 1.5e-4 per 256 images, weight decay 0.1).

    Shapes: ``views`` is two ``(B, 3, H, W)`` tensors; the embeddings are
    ``(B, embed_dim)``, queries and keys ``(B, output_dim)``, the queue
    ``(queue_length, output_dim)``.
    """

    name: ClassVar[str] = "mocov2"
    Args: ClassVar[type] = MoCoV2Args
    TransformArgs: ClassVar[type] = MoCoV2TransformArgs
    default_optimizer: ClassVar[str] = "lars"
    default_lr: ClassVar[float] = 0.3
    default_weight_decay: ClassVar[float] = 1e-4
    vit_defaults: ClassVar[tuple[str, float, float] | None] = ("adamw", 1.5e-4, 0.1)

    args: MoCoV2Args
    transform_args: MoCoV2TransformArgs

    def __init__(
        self,
        model: EmbeddingModel,
        args: MoCoV2Args | dict[str, Any] | None = None,
        transform_args: MoCoV2TransformArgs | dict[str, Any] | None = None,
    ) -> None:
        super().__init__(model, args, transform_args)
        from lightly.loss import NTXentLoss
        from lightly.models.modules.heads import MoCoProjectionHead

        a = self.args
        self.projection_head: MoCoProjectionHead = MoCoProjectionHead(
            input_dim=model.embed_dim, hidden_dim=a.hidden_dim, output_dim=a.output_dim
        )
        self.key_model: EmbeddingModel = frozen_copy(model, "MoCo v2")
        self.key_projection_head: MoCoProjectionHead = frozen_copy(self.projection_head, "MoCo v2")
        self.criterion: NTXentLoss = NTXentLoss(
            temperature=a.temperature,
            memory_bank_size=(a.queue_length, a.output_dim),
            gather_distributed=True,
        )
        keep_in_state_dict(self.criterion.memory_bank)

    @property
    def queue(self) -> Tensor:
        """The keys of earlier batches, ``(queue_length, output_dim)``, unit length."""
        bank: Tensor = self.criterion.memory_bank.bank
        return bank

    @classmethod
    def view_recipe(cls, transform_args: MoCoV2TransformArgs) -> list[ViewConfig]:
        """One group of two identically augmented views at ``image_size``."""
        t = transform_args
        return [t.image_views(2)]

    def training_step(
        self, views: list[Tensor], step: int, max_steps: int, steps_per_epoch: int
    ) -> dict[str, Tensor]:
        """InfoNCE of the queries against their keys and the queue; then the keys enter
        the queue (only when the loss is computed with gradients).

        Returns ``"loss"`` and the ``"ema_momentum"`` that the key-encoder update after
        this step uses.
        """
        if len(views) != 2:
            raise ConfigError(
                f"MoCo v2 expects 2 views per batch (its view recipe), got {len(views)}."
            )
        key_views = views if self.args.symmetric_loss else views[1:]
        query_views = views if self.args.symmetric_loss else views[:1]
        queries = forward_views(self.model, self.projection_head, query_views)
        with torch.no_grad():
            keys = forward_views(self.key_model, self.key_projection_head, key_views)
        # Each query is paired with the key of the other view of its image.
        loss = self.criterion(torch.cat(queries), torch.cat(keys[::-1]))
        m = self.ema_momentum(step, max_steps)
        return {"loss": loss, "ema_momentum": loss.new_tensor(m).detach()}

    def ema_momentum(self, step: int, max_steps: int) -> float:
        """Momentum of the key encoder at ``step``: cosine from ``momentum_start`` to
        ``momentum_end`` (by default equal: constant)."""
        a = self.args
        end = a.momentum_end
        if not isinstance(end, float | int):
            raise ConfigError(f"method_args.momentum_end is still {end!r}; resolve it first.")
        return momentum_at(a.momentum_start, float(end), step, max_steps)

    def ema_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """The query encoder's embedding model and head with the key encoder's."""
        return [(self.model, self.key_model), (self.projection_head, self.key_projection_head)]

    @torch.no_grad()
    def on_after_optimizer_step(self, step: int, max_steps: int) -> None:
        """Move the key encoder toward the query encoder: ``k = m * k + (1 - m) * q``."""
        update_ema(self.ema_pairs(), self.ema_momentum(step, max_steps))

    def embedding_model(self) -> EmbeddingModel:
        """The query encoder's embedding model, which the paper evaluates."""
        return self.model
