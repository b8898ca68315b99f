"""DINO: self-distillation from an EMA teacher with multi-crop views."""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor, nn

from lt_core import ConfigError, EmbeddingModel, ViewConfig
from lt_methods._dino_args import DINOArgs, DINOTransformArgs, resolved
from lt_methods._ema import cosine_momentum, forward_views, frozen_copy, update_ema
from lt_methods._method import Method
from lt_methods._registry import register_method

if TYPE_CHECKING:
    from lightly.loss import DINOLoss  # type: ignore[import-untyped]
    from lightly.models.modules.heads import DINOProjectionHead  # type: ignore[import-untyped]

__all__ = ["DINO"]


@register_method
class DINO(Method):
    """DINO, "Emerging Properties in Self-Supervised Vision Transformers", Caron, Touvron,
    Misra, Jegou, Mairal, Bojanowski and Joulin, ICCV 2021 (https://arxiv.org/abs/2104.14294).

    A student (the embedding model and a projection head) learns to match the softmax
    output of a teacher, an exponential moving average (EMA) of the student. The teacher
    sees the two global views; the student sees all views (2 global, then the local
    views) and is trained on every (teacher view, other student view) pair. The teacher
    output is centered (a running mean, all-reduced under ``torch.distributed``) and
    sharpened with a low temperature, which together prevent collapse.

    Schedules: the teacher temperature rises linearly from ``warmup_teacher_temp`` to
    ``teacher_temp`` (by default over 30 epochs, at most 30% of the run); the EMA momentum
    follows a cosine from ``momentum_start`` to ``momentum_end`` over the run; the head's
    last layer gets no update during the first epoch (``student_freeze_last_layer_*``).

    Default optimizer for ViTs: AdamW with base lr 5e-4 per 256 images, as in the paper.
    The paper raises the weight decay from 0.04 to 0.4 with a cosine; the trainer keeps
    it constant, so the default is the paper's starting value 0.04. CNNs: LARS with trust
    coefficient 0.02 (``optim_args.trust_coefficient``), base lr 0.3 per 256 images,
    weight decay 1e-6, solo-learn's CIFAR recipe; on the quality benchmark's split
    (10 epochs) it scored 29.2% kNN against 25.7% for the ViT recipe (the previous
    default for every model).

    Export: :meth:`embedding_model` is the teacher, which the paper evaluates.

    Shapes: ``views`` is two ``(B, 3, Hg, Wg)`` global tensors, then the local
    ``(B, 3, Hl, Wl)`` tensors; the head maps ``(B, embed_dim)`` to ``(B, output_dim)``.
    """

    name: ClassVar[str] = "dino"
    Args: ClassVar[type] = DINOArgs
    TransformArgs: ClassVar[type] = DINOTransformArgs
    default_optimizer: ClassVar[str] = "lars"
    default_lr: ClassVar[float] = 0.3
    default_weight_decay: ClassVar[float] = 1e-6
    vit_defaults: ClassVar[tuple[str, float, float] | None] = ("adamw", 5e-4, 0.04)

    args: DINOArgs
    transform_args: DINOTransformArgs

    def __init__(
        self,
        model: EmbeddingModel,
        args: DINOArgs | dict[str, Any] | None = None,
        transform_args: DINOTransformArgs | dict[str, Any] | None = None,
    ) -> None:
        super().__init__(model, args, transform_args)
        from lightly.loss import DINOLoss
        from lightly.models.utils import deactivate_requires_grad  # type: ignore[import-untyped]

        a = self.args
        self.projection_head: DINOProjectionHead = self._make_head(model.embed_dim)
        # The teacher starts as an exact copy of the student. lightly's head uses the legacy
        # weight_norm, which cannot be deep-copied, so its copy is built and loaded instead.
        self.teacher_model: EmbeddingModel = frozen_copy(model, "DINO")
        self.teacher_head: DINOProjectionHead = self._make_head(model.embed_dim)
        self.teacher_head.load_state_dict(self.projection_head.state_dict())
        deactivate_requires_grad(self.teacher_head)
        self.criterion: DINOLoss = DINOLoss(
            output_dim=resolved(a.output_dim, "output_dim"),
            teacher_temp=resolved(a.teacher_temp, "teacher_temp"),
            student_temp=a.student_temp,
            center_momentum=a.center_momentum,
        )

    def _make_head(self, input_dim: int) -> DINOProjectionHead:
        from lightly.models.modules.heads import DINOProjectionHead

        a = self.args
        with warnings.catch_warnings():  # torch's deprecation of the legacy weight_norm
            warnings.filterwarnings("ignore", message=".*weight_norm.*", category=FutureWarning)
            return DINOProjectionHead(
                input_dim=input_dim,
                hidden_dim=a.hidden_dim,
                bottleneck_dim=a.bottleneck_dim,
                output_dim=resolved(a.output_dim, "output_dim"),
                batch_norm=a.batch_norm,
                norm_last_layer=a.norm_last_layer,
            )

    @classmethod
    def view_recipe(cls, transform_args: DINOTransformArgs) -> list[ViewConfig]:
        """Global view 0 (always blurred), global view 1 (rarely blurred, sometimes
        solarized), both at ``image_size``, then ``local_view.num_views`` local views."""
        t = transform_args
        g1, lv = t.global_view_1, t.local_view
        assert g1 is not None  # checked in DINOTransformArgs.__post_init__
        recipe = [
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
        """DINO loss of the batch.

        Returns ``"loss"``, the ``"teacher_temp"`` used at this step and the
        ``"ema_momentum"`` that the teacher update after this step uses.
        """
        if len(views) < 2:
            raise ConfigError(
                f"DINO expects 2 global views followed by local views, got {len(views)} view(s)."
            )
        with torch.no_grad():
            teacher_out = forward_views(self.teacher_model, self.teacher_head, views[:2])
        student_out = forward_views(self.model, self.projection_head, views)
        temp = self.teacher_temperature(step, max_steps, steps_per_epoch)
        loss = self.criterion(teacher_out, student_out, teacher_temp=temp)
        return {
            "loss": loss,
            "teacher_temp": loss.new_tensor(temp).detach(),
            "ema_momentum": loss.new_tensor(self.ema_momentum(step, max_steps)).detach(),
        }

    def teacher_temperature(self, step: int, max_steps: int, steps_per_epoch: int) -> float:
        """Teacher temperature at ``step``: linear from ``warmup_teacher_temp`` at step 0 to
        ``teacher_temp`` at the end of the warm-up
        (:meth:`DINOArgs.teacher_temp_warmup_steps`), then constant."""
        a = self.args
        temp = resolved(a.teacher_temp, "teacher_temp")
        start = resolved(a.warmup_teacher_temp, "warmup_teacher_temp")
        warmup = a.teacher_temp_warmup_steps(max_steps, steps_per_epoch)
        if step >= warmup:
            return temp
        return start + (temp - start) * step / warmup

    def ema_momentum(self, step: int, max_steps: int) -> float:
        """EMA momentum of the teacher at ``step``: cosine from ``momentum_start`` to
        ``momentum_end`` over ``max_steps``."""
        a = self.args
        start = resolved(a.momentum_start, "momentum_start")
        return cosine_momentum(step, max_steps, start, a.momentum_end)

    def on_before_optimizer_step(self, step: int, steps_per_epoch: int) -> None:
        """Drop the gradients of the head's last layer during the first
        :meth:`DINOArgs.freeze_last_layer_steps` steps (set to ``None``, so the optimizer
        skips it)."""
        if step < self.args.freeze_last_layer_steps(max(1, steps_per_epoch)):
            for param in self.projection_head.last_layer.parameters():
                param.grad = None

    def embedding_model(self) -> EmbeddingModel:
        """The teacher's embedding model, the network that is exported.

        The paper evaluates the teacher: a running ensemble of the student, it performs
        better than the student throughout training (the paper's study of the teacher
        network, Figure 6), and the reference repository's k-NN and linear evaluations
        load the teacher's weights by default. The student (:attr:`model`) is the one the optimizer trains.
        """
        return self.teacher_model

    def ema_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """The student model and head with the teacher's."""
        return [(self.model, self.teacher_model), (self.projection_head, self.teacher_head)]

    @torch.no_grad()
    def on_after_optimizer_step(self, step: int, max_steps: int) -> None:
        """Move the teacher toward the student: ``t = m * t + (1 - m) * s``."""
        update_ema(self.ema_pairs(), self.ema_momentum(step, max_steps))
