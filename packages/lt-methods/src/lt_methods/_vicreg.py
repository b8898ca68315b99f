"""VICReg: variance, invariance and covariance regularization of two views' embeddings.

Also home of :class:`VICRegTransformArgs`, the two asymmetric views of BYOL's recipe that
VICReg and Barlow Twins (``_barlow_twins.py``) both train with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import torch
from torch import Tensor

from lt_core import ConfigError, EmbeddingModel, ViewConfig
from lt_methods._checks import check_int, check_lr_scaling, check_positive
from lt_methods._dino_args import DINOColorJitterArgs, DINOGaussianBlurArgs, DINOGlobalView1Args
from lt_methods._method import Method
from lt_methods._registry import register_method
from lt_methods._transform_args import MethodTransformArgs

if TYPE_CHECKING:
    from lightly.loss import VICRegLoss  # type: ignore[import-untyped]
    from lightly.models.modules.heads import VICRegProjectionHead  # type: ignore[import-untyped]

__all__ = ["VICReg", "VICRegArgs", "VICRegTransformArgs", "two_view_recipe", "two_views"]

#: The ViT recipe of the methods without one in their paper: DINO's AdamW setup
#: (lr 5e-4 per 256 images, the constant weight decay 0.04).
VIT_DEFAULTS: tuple[str, float, float] = ("adamw", 5e-4, 0.04)


@dataclass(kw_only=True)
class VICRegArgs:
    """Options of :class:`VICReg` (``method_args``).

    Attributes:
        hidden_dim: Width of the expander's hidden layers (paper: 8192).
        output_dim: Dimension of the expander's output, where the loss works (paper: 8192).
        num_layers: Linear layers of the expander (paper: 3).
        invariance_weight: Weight of the invariance (mean squared error) term, the paper's
            lambda (25).
        variance_weight: Weight of the variance (hinge on each dimension's standard
            deviation) term, the paper's mu (25).
        covariance_weight: Weight of the covariance (off-diagonal) term, the paper's nu (1).
        eps: Added to the variance before its square root (paper: 1e-4).
        lr_scale_method: ``"linear"`` or ``"sqrt"``: how the trainer scales the base lr to
            the effective batch (see :class:`lt_methods.SimCLRArgs`).
        reference_batch_size: Batch size the base learning rate is given for.
    """

    hidden_dim: int = 2048
    output_dim: int = 2048
    num_layers: int = 3
    invariance_weight: float = 25.0
    variance_weight: float = 25.0
    covariance_weight: float = 1.0
    eps: float = 1e-4
    lr_scale_method: Literal["linear", "sqrt"] = "linear"
    reference_batch_size: int = 256

    def __post_init__(self) -> None:
        check_int("method_args.hidden_dim", self.hidden_dim, 1)
        check_int("method_args.output_dim", self.output_dim, 1)
        check_int("method_args.num_layers", self.num_layers, 2)
        for key in ("invariance_weight", "variance_weight", "covariance_weight"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(f"method_args.{key} must be a number >= 0, got {value!r}.")
        if not (self.invariance_weight > 0 and self.variance_weight > 0):
            raise ConfigError(
                "method_args.invariance_weight and method_args.variance_weight must be > 0 "
                "(without invariance nothing is learned, without variance the embeddings "
                f"collapse), got {self.invariance_weight!r} and {self.variance_weight!r}."
            )
        check_positive("method_args.eps", self.eps)
        check_lr_scaling(self.lr_scale_method, self.reference_batch_size)


@dataclass(kw_only=True)
class VICRegTransformArgs(MethodTransformArgs):
    """Options of the two views (``transform_args``): BYOL's asymmetric recipe, which
    VICReg and Barlow Twins use. See :class:`MethodTransformArgs` for the shared keys;
    they set view 0 and, except for blur and solarization, view 1 too.

    Both views: random resized crop (area 0.08-1), horizontal flip, color jitter (p=0.8:
    brightness 0.4, contrast 0.4, saturation 0.2, hue 0.1), grayscale (p=0.2). View 0 is
    always blurred and never solarized; view 1 is blurred with p=0.1 and solarized with
    p=0.2 (``global_view_1``, the same block as DINO's).

    Attributes:
        color_jitter: The recipe's jitter, for both views.
        gaussian_blur: Blur of view 0 (always).
        solarize: Solarization of view 0 (none).
        global_view_1: Blur (p=0.1) and solarization (p=0.2) of view 1; cannot be ``None``.
    """

    color_jitter: DINOColorJitterArgs | None = field(default_factory=DINOColorJitterArgs)
    gaussian_blur: DINOGaussianBlurArgs | None = field(default_factory=DINOGaussianBlurArgs)
    # Optional only so that None fails in __post_init__ (see MethodTransformArgs.normalize).
    global_view_1: DINOGlobalView1Args | None = field(default_factory=DINOGlobalView1Args)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.global_view_1 is None:
            raise ConfigError(
                "transform_args.global_view_1 cannot be None; set its gaussian_blur or "
                "solarize to None instead."
            )
        self.global_view_1.check("transform_args.global_view_1")


def two_view_recipe(t: VICRegTransformArgs) -> list[ViewConfig]:
    """View 0 then view 1 of :class:`VICRegTransformArgs`, one view each, at
    ``image_size``."""
    g1 = t.global_view_1
    assert g1 is not None  # checked in VICRegTransformArgs.__post_init__
    return [
        t.view(
            size=t.image_size,
            num_views=1,
            random_resize=t.random_resize,
            gaussian_blur=blur,
            solarize=solarize,
            augment=augment,
        )
        for blur, solarize, augment in (
            (t.gaussian_blur, t.solarize, None),
            (g1.gaussian_blur, g1.solarize, g1.augment),
        )
    ]


def two_views(method: Method, views: list[Tensor], head: torch.nn.Module) -> tuple[Tensor, Tensor]:
    """``head(method.model(view))`` of the two views, ``(B, output_dim)`` each; views of
    equal shape go through the model as one batch of ``2B`` images."""
    if len(views) != 2:
        raise ConfigError(
            f"{type(method).__name__} expects 2 views per batch (its view recipe), got "
            f"{len(views)}."
        )
    if views[0].shape == views[1].shape:
        z0, z1 = head(method.model(torch.cat(views))).chunk(2)
        return z0, z1
    return head(method.model(views[0])), head(method.model(views[1]))


@register_method
class VICReg(Method):
    """VICReg, "VICReg: Variance-Invariance-Covariance Regularization for Self-Supervised
    Learning", Bardes, Ponce and LeCun, ICLR 2022 (https://arxiv.org/abs/2105.04906).

    Two augmented views of each image go through the embedding model and an MLP
    expander. The loss (lightly's ``VICRegLoss``) pulls the two expansions of an image
    together (invariance: mean squared error), keeps the standard deviation of every
    dimension over the batch at 1 or more (variance) and decorrelates the dimensions
    (covariance). No negatives, no momentum network. Under ``torch.distributed`` the
    variance and covariance terms see the global batch (``gather_distributed``).

    Default optimizer for CNNs: LARS with trust coefficient 0.02 (``optim_args.
    trust_coefficient``), base lr 0.3 per 256 images, weight decay 1e-4, solo-learn's
    CIFAR recipe. On the quality benchmark (docs/methods.md) it scored 41.7% kNN against
    39.6% for SGD at lr 0.12 and weight decay 5e-4, and SGD diverged (NaN at step 15) in a
    3-epoch run whose warm-up is 12 steps. The paper trains with LARS too (base lr 0.2,
    weight decay 1e-6, trust coefficient 0.001) at batch 2048. ViTs (not in the paper)
    default to AdamW, lr 5e-4 per 256 images, weight decay 0.04, DINO's ViT recipe.

    The expander defaults to 2048-2048-2048 instead of the paper's 8192-8192-8192: the
    paper's expander has about 150M parameters (six ResNet-50s) and is sized for
    ImageNet-scale runs; the CIFAR recipes (solo-learn) train with 2048.

    Exported network: the embedding model (the expander is discarded, as in the paper).

    Shapes: ``views`` is two ``(B, 3, H, W)`` tensors; the embeddings are
    ``(B, embed_dim)`` and the expansions ``(B, output_dim)``.
    """

    name: ClassVar[str] = "vicreg"
    Args: ClassVar[type] = VICRegArgs
    TransformArgs: ClassVar[type] = VICRegTransformArgs
    default_optimizer: ClassVar[str] = "lars"
    default_lr: ClassVar[float] = 0.3
    default_weight_decay: ClassVar[float] = 1e-4
    vit_defaults: ClassVar[tuple[str, float, float] | None] = VIT_DEFAULTS
    # The variance and covariance need two images per process (lightly asserts it there,
    # before it gathers the batches).
    min_batch_size: ClassVar[int] = 2
    gathers_batch: ClassVar[bool] = False

    args: VICRegArgs
    transform_args: VICRegTransformArgs

    def __init__(
        self,
        model: EmbeddingModel,
        args: VICRegArgs | dict[str, Any] | None = None,
        transform_args: VICRegTransformArgs | dict[str, Any] | None = None,
    ) -> None:
        super().__init__(model, args, transform_args)
        from lightly.loss import VICRegLoss
        from lightly.models.modules.heads import VICRegProjectionHead

        a = self.args
        self.projection_head: VICRegProjectionHead = VICRegProjectionHead(
            input_dim=model.embed_dim,
            hidden_dim=a.hidden_dim,
            output_dim=a.output_dim,
            num_layers=a.num_layers,
        )
        self.criterion: VICRegLoss = VICRegLoss(
            lambda_param=a.invariance_weight,
            mu_param=a.variance_weight,
            nu_param=a.covariance_weight,
            eps=a.eps,
            gather_distributed=True,
        )

    @classmethod
    def view_recipe(cls, transform_args: VICRegTransformArgs) -> list[ViewConfig]:
        """View 0 (always blurred) and view 1 (rarely blurred, sometimes solarized), both
        at ``image_size``."""
        return two_view_recipe(transform_args)

    def training_step(
        self, views: list[Tensor], step: int, max_steps: int, steps_per_epoch: int
    ) -> dict[str, Tensor]:
        """VICReg loss between the expansions of the two views."""
        z0, z1 = two_views(self, views, self.projection_head)
        return {"loss": self.criterion(z0, z1)}
