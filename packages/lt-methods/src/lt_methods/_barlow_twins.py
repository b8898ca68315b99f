"""Barlow Twins: the cross-correlation of two views' embeddings is driven to the identity."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from torch import Tensor

from lt_core import ConfigError, EmbeddingModel, ViewConfig
from lt_methods._checks import check_int, check_lr_scaling, check_positive
from lt_methods._method import Method
from lt_methods._registry import register_method
from lt_methods._vicreg import VIT_DEFAULTS, VICRegTransformArgs, two_view_recipe, two_views

if TYPE_CHECKING:
    from lightly.loss import BarlowTwinsLoss  # type: ignore[import-untyped]
    from lightly.models.modules.heads import (  # type: ignore[import-untyped]
        BarlowTwinsProjectionHead,
    )

__all__ = ["BarlowTwins", "BarlowTwinsArgs", "BarlowTwinsTransformArgs"]

#: The paper's lambda, for its 8192-d projector; kept down to 2048 dimensions.
_PAPER_LAMBDA = 5e-3
_LAMBDA_KEPT_FROM_DIM = 2048


@dataclass(kw_only=True)
class BarlowTwinsArgs:
    """Options of :class:`BarlowTwins` (``method_args``).

    Attributes:
        hidden_dim: Width of the projector's two hidden layers (paper: 8192).
        output_dim: Dimension of the projections whose cross-correlation the loss
            computes (paper: 8192).
        redundancy_weight: Weight of the off-diagonal (redundancy reduction) term, the
            paper's lambda. ``"auto"`` (or ``None``): the paper's 5e-3 for projections of 2048
            dimensions or more, ``5e-3 * 2048 / output_dim`` below, so that the total
            weight of each dimension's ``output_dim - 1`` off-diagonal terms against its
            one diagonal term stays that of a 2048-d projector (5e-3 at 2048 is the CIFAR
            recipe of solo-learn and lightly's benchmark).
        lr_scale_method: ``"linear"`` or ``"sqrt"``: how the trainer scales the base lr to
            the effective batch (see :class:`lt_methods.SimCLRArgs`).
        reference_batch_size: Batch size the base learning rate is given for.
    """

    hidden_dim: int = 2048
    output_dim: int = 2048
    redundancy_weight: float | Literal["auto"] | None = "auto"
    lr_scale_method: Literal["linear", "sqrt"] = "linear"
    reference_batch_size: int = 256

    def __post_init__(self) -> None:
        check_int("method_args.hidden_dim", self.hidden_dim, 1)
        check_int("method_args.output_dim", self.output_dim, 2)
        if self.redundancy_weight is None:
            self.redundancy_weight = "auto"
        if self.redundancy_weight != "auto":
            if isinstance(self.redundancy_weight, bool) or not isinstance(
                self.redundancy_weight, (int, float)
            ):
                raise ConfigError(
                    "method_args.redundancy_weight must be a number > 0 or 'auto', got "
                    f"{self.redundancy_weight!r}."
                )
            check_positive("method_args.redundancy_weight", self.redundancy_weight)
        check_lr_scaling(self.lr_scale_method, self.reference_batch_size)

    def resolve(
        self, num_images: int | None = None, total_steps: int | None = None
    ) -> BarlowTwinsArgs:
        """A copy with ``redundancy_weight`` set from ``output_dim`` if it is ``"auto"``
        (the data size and run length do not matter here)."""
        if self.redundancy_weight != "auto":
            return self
        scale = max(1.0, _LAMBDA_KEPT_FROM_DIM / self.output_dim)
        return dataclasses.replace(self, redundancy_weight=_PAPER_LAMBDA * scale)


@dataclass(kw_only=True)
class BarlowTwinsTransformArgs(VICRegTransformArgs):
    """Options of Barlow Twins' two views (``transform_args``): BYOL's asymmetric recipe,
    as in the paper, the same as :class:`lt_methods.VICRegTransformArgs`."""


@register_method
class BarlowTwins(Method):
    """Barlow Twins, "Barlow Twins: Self-Supervised Learning via Redundancy Reduction",
    Zbontar, Jing, Misra, LeCun and Deny, ICML 2021 (https://arxiv.org/abs/2103.03230).

    Two augmented views of each image go through the embedding model and an MLP
    projector; each view's projections are normalized over the batch (batch norm without
    affine parameters) and their cross-correlation matrix is pulled to the identity
    (lightly's ``BarlowTwinsLoss``): diagonal 1 (invariance), off-diagonal 0 weighted by
    ``redundancy_weight`` (redundancy reduction). No negatives, no momentum network.
    Under ``torch.distributed`` the matrix is averaged over the processes
    (``gather_distributed``); each process normalizes its own share of the batch.

    Minimum batch: 3 images per process. With 2, each batch-normalized dimension is
    (+1, -1) or (-1, +1) whatever the network computes, so the loss depends on signs
    only and no gradient flows (up to batch norm's eps; a test checks it). Hundreds are typical: the paper reports that it keeps most of
    its accuracy down to batches of 256.

    Default optimizer for CNNs: LARS with trust coefficient 0.02 (``optim_args.
    trust_coefficient``), base lr 0.3 per 256 images, weight decay 1e-4, solo-learn's
    CIFAR recipe. On the quality benchmark (docs/methods.md) it scored 33.8% kNN against
    22.7% for SGD at lr 0.12 and weight decay 5e-4, whose loss did not fall at any lr from
    0.005 to 0.12: the loss is a sum over ``output_dim`` dimensions, and LARS's per-layer
    step does not depend on its scale. The paper trains with LARS too (lr 0.2, weight
    decay 1.5e-6, trust coefficient 0.001) at batch 2048. ViTs (not in the paper) default
    to AdamW, lr 5e-4 per 256 images, weight decay 0.04, DINO's ViT recipe.

    The projector defaults to 2048-2048-2048 instead of the paper's 8192-8192-8192 (about
    150M parameters, sized for ImageNet); the CIFAR recipes use 2048.

    Exported network: the embedding model (the projector is discarded, as in the paper).

    Shapes: ``views`` is two ``(B, 3, H, W)`` tensors; the embeddings are
    ``(B, embed_dim)``, the projections ``(B, output_dim)`` and the cross-correlation
    ``(output_dim, output_dim)``.
    """

    name: ClassVar[str] = "barlowtwins"
    Args: ClassVar[type] = BarlowTwinsArgs
    TransformArgs: ClassVar[type] = BarlowTwinsTransformArgs
    default_optimizer: ClassVar[str] = "lars"
    default_lr: ClassVar[float] = 0.3
    default_weight_decay: ClassVar[float] = 1e-4
    vit_defaults: ClassVar[tuple[str, float, float] | None] = VIT_DEFAULTS
    # Each process batch-normalizes its own projections (see the class docstring).
    min_batch_size: ClassVar[int] = 3
    gathers_batch: ClassVar[bool] = False

    args: BarlowTwinsArgs
    transform_args: BarlowTwinsTransformArgs

    def __init__(
        self,
        model: EmbeddingModel,
        args: BarlowTwinsArgs | dict[str, Any] | None = None,
        transform_args: BarlowTwinsTransformArgs | dict[str, Any] | None = None,
    ) -> None:
        super().__init__(model, args, transform_args)
        from lightly.loss import BarlowTwinsLoss
        from lightly.models.modules.heads import BarlowTwinsProjectionHead

        a = self.args
        self.projection_head: BarlowTwinsProjectionHead = BarlowTwinsProjectionHead(
            input_dim=model.embed_dim, hidden_dim=a.hidden_dim, output_dim=a.output_dim
        )
        assert not isinstance(a.redundancy_weight, str)  # resolved in Method.__init__
        self.criterion: BarlowTwinsLoss = BarlowTwinsLoss(
            lambda_param=a.redundancy_weight, gather_distributed=True
        )

    @classmethod
    def view_recipe(cls, transform_args: BarlowTwinsTransformArgs) -> list[ViewConfig]:
        """View 0 (always blurred) and view 1 (rarely blurred, sometimes solarized), both
        at ``image_size``."""
        return two_view_recipe(transform_args)

    def training_step(
        self, views: list[Tensor], step: int, max_steps: int, steps_per_epoch: int
    ) -> dict[str, Tensor]:
        """Barlow Twins loss of the projections of the two views."""
        z0, z1 = two_views(self, views, self.projection_head)
        if z0.shape[0] < self.min_batch_size:
            raise ConfigError(
                f"Barlow Twins needs at least {self.min_batch_size} images per process in "
                f"a batch (it batch-normalizes the projections), got {z0.shape[0]}; raise "
                "batch_size."
            )
        return {"loss": self.criterion(z0, z1)}
