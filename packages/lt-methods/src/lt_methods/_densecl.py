"""DenseCL: MoCo v2 plus a contrastive loss between corresponding feature-map locations."""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lt_core import ConfigError, EmbeddingModel, ViewConfig
from lt_methods._checks import check_int, check_lr_scaling, check_positive, check_range
from lt_methods._method import Method
from lt_methods._registry import register_method
from lt_methods._transform_args import ColorJitterArgs, MethodTransformArgs, RandomResizeArgs

if TYPE_CHECKING:
    from lightly.models.modules.heads import DenseCLProjectionHead  # type: ignore[import-untyped]
    from lightly.models.modules.memory_bank import MemoryBankModule  # type: ignore[import-untyped]

__all__ = ["DenseCL", "DenseCLArgs", "DenseCLTransformArgs"]

Auto = Literal["auto"]

#: The paper's queue (65536 keys for ImageNet's 1.28M images) and the largest share of the
#: dataset an automatic queue may hold.
_MAX_QUEUE = 65536
_QUEUE_FRACTION = 0.1
#: The paper's key-encoder momentum, and the lowest automatic one (short runs).
_MOMENTUM, _MIN_MOMENTUM = 0.999, 0.99
#: The reference code's warm-up: dense loss off for the first 1000 iterations.
_DENSE_WARMUP_STEPS = 1000


@dataclass(kw_only=True)
class DenseCLArgs:
    """Options of :class:`DenseCL` (``method_args``). ``"auto"`` and ``None`` both mean
    automatic (``None`` is stored as ``"auto"``); :meth:`resolve` sets them.

    Attributes:
        hidden_dim: Hidden width of the global and the dense projection head (paper: 2048).
        output_dim: Dimension of the projections and of the queued keys (paper: 128).
        temperature: Temperature of both InfoNCE losses (paper, as MoCo v2: 0.2).
        queue_length: Keys in each of the two queues (negatives). Auto: the paper's 65536,
            but at most a tenth of the dataset, rounded down to a power of two (4096 for
            CIFAR-10's 50,000 images): a queue holding much of the dataset holds older keys
            of the query's own image as negatives.
        dense_loss_weight: ``lambda`` of ``(1 - lambda) * global + lambda * dense``
            (paper: 0.5); 0 trains MoCo v2.
        dense_warmup_steps: Optimizer steps at the start with ``lambda = 0`` (global loss
            only), while the features that pick the corresponding locations are still
            random. Auto: the reference code's 1000 steps, at most a tenth of the run.
        momentum: EMA momentum of the key encoder, constant as in the paper. Auto: the
            paper's 0.999, lowered for short runs to ``1 - 10 / total_steps`` (the key
            encoder averages over about a tenth of the run) but not below 0.99, which MoCo's
            ablation still finds close to 0.999.
        lr_scale_method: How the trainer scales the base learning rate to the effective
            batch: ``"linear"`` or ``"sqrt"`` (see :class:`lt_methods.SimCLRArgs`).
        reference_batch_size: Batch size the base learning rate is given for.
    """

    hidden_dim: int = 2048
    output_dim: int = 128
    temperature: float = 0.2
    queue_length: int | Auto | None = "auto"
    dense_loss_weight: float = 0.5
    dense_warmup_steps: int | Auto | None = "auto"
    momentum: float | Auto | None = "auto"
    lr_scale_method: Literal["linear", "sqrt"] = "linear"
    reference_batch_size: int = 256

    def __post_init__(self) -> None:
        for key in ("queue_length", "dense_warmup_steps", "momentum"):
            if getattr(self, key) is None:
                setattr(self, key, "auto")
        check_int("method_args.hidden_dim", self.hidden_dim, 1)
        check_int("method_args.output_dim", self.output_dim, 1)
        check_positive("method_args.temperature", self.temperature)
        if self.queue_length != "auto":
            check_int("method_args.queue_length", self.queue_length, 1)  # type: ignore[arg-type]
        check_range("method_args.dense_loss_weight", self.dense_loss_weight, 0.0, 1.0)
        if self.dense_warmup_steps != "auto":
            check_int("method_args.dense_warmup_steps", self.dense_warmup_steps, 0)  # type: ignore[arg-type]
        if self.momentum != "auto":
            check_range("method_args.momentum", self.momentum, 0.0, 1.0)  # type: ignore[arg-type]
        check_lr_scaling(self.lr_scale_method, self.reference_batch_size)

    def resolve(
        self, num_images: int | None = None, total_steps: int | None = None
    ) -> DenseCLArgs:
        """A copy with ``queue_length``, ``dense_warmup_steps`` and ``momentum`` set from
        the dataset size and the run length; ``None`` for either picks the paper's value."""
        queue = self.queue_length
        if queue == "auto":
            queue = _MAX_QUEUE
            if num_images is not None:
                cap = max(1, int(num_images * _QUEUE_FRACTION))
                queue = min(_MAX_QUEUE, 1 << (cap.bit_length() - 1))
        warmup = self.dense_warmup_steps
        if warmup == "auto":
            warmup = _DENSE_WARMUP_STEPS
            if total_steps is not None:
                warmup = min(warmup, int(total_steps * 0.1))
        momentum = self.momentum
        if momentum == "auto":
            momentum = _MOMENTUM
            if total_steps is not None and total_steps > 0:
                momentum = round(min(_MOMENTUM, max(_MIN_MOMENTUM, 1 - 10 / total_steps)), 6)
        return dataclasses.replace(
            self, queue_length=queue, dense_warmup_steps=warmup, momentum=momentum
        )


@dataclass(kw_only=True)
class DenseCLRandomResizeArgs(RandomResizeArgs):
    """MoCo v2's crop: area 0.2-1."""

    min_scale: float = 0.2


@dataclass(kw_only=True)
class DenseCLColorJitterArgs(ColorJitterArgs):
    """MoCo v2's color jitter, p=0.8: brightness, contrast, saturation 0.4, hue 0.1,
    written as strength 0.5 times (0.8, 0.8, 0.8, 0.2)."""

    strength: float = 0.5


@dataclass(kw_only=True)
class DenseCLTransformArgs(MethodTransformArgs):
    """Options of DenseCL's two views (``transform_args``), MoCo v2's recipe as in the
    paper: crop area 0.2-1, color jitter 0.4/0.4/0.4/0.1 (p=0.8), grayscale (p=0.2),
    Gaussian blur (p=0.5, sigma 0.1-2 pixels at 224 pixels), horizontal flip. See
    :class:`MethodTransformArgs` for the keys."""

    random_resize: DenseCLRandomResizeArgs | None = field(
        default_factory=DenseCLRandomResizeArgs
    )
    color_jitter: DenseCLColorJitterArgs | None = field(default_factory=DenseCLColorJitterArgs)


@register_method
class DenseCL(Method):
    """DenseCL, "Dense Contrastive Learning for Self-Supervised Visual Pre-Training", Wang,
    Zhang, Shen, Kong and Li, CVPR 2021 (https://arxiv.org/abs/2011.09157).

    MoCo v2 with a second, dense loss. A query encoder (the embedding model) sees view 0, a
    key encoder (its EMA) sees view 1. Globally, the query's projection of the pooled
    embedding is pulled to the key's and pushed from a queue of earlier keys (InfoNCE).
    Densely, the embedded *unpooled* map (``EmbeddingModel.forward_global_and_dense``: one
    ``forward_features`` call, ``forward_pool`` only for the global branch) goes through a
    dense head at every location; each query location's positive is the key location
    whose embedding is most similar (cosine, argmax; lightly's ``select_most_similar``),
    and its negatives are a second queue holding one key per earlier image (the mean of its
    dense projections), as in the reference code. ``loss = (1 - lambda) * global + lambda
    * dense``, ``lambda = 0`` during ``dense_warmup_steps``.

    Why matching by similarity rather than by the crop geometry: it is the paper's rule;
    it needs nothing from the view pipeline, so it also holds for rotations and your own
    ``augment`` pipelines, whose geometry the trainer does not know; and with the usual
    overlap of two crops (area 0.2-1 each) many query locations have no geometric
    counterpart in the other view at all, while the most similar location always exists.

    The dense loss needs a feature map of at least 2x2 locations; a 1x1 map (a stride-32
    network such as torchvision's ResNet-18 on 32-pixel images) fails at the first step
    with what to change. At least 4x4 is recommended: 128 pixels for stride 32, or a
    CIFAR-stem network (stride 8) on 32-pixel images.

    Default optimizer: SGD with momentum, lr 0.03 per 256 images and weight decay 1e-4,
    the paper's (and MoCo v2's) values. Exported network: the query encoder, which the
    paper transfers. Under ``torch.distributed`` the key encoder's batch is shuffled over
    the processes (MoCo's shuffled batch norm) and each queue takes the keys of all
    processes; on one process batch norm sees the same images in both encoders.

    Shapes: ``views`` is two ``(B, 3, H, W)`` tensors; the embedding model gives ``(B,
    D)`` pooled and ``(B, D, h, w)`` dense; the heads give ``(B, output_dim)`` and ``(B,
    h * w, output_dim)``; each queue is ``(queue_length, output_dim)``.
    """

    name: ClassVar[str] = "densecl"
    Args: ClassVar[type] = DenseCLArgs
    TransformArgs: ClassVar[type] = DenseCLTransformArgs
    default_optimizer: ClassVar[str] = "sgd"
    default_lr: ClassVar[float] = 0.03
    default_weight_decay: ClassVar[float] = 1e-4
    min_batch_size: ClassVar[int] = 1  # negatives come from the queues

    args: DenseCLArgs
    transform_args: DenseCLTransformArgs

    def __init__(
        self,
        model: EmbeddingModel,
        args: DenseCLArgs | dict[str, Any] | None = None,
        transform_args: DenseCLTransformArgs | dict[str, Any] | None = None,
    ) -> None:
        super().__init__(model, args, transform_args)
        from lightly.models.modules.heads import DenseCLProjectionHead
        from lightly.models.utils import deactivate_requires_grad  # type: ignore[import-untyped]

        a = self.args
        dims = (model.embed_dim, a.hidden_dim, a.output_dim)
        self.global_head: DenseCLProjectionHead = DenseCLProjectionHead(*dims)
        self.dense_head: DenseCLProjectionHead = DenseCLProjectionHead(*dims)
        self.key_model: EmbeddingModel = copy.deepcopy(model)
        self.key_global_head: DenseCLProjectionHead = copy.deepcopy(self.global_head)
        self.key_dense_head: DenseCLProjectionHead = copy.deepcopy(self.dense_head)
        for key_module in (self.key_model, self.key_global_head, self.key_dense_head):
            deactivate_requires_grad(key_module)
        size = (_resolved(a.queue_length, "queue_length"), a.output_dim)
        self.global_queue: MemoryBankModule = _queue(size)
        self.dense_queue: MemoryBankModule = _queue(size)

    @classmethod
    def view_recipe(cls, transform_args: DenseCLTransformArgs) -> list[ViewConfig]:
        """One group of two identically augmented views at ``image_size`` (query, key)."""
        t = transform_args
        return [
            t.view(
                size=t.image_size,
                num_views=2,
                random_resize=t.random_resize,
                gaussian_blur=t.gaussian_blur,
                solarize=t.solarize,
            )
        ]

    def training_step(
        self, views: list[Tensor], step: int, max_steps: int, steps_per_epoch: int
    ) -> dict[str, Tensor]:
        """The weighted global and dense InfoNCE losses; also returns both losses, the
        weight ``lambda`` used at this step and the key encoder's ``ema_momentum``."""
        from lightly.models.utils import select_most_similar

        if len(views) != 2:
            raise ConfigError(
                f"DenseCL expects 2 views per batch (query, key), got {len(views)} view(s)."
            )
        pooled, dense = self.model.forward_global_and_dense(views[0])
        weight = self.dense_weight(step)
        self.check_feature_map(dense)
        q = F.normalize(self.global_head(pooled), dim=1)  # (B, out)
        q_map = dense.flatten(2).transpose(1, 2)  # (B, hw, D)
        q_dense = F.normalize(self.dense_head(q_map), dim=2)  # (B, hw, out)
        with torch.no_grad():
            k, k_map, k_dense = self._keys(views[1])
            # Each query location's positive: the key location with the most similar
            # embedding (the paper uses the backbone features before the heads).
            k_matched = select_most_similar(q_map.detach(), k_map, F.normalize(k_dense, dim=2))
            k_image = F.normalize(k_dense.mean(dim=1), dim=1)  # one dense key per image
        update = q.requires_grad
        _, global_negatives = self.global_queue(k, update=update)
        _, dense_negatives = self.dense_queue(k_image, update=update)
        t = self.args.temperature
        loss_global = info_nce(q, k, global_negatives, t)
        loss_dense = info_nce(q_dense.flatten(0, 1), k_matched.flatten(0, 1), dense_negatives, t)
        loss = (1.0 - weight) * loss_global + weight * loss_dense  # both always in the graph
        return {
            "loss": loss,
            "loss_global": loss_global.detach(),
            "loss_dense": loss_dense.detach(),
            "dense_loss_weight": loss.new_tensor(weight).detach(),
            "ema_momentum": loss.new_tensor(self.ema_momentum()).detach(),
        }

    def _keys(self, view: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Key encoder outputs ``(normalized global key (B, out), map (B, hw, D), dense
        projections (B, hw, out))``, with MoCo's batch shuffle across processes."""
        from lightly.models.utils import batch_shuffle, batch_unshuffle

        distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
        distributed = distributed and torch.distributed.get_world_size() > 1
        if distributed:
            view, shuffle = batch_shuffle(view, distributed=True)
        pooled, dense = self.key_model.forward_global_and_dense(view)
        k_map = dense.flatten(2).transpose(1, 2)
        out = (F.normalize(self.key_global_head(pooled), dim=1), k_map, self.key_dense_head(k_map))
        if distributed:
            out = tuple(batch_unshuffle(o, shuffle, distributed=True) for o in out)  # type: ignore[assignment]
        return out

    def check_feature_map(self, dense: Tensor) -> None:
        """Fail on a 1x1 map while the dense loss is on: it has no locations to match."""
        h, w = dense.shape[-2:]
        if h * w < 2 and self.args.dense_loss_weight > 0:
            raise ConfigError(
                f"DenseCL's dense loss needs a feature map of at least 2 locations, but the "
                f"model gives a {h}x{w} map for {tuple(self.transform_args.image_size)} "
                "views, where the dense loss is meaningless. Use larger images "
                "(transform_args.image_size; a stride-32 network such as torchvision's "
                "ResNet-18 needs at least 64 px, 128+ recommended), a model with a smaller "
                "output stride (a CIFAR-stem ResNet gives 4x4 at 32 px), or "
                "method_args.dense_loss_weight=0 (MoCo v2, global loss only)."
            )

    def dense_weight(self, step: int) -> float:
        """``lambda`` at ``step``: 0 during the warm-up, then ``dense_loss_weight``."""
        warmup = _resolved(self.args.dense_warmup_steps, "dense_warmup_steps")
        return 0.0 if step < warmup else self.args.dense_loss_weight

    def ema_momentum(self) -> float:
        """EMA momentum of the key encoder (constant)."""
        return float(_resolved(self.args.momentum, "momentum"))

    def ema_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """The query encoder and both heads with their key (EMA) copies."""
        return [
            (self.model, self.key_model),
            (self.global_head, self.key_global_head),
            (self.dense_head, self.key_dense_head),
        ]

    @torch.no_grad()
    def on_after_optimizer_step(self, step: int, max_steps: int) -> None:
        """Move the key encoder toward the query encoder: ``k = m * k + (1 - m) * q``."""
        from lightly.models.utils import update_momentum

        m = self.ema_momentum()
        for query, key in self.ema_pairs():
            update_momentum(query, key, m)


def info_nce(query: Tensor, key: Tensor, negatives: Tensor, temperature: float) -> Tensor:
    """MoCo's InfoNCE: ``-log softmax`` of the positive among ``[q.k, q.n_1, ...]`` over
    the temperature, averaged over the rows.

    Args:
        query: ``(N, C)``, L2-normalized.
        key: ``(N, C)``, L2-normalized, the positive of each row.
        negatives: ``(K, C)``, L2-normalized, shared by all rows.
        temperature: Softmax temperature.
    """
    query = query.float()
    positive = (query * key.float()).sum(dim=1, keepdim=True)
    logits = torch.cat([positive, query @ negatives.float().T], dim=1) / temperature
    labels = torch.zeros(len(logits), dtype=torch.long, device=logits.device)
    return F.cross_entropy(logits, labels)


def _queue(size: tuple[int, int]) -> MemoryBankModule:
    """lightly's memory bank (random unit keys at first, the keys of all processes
    enqueued), with its keys and pointer in the ``state_dict`` so that a resumed run
    continues with the same negatives (lightly leaves them out)."""
    from lightly.models.modules.memory_bank import MemoryBankModule

    bank = MemoryBankModule(size=size, gather_distributed=True, feature_dim_first=False)
    for name in ("bank", "bank_ptr"):
        bank.register_buffer(name, getattr(bank, name), persistent=True)
    return bank


def _resolved(value: Any, name: str) -> Any:
    if value is None or isinstance(value, str):
        raise ConfigError(
            f"method_args.{name} is still {value!r}; resolve the options first "
            "(Method.resolve_args, which a method built directly calls itself)."
        )
    return value
