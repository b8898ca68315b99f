"""DINO: self-distillation from an EMA teacher with multi-crop views."""

from __future__ import annotations

import copy
import warnings
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import Tensor, nn

from lt_core import ConfigError, EmbeddingModel, ViewConfig
from lt_methods._checks import color_jitter
from lt_methods._dino_args import DINOArgs, DINOTransformArgs
from lt_methods._method import Method
from lt_methods._registry import register_method

if TYPE_CHECKING:
    from lightly.loss import DINOLoss  # type: ignore[import-untyped]
    from lightly.models.modules.heads import DINOProjectionHead  # type: ignore[import-untyped]

__all__ = ["DINO"]

#: The paper's color jitter: brightness 0.4, contrast 0.4, saturation 0.2, hue 0.1.
_JITTER = (0.4, 0.4, 0.2, 0.1)


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
    ``teacher_temp`` over ``warmup_teacher_temp_epochs`` (at most the whole run); the EMA
    momentum follows a cosine from ``momentum_start`` to ``momentum_end`` over the run; the
    head's last layer gets no update during the first ``freeze_last_layer_epochs``.

    Default optimizer: AdamW with base lr 5e-4 per 256 images, as in the paper. The paper
    raises the weight decay from 0.04 to 0.4 with a cosine; the trainer keeps it constant,
    so the default is the paper's starting value 0.04.

    Shapes: ``views`` is two ``(B, 3, Hg, Wg)`` global tensors, then the local
    ``(B, 3, Hl, Wl)`` tensors; the head maps ``(B, embed_dim)`` to ``(B, out_dim)``.
    """

    name: ClassVar[str] = "dino"
    Args: ClassVar[type] = DINOArgs
    TransformArgs: ClassVar[type] = DINOTransformArgs
    default_optimizer: ClassVar[str] = "adamw"
    default_lr: ClassVar[float] = 5e-4
    default_weight_decay: ClassVar[float] = 0.04

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
        self.teacher_model: EmbeddingModel = _deepcopy(model)
        self.teacher_head: DINOProjectionHead = self._make_head(model.embed_dim)
        self.teacher_head.load_state_dict(self.projection_head.state_dict())
        deactivate_requires_grad(self.teacher_model)
        deactivate_requires_grad(self.teacher_head)
        self.criterion: DINOLoss = DINOLoss(
            output_dim=a.out_dim,
            teacher_temp=a.teacher_temp,
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
                output_dim=a.out_dim,
                batch_norm=a.batch_norm,
                freeze_last_layer=a.freeze_last_layer_epochs,
                norm_last_layer=a.norm_last_layer,
            )

    @classmethod
    def view_recipe(cls, transform_args: DINOTransformArgs) -> list[ViewConfig]:
        """Global view 1 (always blurred), global view 2 (rarely blurred, sometimes
        solarized), then ``local_view.num_views`` local views."""
        t = transform_args
        g, lv = t.global_view, t.local_view
        common: dict[str, Any] = dict(
            hflip_prob=t.hflip_prob,
            color_jitter=color_jitter(_JITTER, t.color_jitter_strength, t.color_jitter_prob),
            grayscale_prob=t.grayscale_prob,
            mean=t.mean,
            std=t.std,
        )
        recipe = [
            ViewConfig(
                size=t.global_size(),
                num_views=1,
                crop_scale=g.crop_scale,
                blur_prob=g.blur_prob[i],
                solarize_prob=g.solarize_prob[i],
                **common,
            )
            for i in range(2)
        ]
        if lv.num_views > 0:
            recipe.append(
                ViewConfig(
                    size=t.local_size(),
                    num_views=lv.num_views,
                    crop_scale=lv.crop_scale,
                    blur_prob=lv.blur_prob,
                    solarize_prob=0.0,
                    **common,
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
            teacher_out = _forward(self.teacher_model, self.teacher_head, views[:2])
        student_out = _forward(self.model, self.projection_head, views)
        temp = self.teacher_temperature(step, max_steps, steps_per_epoch)
        loss = self.criterion(teacher_out, student_out, teacher_temp=temp)
        return {
            "loss": loss,
            "teacher_temp": loss.new_tensor(temp).detach(),
            "ema_momentum": loss.new_tensor(self.ema_momentum(step, max_steps)).detach(),
        }

    def teacher_temperature(self, step: int, max_steps: int, steps_per_epoch: int) -> float:
        """Teacher temperature at ``step``: linear warm-up over
        ``min(warmup_teacher_temp_epochs * steps_per_epoch, max_steps)`` steps, ending at
        ``teacher_temp`` on the last warm-up step."""
        a = self.args
        warmup = min(a.warmup_teacher_temp_epochs * steps_per_epoch, max_steps)
        if warmup <= 1:
            return a.teacher_temp
        progress = min(1.0, step / (warmup - 1))
        return a.warmup_teacher_temp + (a.teacher_temp - a.warmup_teacher_temp) * progress

    def ema_momentum(self, step: int, max_steps: int) -> float:
        """EMA momentum of the teacher at ``step``: cosine from ``momentum_start`` to
        ``momentum_end`` over ``max_steps``."""
        from lightly.utils.scheduler import cosine_schedule  # type: ignore[import-untyped]

        a = self.args
        step = min(step, max_steps)
        return float(cosine_schedule(step, max_steps, a.momentum_start, a.momentum_end))

    def on_before_optimizer_step(self, step: int, steps_per_epoch: int) -> None:
        """Drop the gradients of the head's last layer during the first
        ``freeze_last_layer_epochs`` epochs (set to ``None``, so the optimizer skips it)."""
        self.projection_head.cancel_last_layer_gradients(step // max(1, steps_per_epoch))

    @torch.no_grad()
    def on_after_optimizer_step(self, step: int, max_steps: int) -> None:
        """Move the teacher toward the student: ``t = m * t + (1 - m) * s``."""
        from lightly.models.utils import update_momentum

        m = self.ema_momentum(step, max_steps)
        update_momentum(self.model, self.teacher_model, m)
        update_momentum(self.projection_head, self.teacher_head, m)


def _forward(model: nn.Module, head: nn.Module, views: list[Tensor]) -> list[Tensor]:
    """Head outputs of each view; consecutive views of equal shape share one forward."""
    groups: list[list[Tensor]] = []
    for view in views:
        if groups and groups[-1][0].shape == view.shape:
            groups[-1].append(view)
        else:
            groups.append([view])
    out: list[Tensor] = []
    for group in groups:
        out.extend(head(model(torch.cat(group))).chunk(len(group)))
    return out


def _deepcopy(model: nn.Module) -> Any:
    try:
        return copy.deepcopy(model)
    except RuntimeError as e:
        raise ConfigError(
            f"DINO copies the model for its EMA teacher, but copy.deepcopy failed: {e} "
            "Models with torch.nn.utils.weight_norm cannot be copied; use "
            "torch.nn.utils.parametrizations.weight_norm instead."
        ) from e
