"""BYOL: an online network predicts the projections of its own moving average."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import torch
from torch import Tensor, nn

from lt_core import ConfigError, EmbeddingModel, ViewConfig, check_callable
from lt_methods._checks import check_int, check_lr_scaling, check_range
from lt_methods._ema import auto_momentum, cosine_momentum, forward_views, frozen_copy, update_ema
from lt_methods._method import Method
from lt_methods._registry import register_method
from lt_methods._transform_args import (
    ColorJitterArgs,
    GaussianBlurArgs,
    MethodTransformArgs,
    SolarizeArgs,
)

if TYPE_CHECKING:
    from lightly.loss import NegativeCosineSimilarity  # type: ignore[import-untyped]
    from lightly.models.modules.heads import (  # type: ignore[import-untyped]
        BYOLPredictionHead,
        BYOLProjectionHead,
    )

__all__ = [
    "BYOL",
    "BYOLArgs",
    "BYOLColorJitterArgs",
    "BYOLGaussianBlurArgs",
    "BYOLSecondViewArgs",
    "BYOLSecondViewGaussianBlurArgs",
    "BYOLTransformArgs",
]

Auto = Literal["auto"]

#: The paper's base EMA momentum (tau_base), raised to 1 with a cosine.
_PAPER_MOMENTUM = 0.996


@dataclass(kw_only=True)
class BYOLArgs:
    """Options of :class:`BYOL` (``method_args``).

    Attributes:
        hidden_dim: Width of the hidden layer of the projection head (paper: 4096).
        output_dim: Dimension of the projections (paper: 256).
        prediction_hidden_dim: Width of the hidden layer of the predictor (paper: 4096).
        momentum_start: EMA momentum of the target network at the first step
            (``"auto"`` or ``None``: automatic). Auto: the paper's 0.996 for runs of
            2,500 steps and more; shorter runs start lower, at ``1 - 10 / total_steps``
            but not below 0.99, so that the target still follows the online network
            within the run (the same rule as DINO's).
        momentum_end: EMA momentum at the last step, reached by a cosine (paper: 1.0).
        lr_scale_method: How the trainer scales the base learning rate to the effective
            batch: ``"linear"`` or ``"sqrt"`` (see :class:`SimCLRArgs`).
        reference_batch_size: Batch size the base learning rate is given for.
    """

    hidden_dim: int = 4096
    output_dim: int = 256
    prediction_hidden_dim: int = 4096
    momentum_start: float | Auto | None = "auto"
    momentum_end: float = 1.0
    lr_scale_method: Literal["linear", "sqrt"] = "linear"
    reference_batch_size: int = 256

    def __post_init__(self) -> None:
        if self.momentum_start is None:
            self.momentum_start = "auto"
        for key in ("hidden_dim", "output_dim", "prediction_hidden_dim"):
            check_int(f"method_args.{key}", getattr(self, key), 1)
        check_momenta(self.momentum_start, self.momentum_end)
        check_lr_scaling(self.lr_scale_method, self.reference_batch_size)

    def resolve(self, num_images: int | None = None, total_steps: int | None = None) -> BYOLArgs:
        """A copy with the automatic ``momentum_start`` set from the run length
        (``None``: the paper's 0.996). ``num_images`` is not used."""
        if self.momentum_start != "auto":
            return self
        return dataclasses.replace(self, momentum_start=auto_momentum(_PAPER_MOMENTUM, total_steps))


def check_momenta(start: float | str, end: float) -> None:
    """``method_args.momentum_start`` (unless ``"auto"``) and ``momentum_end`` lie in [0, 1]."""
    if start != "auto":
        if isinstance(start, str):
            raise ConfigError(
                f"method_args.momentum_start must be a float in [0, 1] or 'auto', got {start!r}."
            )
        check_range("method_args.momentum_start", start, 0.0, 1.0)
    check_range("method_args.momentum_end", end, 0.0, 1.0)


def momentum_at(start: float | str | None, end: float, step: int, max_steps: int) -> float:
    """The cosine momentum at ``step`` once ``start`` is resolved."""
    if not isinstance(start, float | int):
        raise ConfigError(
            f"method_args.momentum_start is still {start!r}; resolve the options first "
            "(Method.resolve_args, which a method built directly calls itself)."
        )
    return cosine_momentum(step, max_steps, float(start), end)


# Views: the paper's asymmetric pair. The blocks subclass the shared ones with BYOL's
# defaults, so a partial block (e.g. {"color_jitter": {"prob": 0.5}}) keeps the others.


@dataclass(kw_only=True)
class BYOLColorJitterArgs(ColorJitterArgs):
    """The paper's color jitter, p=0.8: brightness 0.4, contrast 0.4, saturation 0.2, hue
    0.1, written as strength 0.5 times (0.8, 0.8, 0.4, 0.2)."""

    strength: float = 0.5
    saturation: float = 0.4


@dataclass(kw_only=True)
class BYOLGaussianBlurArgs(GaussianBlurArgs):
    """Blur of the first view: always (paper)."""

    prob: float = 1.0


@dataclass(kw_only=True)
class BYOLSecondViewGaussianBlurArgs(GaussianBlurArgs):
    """Blur of the second view: p=0.1 (paper)."""

    prob: float = 0.1


@dataclass(kw_only=True)
class BYOLSecondViewArgs:
    """What the second view does differently from the first (``second_view``).

    Attributes:
        gaussian_blur: Its blur (p=0.1), or ``None`` for none.
        solarize: Its solarization (p=0.2), or ``None`` for none.
        augment: Its own augmentation instead of ``transform_args.augment`` (Python API
            only); ``None`` uses that one, ``torch.nn.Identity()`` switches it off.
    """

    gaussian_blur: BYOLSecondViewGaussianBlurArgs | None = field(
        default_factory=BYOLSecondViewGaussianBlurArgs
    )
    solarize: SolarizeArgs | None = field(default_factory=SolarizeArgs)
    augment: Callable[[Tensor], Tensor] | None = None

    def check(self, name: str) -> None:
        if self.augment is not None:
            check_callable(f"{name}.augment", self.augment)
        if self.gaussian_blur is not None:
            self.gaussian_blur.check(f"{name}.gaussian_blur")
        if self.solarize is not None:
            self.solarize.check(f"{name}.solarize")


@dataclass(kw_only=True)
class BYOLTransformArgs(MethodTransformArgs):
    """Options of BYOL's two views (``transform_args``), the paper's asymmetric pair (its
    Table 6): both views get a random resized crop (area 0.08-1), a flip, the color jitter
    below (p=0.8) and grayscale (p=0.2); the first view is always blurred, the second is
    blurred with p=0.1 and solarized with p=0.2. See :class:`MethodTransformArgs` for the
    shared keys; ``gaussian_blur`` and ``solarize`` set the first view.

    Attributes:
        color_jitter: The paper's jitter (brightness 0.4, contrast 0.4, saturation 0.2,
            hue 0.1), for both views.
        gaussian_blur: Blur of the first view (always).
        solarize: Solarization of the first view (none).
        second_view: Blur (p=0.1) and solarization (p=0.2) of the second view; cannot
            be ``None``.
    """

    color_jitter: BYOLColorJitterArgs | None = field(default_factory=BYOLColorJitterArgs)
    gaussian_blur: BYOLGaussianBlurArgs | None = field(default_factory=BYOLGaussianBlurArgs)
    # Optional only so that None fails in __post_init__ (see MethodTransformArgs.normalize).
    second_view: BYOLSecondViewArgs | None = field(default_factory=BYOLSecondViewArgs)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.second_view is None:
            raise ConfigError(
                "transform_args.second_view cannot be None; set its gaussian_blur or "
                "solarize to None instead."
            )
        self.second_view.check("transform_args.second_view")

    def asymmetric_pair(self) -> list[ViewConfig]:
        """The two view groups (one view each) at ``image_size``: first view, second view."""
        second = self.second_view
        assert second is not None  # checked in __post_init__
        return [
            self.view(
                size=self.image_size,
                num_views=1,
                random_resize=self.random_resize,
                gaussian_blur=blur,
                solarize=solarize,
                augment=augment,
            )
            for blur, solarize, augment in (
                (self.gaussian_blur, self.solarize, None),
                (second.gaussian_blur, second.solarize, second.augment),
            )
        ]


@register_method
class BYOL(Method):
    """BYOL, "Bootstrap Your Own Latent: A New Approach to Self-Supervised Learning",
    Grill et al., NeurIPS 2020 (https://arxiv.org/abs/2006.07733).

    The online network (the embedding model, a projection head and a predictor) predicts
    the projection that the target network (an exponential moving average of the
    embedding model and projection head, no predictor) gives the other view of the same
    image. The loss is the negative cosine similarity of prediction and target,
    symmetrized over the two views (lightly's ``NegativeCosineSimilarity``: -1 for a
    perfect prediction; the paper's ``2 - 2 cos`` is an affine function of it). No
    negatives: the predictor and the slowly moving target prevent collapse.

    EMA: the target's momentum rises with a cosine from ``momentum_start`` (auto: the
    paper's 0.996, lower for short runs) to ``momentum_end`` (1.0) over the run.

    Export: :meth:`embedding_model` is the online network, the one the paper evaluates
    ("at the end of training ... we only keep the encoder" of the online network).

    Default optimizer: SGD with momentum, base lr 0.12 per 256 images, weight decay 5e-4,
    the settings of lightly's CIFAR-10 benchmark (BYOL 86.8% kNN with a ResNet-18). The
    paper trains with LARS (lr 0.2 per 256 images, weight decay 1.5e-6) at batch 4096;
    as for SimCLR, LARS gives very small updates at the small batches of one GPU or a
    CPU. ViTs: the paper has no ViT recipe; the default is MoCo v3's ViT recipe (AdamW,
    lr 1.5e-4 per 256 images, weight decay 0.1), the closest published momentum-encoder
    setup for ViTs.

    Cost per image: two views through the online network with gradients (as SimCLR) plus
    two through the target without (about 1.3x SimCLR's step).

    Shapes: ``views`` is two ``(B, 3, H, W)`` tensors; the embeddings are
    ``(B, embed_dim)``, the projections and predictions ``(B, output_dim)``.
    """

    name: ClassVar[str] = "byol"
    Args: ClassVar[type] = BYOLArgs
    TransformArgs: ClassVar[type] = BYOLTransformArgs
    default_optimizer: ClassVar[str] = "sgd"
    default_lr: ClassVar[float] = 0.12
    default_weight_decay: ClassVar[float] = 5e-4
    vit_defaults: ClassVar[tuple[str, float, float] | None] = ("adamw", 1.5e-4, 0.1)

    args: BYOLArgs
    transform_args: BYOLTransformArgs

    def __init__(
        self,
        model: EmbeddingModel,
        args: BYOLArgs | dict[str, Any] | None = None,
        transform_args: BYOLTransformArgs | dict[str, Any] | None = None,
    ) -> None:
        super().__init__(model, args, transform_args)
        from lightly.loss import NegativeCosineSimilarity
        from lightly.models.modules.heads import BYOLPredictionHead, BYOLProjectionHead

        a = self.args
        self.projection_head: BYOLProjectionHead = BYOLProjectionHead(
            input_dim=model.embed_dim, hidden_dim=a.hidden_dim, output_dim=a.output_dim
        )
        self.prediction_head: BYOLPredictionHead = BYOLPredictionHead(
            input_dim=a.output_dim, hidden_dim=a.prediction_hidden_dim, output_dim=a.output_dim
        )
        self.target_model: EmbeddingModel = frozen_copy(model, "BYOL")
        self.target_projection_head: BYOLProjectionHead = frozen_copy(self.projection_head, "BYOL")
        self.criterion: NegativeCosineSimilarity = NegativeCosineSimilarity()

    @classmethod
    def view_recipe(cls, transform_args: BYOLTransformArgs) -> list[ViewConfig]:
        """The first view (always blurred), then the second (rarely blurred, sometimes
        solarized), one view each at ``image_size``."""
        return transform_args.asymmetric_pair()

    def training_step(
        self, views: list[Tensor], step: int, max_steps: int, steps_per_epoch: int
    ) -> dict[str, Tensor]:
        """Symmetric BYOL loss of the batch.

        Returns ``"loss"`` and the ``"ema_momentum"`` that the target update after this
        step uses.
        """
        if len(views) != 2:
            raise ConfigError(
                f"BYOL expects 2 views per batch (its view recipe), got {len(views)}."
            )
        head = nn.Sequential(self.projection_head, self.prediction_head)
        predictions = forward_views(self.model, head, views)
        with torch.no_grad():
            targets = forward_views(self.target_model, self.target_projection_head, views)
        loss = self.loss(predictions, targets)
        m = self.ema_momentum(step, max_steps)
        return {"loss": loss, "ema_momentum": loss.new_tensor(m).detach()}

    def loss(self, predictions: list[Tensor], targets: list[Tensor]) -> Tensor:
        """Mean negative cosine similarity of each view's prediction with the other view's
        target: ``(-cos(p0, t1) - cos(p1, t0)) / 2``, in ``[-1, 1]``."""
        p0, p1 = predictions
        t0, t1 = targets
        loss: Tensor = 0.5 * (self.criterion(p0, t1.detach()) + self.criterion(p1, t0.detach()))
        return loss

    def ema_momentum(self, step: int, max_steps: int) -> float:
        """EMA momentum of the target at ``step``: cosine from ``momentum_start`` to
        ``momentum_end`` over ``max_steps``."""
        return momentum_at(self.args.momentum_start, self.args.momentum_end, step, max_steps)

    def ema_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """The online embedding model and projection head with the target's."""
        return [
            (self.model, self.target_model),
            (self.projection_head, self.target_projection_head),
        ]

    @torch.no_grad()
    def on_after_optimizer_step(self, step: int, max_steps: int) -> None:
        """Move the target toward the online network: ``t = m * t + (1 - m) * o``."""
        update_ema(self.ema_pairs(), self.ema_momentum(step, max_steps))

    def embedding_model(self) -> EmbeddingModel:
        """The online embedding model, which the paper evaluates and keeps."""
        return self.model
