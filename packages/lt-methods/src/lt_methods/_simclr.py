"""SimCLR: contrastive learning between two augmented views of each image."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor

from lt_core import IMAGENET_MEAN, IMAGENET_STD, ConfigError, EmbeddingModel, ViewConfig
from lt_methods._checks import (
    check_crop_scale,
    check_int,
    check_positive,
    check_prob,
    check_size,
    color_jitter,
)
from lt_methods._method import Method
from lt_methods._registry import register_method

if TYPE_CHECKING:
    from lightly.loss import NTXentLoss  # type: ignore[import-untyped]
    from lightly.models.modules.heads import SimCLRProjectionHead  # type: ignore[import-untyped]

__all__ = ["SimCLR", "SimCLRArgs", "SimCLRTransformArgs"]

#: The paper's color jitter at strength 1: brightness, contrast, saturation 0.8, hue 0.2.
_JITTER = (0.8, 0.8, 0.8, 0.2)
#: Images smaller than this (per side) get no blur by default, as in the paper's CIFAR runs.
_MIN_BLUR_SIZE = 64


@dataclass(kw_only=True)
class SimCLRArgs:
    """Options of :class:`SimCLR` (``method_args``).

    Attributes:
        hidden_dim: Width of the projection head's hidden layers (paper: 2048).
        out_dim: Dimension of the projections the loss compares (paper: 128).
        num_layers: Linear layers of the projection head; 2 is SimCLR v1, 3 is SimCLR v2.
        batch_norm: Batch norm after each linear layer of the head (as in SimCLR v2).
        temperature: Softmax temperature of the NT-Xent loss; 0.1 is the paper's best value
            for its large-batch setting and works well for batches of 64 and more.
    """

    hidden_dim: int = 2048
    out_dim: int = 128
    num_layers: int = 2
    batch_norm: bool = True
    temperature: float = 0.1

    def __post_init__(self) -> None:
        check_int("method_args.hidden_dim", self.hidden_dim, 1)
        check_int("method_args.out_dim", self.out_dim, 1)
        check_int("method_args.num_layers", self.num_layers, 2)
        check_positive("method_args.temperature", self.temperature)


@dataclass(kw_only=True)
class SimCLRTransformArgs:
    """Options of SimCLR's two views (``transform_args``).

    Both views use the same distribution: random resized crop, horizontal flip, color
    jitter, grayscale and (for large enough images) Gaussian blur, then normalization.

    Attributes:
        image_size: ``(height, width)`` of the views, equal to the size images are resized
            to when they are loaded.
        crop_scale: Area range of the random resized crop (paper: 0.08 to 1).
        hflip_prob: Probability of a horizontal flip.
        color_jitter_prob: Probability of the color jitter (paper: 0.8).
        color_jitter_strength: The paper's strength ``s``: brightness, contrast and
            saturation ``0.8 s``, hue ``0.2 s``. ``0`` disables the jitter.
        grayscale_prob: Probability of converting to grayscale (paper: 0.2).
        blur_prob: Probability of a Gaussian blur. ``None`` picks 0.5 (the paper's ImageNet
            recipe) for images of at least 64 pixels per side, and 0 below (the paper
            found blur harmful on 32-pixel CIFAR images and left it out).
        mean: Per-channel mean for normalization.
        std: Per-channel standard deviation for normalization.
    """

    image_size: tuple[int, int] = (224, 224)
    crop_scale: tuple[float, float] = (0.08, 1.0)
    hflip_prob: float = 0.5
    color_jitter_prob: float = 0.8
    color_jitter_strength: float = 1.0
    grayscale_prob: float = 0.2
    blur_prob: float | None = None
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __post_init__(self) -> None:
        check_size("transform_args.image_size", self.image_size)
        check_crop_scale("transform_args.crop_scale", self.crop_scale)
        for name in ("hflip_prob", "color_jitter_prob", "grayscale_prob"):
            check_prob(f"transform_args.{name}", getattr(self, name))
        if self.blur_prob is not None:
            check_prob("transform_args.blur_prob", self.blur_prob)
        if self.color_jitter_strength < 0:
            raise ConfigError(
                f"transform_args.color_jitter_strength must be >= 0, got "
                f"{self.color_jitter_strength!r}."
            )

    def resolved_blur_prob(self) -> float:
        """``blur_prob``, or its size-dependent default when it is ``None``."""
        if self.blur_prob is not None:
            return self.blur_prob
        return 0.5 if min(self.image_size) >= _MIN_BLUR_SIZE else 0.0


@register_method
class SimCLR(Method):
    """SimCLR, "A Simple Framework for Contrastive Learning of Visual Representations",
    Chen, Kornblith, Norouzi and Hinton, ICML 2020 (https://arxiv.org/abs/2002.05709).

    Two augmented views of each image go through the embedding model and an MLP projection
    head; the NT-Xent loss pulls the two projections of an image together and pushes
    those of the other images in the batch apart. Under ``torch.distributed`` the loss
    gathers the projections of all processes, so the negatives span the global batch.

    Default optimizer: SGD with momentum, base lr 0.12 per 256 images and weight decay
    5e-4. The paper trains with LARS at batch sizes of 256 to 8192; with the trainer's
    linear lr scaling and the small batches common on one GPU or a CPU, LARS's layer-wise
    trust ratio (0.001) gives very small updates, while plain SGD trains reliably (pass
    ``optim="lars"`` for the paper's large-batch setup, ideally with ``lr=0.3``).

    Shapes: ``views`` is two ``(B, 3, H, W)`` tensors; the embeddings are
    ``(B, embed_dim)`` and the projections ``(B, out_dim)``.
    """

    name: ClassVar[str] = "simclr"
    Args: ClassVar[type] = SimCLRArgs
    TransformArgs: ClassVar[type] = SimCLRTransformArgs
    default_optimizer: ClassVar[str] = "sgd"
    default_lr: ClassVar[float] = 0.12
    default_weight_decay: ClassVar[float] = 5e-4

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
            output_dim=a.out_dim,
            num_layers=a.num_layers,
            batch_norm=a.batch_norm,
        )
        self.criterion: NTXentLoss = NTXentLoss(temperature=a.temperature, gather_distributed=True)

    @classmethod
    def view_recipe(cls, transform_args: SimCLRTransformArgs) -> list[ViewConfig]:
        """One group of two identically augmented views at ``image_size``."""
        t = transform_args
        return [
            ViewConfig(
                size=t.image_size,
                num_views=2,
                crop_scale=t.crop_scale,
                hflip_prob=t.hflip_prob,
                color_jitter=color_jitter(_JITTER, t.color_jitter_strength, t.color_jitter_prob),
                grayscale_prob=t.grayscale_prob,
                blur_prob=t.resolved_blur_prob(),
                solarize_prob=0.0,
                mean=t.mean,
                std=t.std,
            )
        ]

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
