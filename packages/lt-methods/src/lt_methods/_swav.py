"""SwAV: swapped prediction of online cluster assignments over multi-crop views."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.distributed as dist
from torch import Tensor, nn

from lt_core import ConfigError, EmbeddingModel, ViewConfig
from lt_methods._dino_args import resolved
from lt_methods._method import Method
from lt_methods._queue import memory_bank
from lt_methods._registry import register_method
from lt_methods._swav_args import SwAVArgs, SwAVTransformArgs
from lt_methods._vicreg import VIT_DEFAULTS

if TYPE_CHECKING:
    from lightly.loss import SwaVLoss  # type: ignore[import-untyped]
    from lightly.models.modules.heads import (  # type: ignore[import-untyped]
        SwaVProjectionHead,
        SwaVPrototypes,
    )

__all__ = ["SwAV"]

#: The two global views, whose codes the other views predict (the paper's crops_for_assign).
_NUM_GLOBAL = 2


@register_method
class SwAV(Method):
    """SwAV, "Unsupervised Learning of Visual Features by Contrasting Cluster
    Assignments", Caron, Misra, Mairal, Goyal, Bojanowski and Joulin, NeurIPS 2020
    (https://arxiv.org/abs/2006.09882).

    Every view goes through the embedding model, an MLP projection head and L2
    normalization; its scores against ``num_prototypes`` learned unit-norm prototypes
    are its soft cluster assignment. For each of the 2 global views, the Sinkhorn-Knopp
    algorithm turns the batch's scores into codes that spread the batch evenly over
    the prototypes, and every other view (the other global view and the local views)
    is trained to predict those codes (lightly's ``SwaVLoss``; Sinkhorn runs over the
    global batch under ``torch.distributed``). No negatives, no momentum network.

    Prototypes: normalized to the unit sphere before every step (the paper), not updated
    during the first epoch (``freeze_prototypes_steps``: their gradients are zeroed
    before the optimizer step; lightly's own freeze switches ``requires_grad``, which
    DDP and the optimizer's parameter groups do not follow). Lightly's prototype layer
    has a bias, which the paper's has not; it is removed, so the scores are cosine
    similarities as the temperature and ``sinkhorn_epsilon`` assume.

    Queue (small batches, the paper's section 4.1): one per global view, holding the
    projections of earlier batches of all processes (lightly's ``MemoryBankModule``, made
    part of the checkpoint so a resumed run is exact); under ``torch.distributed`` each
    process adds every ``world_size``-th entry to the gathered codes, so each projection
    counts once, and ``queue_length`` is the global length as in the paper. It is filled from the first step and joins
    the Sinkhorn codes once full and from ``queue_start_steps`` on; see
    :class:`SwAVArgs` for when it is on.

    Default optimizer: SGD with momentum, base lr 0.12 per 256 images, weight decay 5e-4,
    the setup of lightly's CIFAR-10 benchmark (84.2% kNN for a ResNet-18, 200 epochs).
    The paper trains with LARS (lr 0.3 per 256 images, weight decay 1e-6) at batch 4096;
    ``optim="lars"`` uses trust coefficient 0.02 unless ``optim_args.trust_coefficient``
    is set; in a 3-epoch run of the quality benchmark it collapsed SwAV (RankMe 3), so
    SGD stays the default. ViTs (not in the paper) default to AdamW, lr 5e-4 per
    256 images, weight decay 0.04, DINO's ViT recipe.

    Exported network: the embedding model (head and prototypes are discarded).

    Shapes: ``views`` is two ``(B, 3, Hg, Wg)`` global tensors, then the local
    ``(B, 3, Hl, Wl)`` tensors; projections are ``(B, output_dim)``, scores
    ``(B, num_prototypes)`` and each queue ``(queue_length, output_dim)``.
    """

    name: ClassVar[str] = "swav"
    Args: ClassVar[type] = SwAVArgs
    TransformArgs: ClassVar[type] = SwAVTransformArgs
    default_optimizer: ClassVar[str] = "sgd"
    default_lr: ClassVar[float] = 0.12
    default_weight_decay: ClassVar[float] = 5e-4
    vit_defaults: ClassVar[tuple[str, float, float] | None] = VIT_DEFAULTS
    # Sinkhorn spreads the batch over the prototypes: one image gets the uniform code.
    min_batch_size: ClassVar[int] = 2
    gathers_batch: ClassVar[bool] = True

    args: SwAVArgs
    transform_args: SwAVTransformArgs

    def __init__(
        self,
        model: EmbeddingModel,
        args: SwAVArgs | dict[str, Any] | None = None,
        transform_args: SwAVTransformArgs | dict[str, Any] | None = None,
    ) -> None:
        super().__init__(model, args, transform_args)
        from lightly.loss import SwaVLoss
        from lightly.models.modules.heads import SwaVProjectionHead, SwaVPrototypes

        a = self.args
        self.projection_head: SwaVProjectionHead = SwaVProjectionHead(
            input_dim=model.embed_dim, hidden_dim=a.hidden_dim, output_dim=a.output_dim
        )
        self.prototypes: SwaVPrototypes = SwaVPrototypes(
            input_dim=a.output_dim, n_prototypes=resolved(a.num_prototypes, "num_prototypes")
        )
        for layer in self.prototypes.heads:
            layer.bias = None  # the paper's prototypes have no bias (see the docstring)
        self.prototypes.normalize()
        self.criterion: SwaVLoss = SwaVLoss(
            temperature=a.temperature,
            sinkhorn_iterations=a.sinkhorn_iterations,
            sinkhorn_epsilon=a.sinkhorn_epsilon,
            sinkhorn_gather_distributed=True,
        )
        length = resolved(a.queue_length, "queue_length")
        self.queues: nn.ModuleList | None = None
        if length > 0 and a.use_queue is not False:
            self.queues = nn.ModuleList(_queue(length, a.output_dim) for _ in range(_NUM_GLOBAL))
        # Projections enqueued so far (up to the length) and the queue decision (-1:
        # not made yet, 0: off, 1: on); buffers, so that a resumed run continues exactly.
        self.queue_filled: Tensor
        self.queue_decision: Tensor
        self.register_buffer("queue_filled", torch.zeros((), dtype=torch.long))
        self.register_buffer("queue_decision", torch.full((), -1, dtype=torch.long))

    @classmethod
    def view_recipe(cls, transform_args: SwAVTransformArgs) -> list[ViewConfig]:
        """The 2 global views at ``image_size`` (one group), then the local views."""
        t = transform_args
        recipe = [t.image_views(_NUM_GLOBAL)]
        lv = t.local_view
        if lv is not None and lv.num_views > 0:
            recipe.append(
                t.view(
                    size=t.local_size(),
                    num_views=lv.num_views,
                    random_resize=lv.random_resize,
                    gaussian_blur=lv.gaussian_blur,
                    solarize=t.solarize,
                    augment=lv.augment,
                )
            )
        return recipe

    def training_step(
        self, views: list[Tensor], step: int, max_steps: int, steps_per_epoch: int
    ) -> dict[str, Tensor]:
        """SwAV loss of the batch.

        Returns ``"loss"`` and ``"queue_active"`` (1 when the queue took part in the
        codes of this step, else 0).
        """
        if len(views) < _NUM_GLOBAL:
            raise ConfigError(
                f"SwAV expects 2 global views followed by local views, got {len(views)} view(s)."
            )
        self.prototypes.normalize()  # in place, without autograd (lightly's no_grad)
        global_z = self._project(views[:_NUM_GLOBAL])
        local_z = self._project(views[_NUM_GLOBAL:])
        # Sinkhorn exponentiates score / epsilon: keep it in float32 under autocast.
        high = [self.prototypes(z).float() for z in global_z]
        low = [self.prototypes(z).float() for z in local_z]
        queue_scores = self._queue_scores(global_z, step, max_steps, steps_per_epoch)
        loss = self.criterion(high, low, queue_outputs=queue_scores)
        return {
            "loss": loss.squeeze(),
            "queue_active": loss.new_tensor(float(queue_scores is not None)),
        }

    def _project(self, views: list[Tensor]) -> list[Tensor]:
        """Normalized projections, one ``(B, output_dim)`` tensor per view; views of equal
        shape go through the model as one batch."""
        if not views:
            return []
        if all(v.shape == views[0].shape for v in views):
            z = self.projection_head(self.model(torch.cat(views)))
            return list(nn.functional.normalize(z, dim=1).chunk(len(views)))
        return [nn.functional.normalize(self.projection_head(self.model(v)), dim=1) for v in views]

    def _queue_scores(
        self, global_z: list[Tensor], step: int, max_steps: int, steps_per_epoch: int
    ) -> list[Tensor] | None:
        """Update the queues with this batch's global projections; return the scores of
        their earlier contents when the queue takes part in this step's codes."""
        if self.queues is None or not self._queue_on(global_z[0].shape[0]):
            return None
        length = resolved(self.args.queue_length, "queue_length")
        full = int(self.queue_filled) >= length
        banks = [queue(z.detach(), update=True)[1] for queue, z in zip(self.queues, global_z)]
        world, rank = _world()
        self.queue_filled.add_(global_z[0].shape[0] * world).clamp_(max=length)
        if not full or step < self.args.queue_start(max_steps, steps_per_epoch):
            return None
        # Every process holds the whole queue; each adds its share to the gathered codes.
        with torch.no_grad():
            return [
                self.prototypes(bank[rank::world].to(z.dtype)).float()
                for bank, z in zip(banks, global_z)
            ]

    def _queue_on(self, batch_size: int) -> bool:
        """The queue decision, made once from the global batch (see
        :meth:`SwAVArgs.queue_on`) and kept in a buffer."""
        if int(self.queue_decision) < 0:
            self.queue_decision.fill_(int(self.args.queue_on(batch_size * _world()[0])))
        return bool(self.queue_decision)

    def on_before_optimizer_step(self, step: int, steps_per_epoch: int) -> None:
        """Zero the prototypes' gradients during the first :meth:`SwAVArgs.freeze_steps`
        steps.

        Zeroed rather than dropped (``None``): PyTorch's fused SGD fails on a parameter
        whose first gradient comes after the others of its group have a momentum buffer.
        With a zero gradient only the weight decay moves a prototype, along itself, and
        the normalization before the next step undoes that: its direction is frozen.
        """
        if step < self.args.freeze_steps(max(1, steps_per_epoch)):
            for param in self.prototypes.parameters():
                if param.grad is not None:
                    param.grad.zero_()


def _world() -> tuple[int, int]:
    """``(world size, rank)`` of ``torch.distributed``, ``(1, 0)`` without it."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size(), dist.get_rank()
    return 1, 0


def _queue(length: int, dim: int) -> nn.Module:
    """Lightly's memory bank of ``length`` projections of ``dim``, ``(length, dim)``, with
    its contents and pointer in the state dict (lightly leaves them out).

    It enqueues the projections of all processes (``gather_distributed``), so every
    process holds the same queue, which DDP's buffer broadcast then leaves unchanged."""
    queue: nn.Module = memory_bank((length, dim), gather_distributed=True)
    return queue
