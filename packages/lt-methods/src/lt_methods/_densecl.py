"""DenseCL: MoCo v2 plus a contrastive loss between corresponding feature-map locations."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lt_core import ConfigError, EmbeddingModel, ViewConfig
from lt_methods._densecl_args import DenseCLArgs, DenseCLTransformArgs, resolved
from lt_methods._method import Method
from lt_methods._queue import memory_bank
from lt_methods._registry import register_method

if TYPE_CHECKING:
    from lightly.models.modules.heads import DenseCLProjectionHead  # type: ignore[import-untyped]
    from lightly.models.modules.memory_bank import MemoryBankModule  # type: ignore[import-untyped]

__all__ = ["DenseCL", "info_nce"]


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
    * dense`` with ``lambda = method_args.lambda_``, 0 during ``dense_warmup_steps``.

    Why matching by similarity rather than by the crop geometry: it is the paper's rule;
    it needs nothing from the view pipeline, so it also holds for rotations and your own
    ``augment`` pipelines, whose geometry the trainer does not know; and with the usual
    overlap of two crops (area 0.2-1 each) many query locations have no geometric
    counterpart in the other view at all, while the most similar location always exists.

    The dense loss needs a feature map of at least 2x2 locations; a 1x1 map (a stride-32
    network such as torchvision's ResNet-18 on 32-pixel images) fails at the first step
    with what to change. At least 4x4 is recommended: 128 pixels for stride 32, or a
    CIFAR-stem network (stride 8) on 32-pixel images.

    Default optimizer: SGD with momentum 0.9, lr 0.1 per 256 images and weight decay 1e-4
    (the paper's). The paper's lr is 0.03 for 200 ImageNet epochs and 0.3 for 800 COCO
    epochs; 0.1 lies between them, is LightlyTrain's DenseCL default and close to lightly's
    CIFAR-10 MoCo benchmark (0.12 per 256): the short runs on small data this trainer
    expects need a larger step than 200 ImageNet epochs. For vision transformers: AdamW, lr
    1.5e-4 per 256 images, weight decay 0.1, MoCo v3's ViT recipe (the DenseCL paper has
    no ViT).

    Exported network: the query encoder, which the paper transfers. Under
    ``torch.distributed`` the key encoder's batch is shuffled over the processes (MoCo's
    shuffled batch norm) and each queue takes the keys of all processes
    (``gather_distributed``); on one process batch norm sees the same images in both
    encoders, as in any single-GPU MoCo.

    Shapes: ``views`` is two ``(B, 3, H, W)`` tensors; the embedding model gives ``(B,
    D)`` pooled and ``(B, D, h, w)`` dense; the heads give ``(B, output_dim)`` and ``(B,
    h * w, output_dim)``; each queue is ``(memory_bank_size, output_dim)``.
    """

    name: ClassVar[str] = "densecl"
    Args: ClassVar[type] = DenseCLArgs
    TransformArgs: ClassVar[type] = DenseCLTransformArgs
    default_optimizer: ClassVar[str] = "sgd"
    default_lr: ClassVar[float] = 0.1
    default_weight_decay: ClassVar[float] = 1e-4
    vit_defaults: ClassVar[tuple[str, float, float] | None] = ("adamw", 1.5e-4, 0.1)
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
        size = (resolved(a.memory_bank_size, "memory_bank_size"), a.output_dim)
        self.global_queue: MemoryBankModule = memory_bank(size, a.gather_distributed)
        self.dense_queue: MemoryBankModule = memory_bank(size, a.gather_distributed)

    @classmethod
    def view_recipe(cls, transform_args: DenseCLTransformArgs) -> list[ViewConfig]:
        """One group of two identically augmented views at ``image_size`` (query, key)."""
        t = transform_args
        return [t.image_views(2)]

    def training_step(
        self, views: list[Tensor], step: int, max_steps: int, steps_per_epoch: int
    ) -> dict[str, Tensor]:
        """The weighted global and dense InfoNCE losses; also returns both losses, the
        weight ``lambda_`` used at this step (``dense_loss_weight``) and the
        ``ema_momentum`` of the key-encoder update after this step."""
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
            "ema_momentum": loss.new_tensor(self.ema_momentum(step, max_steps)).detach(),
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
        k = F.normalize(self.key_global_head(pooled), dim=1)
        k_dense = self.key_dense_head(k_map)
        if distributed:
            k, k_map, k_dense = (
                batch_unshuffle(o.contiguous(), shuffle, distributed=True)
                for o in (k, k_map, k_dense)
            )
        return k, k_map, k_dense

    def check_feature_map(self, dense: Tensor) -> None:
        """Fail on a 1x1 map while the dense loss is on: it has no locations to match."""
        h, w = dense.shape[-2:]
        if h * w < 2 and self.args.lambda_ > 0:
            raise ConfigError(
                f"DenseCL's dense loss needs a feature map of at least 2 locations, but the "
                f"model gives a {h}x{w} map for {tuple(self.transform_args.image_size)} "
                "views, where the dense loss is meaningless. Use larger images "
                "(transform_args.image_size; a stride-32 network such as torchvision's "
                "ResNet-18 needs at least 64 px, 128+ recommended), a model with a smaller "
                "output stride (a CIFAR-stem ResNet gives 4x4 at 32 px), or "
                "method_args.lambda_=0 (MoCo v2, global loss only)."
            )

    def dense_weight(self, step: int) -> float:
        """``lambda_`` at ``step``: 0 during the warm-up, then ``method_args.lambda_``."""
        warmup = resolved(self.args.dense_warmup_steps, "dense_warmup_steps")
        return 0.0 if step < warmup else self.args.lambda_

    def ema_momentum(self, step: int, max_steps: int) -> float:
        """EMA momentum of the key encoder at ``step``: cosine from ``momentum_start`` to
        ``momentum_end`` over ``max_steps`` (constant when they are equal, the default)."""
        from lightly.utils.scheduler import cosine_schedule  # type: ignore[import-untyped]

        start = resolved(self.args.momentum_start, "momentum_start")
        end = resolved(self.args.momentum_end, "momentum_end")
        return float(cosine_schedule(min(step, max_steps), max_steps, start, end))

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

        m = self.ema_momentum(step, max_steps)
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

    lightly's ``NTXentLoss(memory_bank_size=...)`` computes the same for the global loss,
    but it enqueues its own positives and keeps its queue out of the ``state_dict``; the
    dense loss queues one key per image, not its positives. Both losses therefore use
    this function with two of lightly's ``MemoryBankModule`` (see ``lt_methods._queue``).
    """
    query = query.float()
    positive = (query * key.float()).sum(dim=1, keepdim=True)
    logits = torch.cat([positive, query @ negatives.float().T], dim=1) / temperature
    labels = torch.zeros(len(logits), dtype=torch.long, device=logits.device)
    return F.cross_entropy(logits, labels)
