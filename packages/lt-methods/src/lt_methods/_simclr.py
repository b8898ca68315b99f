"""SimCLR: contrastive learning between two augmented views of each image."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import torch
from torch import Tensor

from lt_core import ConfigError, EmbeddingModel, ViewConfig
from lt_methods._checks import check_int, check_lr_scaling, check_positive
from lt_methods._method import Method
from lt_methods._registry import register_method
from lt_methods._transform_args import MethodTransformArgs

if TYPE_CHECKING:
    from lightly.loss import NTXentLoss  # type: ignore[import-untyped]
    from lightly.models.modules.heads import SimCLRProjectionHead  # type: ignore[import-untyped]

__all__ = ["SimCLR", "SimCLRArgs", "SimCLRTransformArgs"]


@dataclass(kw_only=True)
class SimCLRArgs:
    """Options of :class:`SimCLR` (``method_args``); LightlyTrain's names and defaults.

    Attributes:
        hidden_dim: Width of the projection head's hidden layers (paper: 2048).
        output_dim: Dimension of the projections the loss compares (paper: 128).
        num_layers: Linear layers of the projection head; 2 is SimCLR v1, 3 is SimCLR v2.
        batch_norm: Batch norm after each linear layer of the head (as in SimCLR v2).
        temperature: Softmax temperature of the NT-Xent loss; 0.1 is the paper's best value
            for its large-batch setting and works well for batches of 64 and more.
        lr_scale_method: How the trainer scales the base learning rate (``optim_args.lr``
            or the method's default) to the effective batch (``batch_size *
            gradient_accumulation_steps``): ``"linear"`` (``lr * batch /
            reference_batch_size``) or ``"sqrt"`` (``lr * sqrt(batch /
            reference_batch_size)``).
        reference_batch_size: Batch size the base learning rate is given for.
    """

    hidden_dim: int = 2048
    output_dim: int = 128
    num_layers: int = 2
    batch_norm: bool = True
    temperature: float = 0.1
    lr_scale_method: Literal["linear", "sqrt"] = "linear"
    reference_batch_size: int = 256

    def __post_init__(self) -> None:
        check_int("method_args.hidden_dim", self.hidden_dim, 1)
        check_int("method_args.output_dim", self.output_dim, 1)
        check_int("method_args.num_layers", self.num_layers, 2)
        check_positive("method_args.temperature", self.temperature)
        check_lr_scaling(self.lr_scale_method, self.reference_batch_size)


@dataclass(kw_only=True)
class SimCLRTransformArgs(MethodTransformArgs):
    """Options of SimCLR's two views (``transform_args``); see
    :class:`MethodTransformArgs` for the keys.

    Both views use the same distribution, the paper's: random resized crop (area 0.08-1),
    horizontal flip, color jitter (p=0.8, strength 1: brightness, contrast, saturation 0.8,
    hue 0.2), grayscale (p=0.2) and Gaussian blur (p=0.5, sigma 0.1-2 pixels at 224
    pixels), then normalization.
    """


@register_method
class SimCLR(Method):
    """SimCLR, "A Simple Framework for Contrastive Learning of Visual Representations",
    Chen, Kornblith, Norouzi and Hinton, ICML 2020 (https://arxiv.org/abs/2002.05709).

    Two augmented views of each image go through the embedding model and an MLP projection
    head; the NT-Xent loss pulls the two projections of an image together and pushes
    those of the other images in the batch apart. Under ``torch.distributed`` the loss
    gathers the projections of all processes, so the negatives span the global batch.

    Default optimizer: SGD with momentum, base lr 0.12 per 256 images and weight decay
    5e-4. The paper trains with LARS at batch sizes of 256 to 8192 with the trust
    coefficient 0.001 of LARS's paper, which gives very small updates at the small batches
    common on one GPU or a CPU; ``optim="lars"`` here uses 0.02 (solo-learn's CIFAR value,
    ``optim_args.trust_coefficient``), ideally with ``lr=0.3``. Plain SGD is the default:
    it trains reliably. On the quality benchmark's split, LARS (lr 0.4, weight decay 1e-5)
    was 1.4 points ahead after 3 epochs (34.9% kNN against 33.5%); it has not been
    measured over the table's 10 epochs.

    Shapes: ``views`` is two ``(B, 3, H, W)`` tensors; the embeddings are
    ``(B, embed_dim)`` and the projections ``(B, output_dim)``.
    """

    name: ClassVar[str] = "simclr"
    Args: ClassVar[type] = SimCLRArgs
    TransformArgs: ClassVar[type] = SimCLRTransformArgs
    default_optimizer: ClassVar[str] = "sgd"
    default_lr: ClassVar[float] = 0.12
    default_weight_decay: ClassVar[float] = 5e-4
    # NT-Xent needs a second image as negative; it gathers over processes (see __init__).
    min_batch_size: ClassVar[int] = 2
    gathers_batch: ClassVar[bool] = True

    args: SimCLRArgs
    transform_args: SimCLRTransformArgs

    def __init__(
        self,
        model: EmbeddingModel,
        args: SimCLRArgs | dict[str, Any] | None = None,
        transform_args: SimCLRTransformArgs | dict[str, Any] | None = None,
    ) -> None:
        super().__init__(model, args, transform_args)
        from lightly.loss import NTXentLoss
        from lightly.models.modules.heads import SimCLRProjectionHead

        a = self.args
        self.projection_head: SimCLRProjectionHead = SimCLRProjectionHead(
            input_dim=model.embed_dim,
            hidden_dim=a.hidden_dim,
            output_dim=a.output_dim,
            num_layers=a.num_layers,
            batch_norm=a.batch_norm,
        )
        self.criterion: NTXentLoss = NTXentLoss(temperature=a.temperature, gather_distributed=True)

    @classmethod
    def view_recipe(cls, transform_args: SimCLRTransformArgs) -> list[ViewConfig]:
        """One group of two identically augmented views at ``image_size``."""
        t = transform_args
        return [t.image_views(2)]

    def training_step(
        self, views: list[Tensor], step: int, max_steps: int, steps_per_epoch: int
    ) -> dict[str, Tensor]:
        """NT-Xent loss between the projections of the two views.

        Views of equal size go through the model as one batch of ``2B`` images.
        """
        if len(views) != 2:
            raise ConfigError(
                f"SimCLR expects 2 views per batch (its view recipe), got {len(views)}."
            )
        if views[0].shape == views[1].shape:
            z0, z1 = self.projection_head(self.model(torch.cat(views))).chunk(2)
        else:  # a custom augmentation with different view sizes
            z0, z1 = (self.projection_head(self.model(v)) for v in views)
        return {"loss": self.criterion(z0, z1)}
