"""MoCo v3: symmetric contrastive learning with a momentum encoder and in-batch negatives."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from lt_core import ConfigError, EmbeddingModel, ViewConfig
from lt_methods._byol import BYOLTransformArgs, check_momenta, momentum_at
from lt_methods._checks import check_int, check_lr_scaling, check_positive
from lt_methods._ema import forward_views, frozen_copy, update_ema
from lt_methods._method import Method
from lt_methods._registry import register_method
from lt_methods._transform_args import RandomResizeArgs

if TYPE_CHECKING:
    from lightly.models.modules.heads import ProjectionHead  # type: ignore[import-untyped]

__all__ = ["MoCoV3", "MoCoV3Args", "MoCoV3RandomResizeArgs", "MoCoV3TransformArgs"]


@dataclass(kw_only=True)
class MoCoV3Args:
    """Options of :class:`MoCoV3` (``method_args``).

    Attributes:
        hidden_dim: Width of the hidden layers of the projection head and the predictor
            (paper: 4096).
        output_dim: Dimension of the projections and predictions (paper: 256).
        num_layers: Linear layers of the projection head: 2 in the reference code for
            ResNets (the default), 3 for ViTs.
        prediction_last_batch_norm: Batch norm (without affine parameters) after the
            predictor's last layer: off in the reference code for ResNets (the
            default), on for ViTs. The projection head always ends with one.
        temperature: Softmax temperature of the contrastive loss. The paper uses 0.2 for
            ViTs and its code 1.0 for ResNets at batch 4096; 0.2 is the default here for
            both (solo-learn's CIFAR setting): the sharper softmax weights the few hard
            negatives of a small batch more.
        momentum_start: Momentum of the momentum encoder at the first step (paper: 0.99,
            which already suits short runs).
        momentum_end: Momentum at the last step, reached by a cosine (paper: 1.0).
        lr_scale_method: How the trainer scales the base learning rate to the effective
            batch: ``"linear"`` or ``"sqrt"``.
        reference_batch_size: Batch size the base learning rate is given for.
    """

    hidden_dim: int = 4096
    output_dim: int = 256
    num_layers: int = 2
    prediction_last_batch_norm: bool = False
    temperature: float = 0.2
    momentum_start: float = 0.99
    momentum_end: float = 1.0
    lr_scale_method: Literal["linear", "sqrt"] = "linear"
    reference_batch_size: int = 256

    def __post_init__(self) -> None:
        check_int("method_args.hidden_dim", self.hidden_dim, 1)
        check_int("method_args.output_dim", self.output_dim, 1)
        check_int("method_args.num_layers", self.num_layers, 2)
        check_positive("method_args.temperature", self.temperature)
        check_momenta(self.momentum_start, self.momentum_end)
        check_lr_scaling(self.lr_scale_method, self.reference_batch_size)


@dataclass(kw_only=True)
class MoCoV3RandomResizeArgs(RandomResizeArgs):
    """Random resized crop of MoCo v3: area 0.2-1 (its ResNet configs; ViTs: 0.08-1)."""

    min_scale: float = 0.2


@dataclass(kw_only=True)
class MoCoV3TransformArgs(BYOLTransformArgs):
    """Options of MoCo v3's two views (``transform_args``): BYOL's asymmetric pair (first
    view always blurred; second view blurred with p=0.1 and solarized with p=0.2) with
    a crop of area 0.2-1. See :class:`BYOLTransformArgs` for the keys."""

    random_resize: MoCoV3RandomResizeArgs | None = field(default_factory=MoCoV3RandomResizeArgs)


@register_method
class MoCoV3(Method):
    """MoCo v3, "An Empirical Study of Training Self-Supervised Vision Transformers",
    Chen, Xie and He, ICCV 2021 (https://arxiv.org/abs/2104.02057).

    Both views go through the base encoder (the embedding model, a projection head and a
    predictor) and through the momentum encoder (an exponential moving average of the
    embedding model and projection head). Each view's prediction must pick out the
    momentum encoder's projection of the other view of its image among those of all
    images in the batch: ``ctr(q1, k2) + ctr(q2, k1)``, with ``ctr`` the InfoNCE loss
    scaled by ``2 * temperature`` as in the paper. No queue: under
    ``torch.distributed`` the keys of all processes are gathered, so the negatives span
    the global batch (as SimCLR's).

    EMA: the momentum rises with a cosine from ``momentum_start`` (0.99) to
    ``momentum_end`` (1.0) over the run.

    Export: :meth:`embedding_model` is the base encoder (the embedding model without its
    heads), the one the paper evaluates (its linear evaluation loads the base encoder).

    Default optimizer: SGD with momentum, base lr 0.12 per 256 images and weight decay
    5e-4, as for our SimCLR and BYOL. The paper trains ResNets with LARS (lr 0.6 per 256
    images for 100 epochs, weight decay 1e-6) at batch 4096, which gives very small
    updates at the small batches of one GPU or a CPU. ViTs: the paper's AdamW, lr 1.5e-4
    per 256 images, weight decay 0.1.

    Shapes: ``views`` is two ``(B, 3, H, W)`` tensors; the embeddings are
    ``(B, embed_dim)``, projections and predictions ``(B, output_dim)``.
    """

    name: ClassVar[str] = "mocov3"
    Args: ClassVar[type] = MoCoV3Args
    TransformArgs: ClassVar[type] = MoCoV3TransformArgs
    default_optimizer: ClassVar[str] = "sgd"
    default_lr: ClassVar[float] = 0.12
    default_weight_decay: ClassVar[float] = 5e-4
    vit_defaults: ClassVar[tuple[str, float, float] | None] = ("adamw", 1.5e-4, 0.1)
    # In-batch negatives need a second image; the keys are gathered over processes.
    min_batch_size: ClassVar[int] = 2
    gathers_batch: ClassVar[bool] = True

    args: MoCoV3Args
    transform_args: MoCoV3TransformArgs

    def __init__(
        self,
        model: EmbeddingModel,
        args: MoCoV3Args | dict[str, Any] | None = None,
        transform_args: MoCoV3TransformArgs | dict[str, Any] | None = None,
    ) -> None:
        super().__init__(model, args, transform_args)
        a = self.args
        self.projection_head: ProjectionHead = _mlp(
            a.num_layers, model.embed_dim, a.hidden_dim, a.output_dim, last_batch_norm=True
        )
        self.prediction_head: ProjectionHead = _mlp(
            2, a.output_dim, a.hidden_dim, a.output_dim, a.prediction_last_batch_norm
        )
        self.momentum_model: EmbeddingModel = frozen_copy(model, "MoCo v3")
        self.momentum_projection_head: ProjectionHead = frozen_copy(self.projection_head, "MoCo v3")

    @classmethod
    def view_recipe(cls, transform_args: MoCoV3TransformArgs) -> list[ViewConfig]:
        """The first view (always blurred), then the second (rarely blurred, sometimes
        solarized), one view each at ``image_size``."""
        return transform_args.asymmetric_pair()

    def training_step(
        self, views: list[Tensor], step: int, max_steps: int, steps_per_epoch: int
    ) -> dict[str, Tensor]:
        """Symmetric MoCo v3 loss of the batch.

        Returns ``"loss"`` and the ``"ema_momentum"`` that the momentum-encoder update
        after this step uses.
        """
        if len(views) != 2:
            raise ConfigError(
                f"MoCo v3 expects 2 views per batch (its view recipe), got {len(views)}."
            )
        head = nn.Sequential(self.projection_head, self.prediction_head)
        q0, q1 = forward_views(self.model, head, views)
        with torch.no_grad():
            k0, k1 = forward_views(self.momentum_model, self.momentum_projection_head, views)
        loss = self.contrastive_loss(q0, k1) + self.contrastive_loss(q1, k0)
        m = self.ema_momentum(step, max_steps)
        return {"loss": loss, "ema_momentum": loss.new_tensor(m).detach()}

    def contrastive_loss(self, queries: Tensor, keys: Tensor) -> Tensor:
        """InfoNCE of ``queries`` ``(B, D)`` against ``keys`` ``(B, D)`` of the same images
        (row ``i`` is the positive of query ``i``) and the keys of all processes as
        negatives, times ``2 * temperature``."""
        from lightly.models.utils import concat_all_gather  # type: ignore[import-untyped]

        t = self.args.temperature
        queries = nn.functional.normalize(queries, dim=1)
        keys = nn.functional.normalize(keys.detach(), dim=1)
        offset = 0
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            if torch.distributed.get_world_size() > 1:
                keys = concat_all_gather(keys.contiguous())
                offset = torch.distributed.get_rank() * queries.shape[0]
        logits = queries @ keys.T / t
        labels = torch.arange(queries.shape[0], device=queries.device) + offset
        return nn.functional.cross_entropy(logits, labels) * (2 * t)

    def ema_momentum(self, step: int, max_steps: int) -> float:
        """Momentum of the momentum encoder at ``step``: cosine from ``momentum_start`` to
        ``momentum_end`` over ``max_steps``."""
        return momentum_at(self.args.momentum_start, self.args.momentum_end, step, max_steps)

    def ema_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """The base embedding model and projection head with the momentum encoder's."""
        return [
            (self.model, self.momentum_model),
            (self.projection_head, self.momentum_projection_head),
        ]

    @torch.no_grad()
    def on_after_optimizer_step(self, step: int, max_steps: int) -> None:
        """Move the momentum encoder toward the base encoder."""
        update_ema(self.ema_pairs(), self.ema_momentum(step, max_steps))

    def embedding_model(self) -> EmbeddingModel:
        """The base encoder's embedding model, which the paper evaluates."""
        return self.model


def _mlp(
    num_layers: int, input_dim: int, hidden_dim: int, output_dim: int, last_batch_norm: bool
) -> ProjectionHead:
    """MoCo v3's MLP from lightly's ``ProjectionHead`` blocks: linear layers without bias,
    batch norm and ReLU after each hidden layer, and optionally a batch norm without
    affine parameters after the last (lightly 1.6 has no MoCo v3 heads)."""
    from lightly.models.modules.heads import ProjectionHead

    blocks: list[tuple[int, int, nn.Module | None, nn.Module | None, bool]] = []
    for i in range(num_layers - 1):
        dim = input_dim if i == 0 else hidden_dim
        blocks.append((dim, hidden_dim, nn.BatchNorm1d(hidden_dim), nn.ReLU(), False))
    last_in = input_dim if num_layers == 1 else hidden_dim
    last_norm = nn.BatchNorm1d(output_dim, affine=False) if last_batch_norm else None
    blocks.append((last_in, output_dim, last_norm, None, False))
    return ProjectionHead(blocks)
