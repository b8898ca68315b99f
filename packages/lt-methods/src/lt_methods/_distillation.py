"""Distillation: a student learns the embeddings of a frozen teacher of any architecture."""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar, cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lt_core import ConfigError, ConfigTypeError, EmbeddingModel, ViewConfig
from lt_methods._distillation_args import (
    DistillationArgs,
    DistillationTransformArgs,
    missing_teacher_message,
)
from lt_methods._method import Method
from lt_methods._queue import memory_bank
from lt_methods._registry import register_method

if TYPE_CHECKING:
    from lightly.models.modules.memory_bank import MemoryBankModule  # type: ignore[import-untyped]

__all__ = ["Distillation", "dense_loss", "queue_loss"]

_TEACHER = "teacher."


@register_method
class Distillation(Method):
    """Knowledge distillation into a student of any size from a frozen teacher of any
    architecture, "Distilling the Knowledge in a Neural Network", Hinton, Vinyals and Dean,
    2015 (https://arxiv.org/abs/1503.02531), with the self-supervised targets of
    LightlyTrain's distillation: a queue of teacher embeddings as soft class weights, as
    in "SEED: Self-supervised Distillation for Visual Representation", Fang et al., ICLR
    2021 (https://arxiv.org/abs/2101.04731), and a per-location regression of the
    teacher's feature map, as in "FitNets: Hints for Thin Deep Nets", Romero et al., ICLR
    2015 (https://arxiv.org/abs/1412.6550).

    Teacher and student see the same view (mixed with a shuffled copy of the batch,
    ``mixup``). The teacher runs under ``torch.no_grad`` and stays in eval mode, also after
    ``train()``; its parameters are frozen and in no parameter group. Learned heads project
    the student to the teacher's embedding dimension, so the two may differ.

    - ``"pooled"`` (:func:`queue_loss`): the L2-normalized teacher embeddings ``t`` of the
      batch and of the last ``queue_size`` batches' images are the keys ``K``; the loss is
      ``KL(softmax(t K^T / T) || softmax(s K^T / T))`` with ``s`` the normalized projected
      student embedding. The queue is lightly's ``MemoryBankModule``, kept in checkpoints.
    - ``"dense"`` (:func:`dense_loss`): the student's unpooled map is projected per
      location, resized (bilinear) to the teacher's grid, and both maps are L2-normalized
      per location; the loss is the squared distance per location (``2 - 2 cos``),
      averaged.
    - ``"both"``: ``pooled + dense_weight * dense``, from one forward of each network.

    The teacher's weights are not in :meth:`state_dict` (checkpoints stay the student's
    size): a resumed run rebuilds the teacher from ``method_args`` (the same files, or the
    same object), and ``load_state_dict`` keeps the teacher it has.

    Default optimizer: AdamW with square-root lr scaling from 1536 images. CNNs: lr 4e-3,
    weight decay 1e-6; ViTs: lr 5e-4, weight decay 0.04 (LightlyTrain's distillation
    defaults). LightlyTrain's 5e-4 is too small for a CNN student at small batches: on the
    quality benchmark (ResNet-10 student, batch 128, 390 steps, VICReg ResNet-18 teachers)
    kNN top-1 rose from 32.7 to 38.3 and from 33.3 to 40.7 with 4e-3 (docs/methods.md).

    Shapes: ``views`` is one ``(B, 3, H, W)`` tensor; the student's pooled embedding
    ``(B, Ds)`` is projected to ``(B, Dt)``, its map ``(B, Ds, h, w)`` to ``(B, Dt, H', W')``,
    the teacher's map's grid. The exported network is the student.
    """

    name: ClassVar[str] = "distillation"
    Args: ClassVar[type] = DistillationArgs
    TransformArgs: ClassVar[type] = DistillationTransformArgs
    default_optimizer: ClassVar[str] = "adamw"
    default_lr: ClassVar[float] = 4e-3
    default_weight_decay: ClassVar[float] = 1e-6
    vit_defaults: ClassVar[tuple[str, float, float] | None] = ("adamw", 5e-4, 0.04)

    args: DistillationArgs
    transform_args: DistillationTransformArgs

    def __init__(
        self,
        model: EmbeddingModel,
        args: DistillationArgs | dict[str, Any] | None = None,
        transform_args: DistillationTransformArgs | dict[str, Any] | None = None,
    ) -> None:
        super().__init__(model, args, transform_args)
        a = self.args
        teacher = as_teacher(a.teacher)
        teacher.requires_grad_(False)
        self.teacher: EmbeddingModel = teacher.eval()
        dim = teacher.embed_dim
        if a.pooled:
            queue_size = a.queue_size
            if not isinstance(queue_size, int):
                raise ConfigError(
                    f"method_args.queue_size is still {queue_size!r}; resolve the options "
                    "first (Method.resolve_args, which a method built directly calls itself)."
                )
            self.pooled_head: nn.Module = _head(model.embed_dim, dim, a)
            self.queue: MemoryBankModule = memory_bank((queue_size, dim))
        if a.dense:
            self.dense_head: nn.Module = _head(model.embed_dim, dim, a)
        self._register_state_dict_hook(_drop_teacher)  # type: ignore[no-untyped-call]
        self.register_load_state_dict_pre_hook(_keep_teacher)  # type: ignore[no-untyped-call]

    def train(self, mode: bool = True) -> Distillation:
        """Set the student and heads to ``mode``; the teacher stays in eval mode."""
        super().train(mode)
        self.teacher.eval()
        return self

    @classmethod
    def view_recipe(cls, transform_args: DistillationTransformArgs) -> list[ViewConfig]:
        """One view at ``image_size``, seen by teacher and student."""
        t = transform_args
        return [t.image_views(1)]

    def training_step(
        self, views: list[Tensor], step: int, max_steps: int, steps_per_epoch: int
    ) -> dict[str, Tensor]:
        """The distillation loss of the batch; also ``"loss_pooled"`` and
        ``"loss_dense"`` in ``mode="both"``."""
        if len(views) != 1:
            raise ConfigError(
                f"Distillation expects 1 view per batch (its view recipe), got {len(views)}."
            )
        x = mix(views[0]) if self.args.mixup else views[0]
        a = self.args
        with torch.no_grad():
            t_pooled, t_dense = self.teacher.forward_global_and_dense(x)
        out: dict[str, Tensor] = {}
        if a.pooled and a.dense:
            s_pooled, s_dense = self.model.forward_global_and_dense(x)
        elif a.pooled:
            s_pooled = self.model(x)
        else:
            s_dense = self.model.forward_dense(x)
        if a.pooled:
            t = F.normalize(t_pooled.float(), dim=-1)
            s = F.normalize(self.pooled_head(s_pooled).float(), dim=-1)
            bank = self.queue.bank.detach().clone()
            keys = torch.cat([t, bank.to(t.dtype)])
            out["loss_pooled"] = queue_loss(s, t, keys, a.temperature)
            self.queue._dequeue_and_enqueue(t)
        if a.dense:
            projected = self.dense_head(s_dense.movedim(1, -1)).movedim(-1, 1)
            out["loss_dense"] = dense_loss(projected, t_dense)
        if a.pooled and a.dense:
            out["loss"] = out["loss_pooled"] + a.dense_weight * out["loss_dense"]
            out = {k: v if k == "loss" else v.detach() for k, v in out.items()}
        else:
            out["loss"] = out.pop("loss_pooled" if a.pooled else "loss_dense")
        return out


def as_teacher(teacher: Any) -> EmbeddingModel:
    """The teacher as an :class:`lt_core.EmbeddingModel`: itself, or a model wrapper with
    an identity embedding layer. Strings are resolved by ``lt_train`` before this."""
    if teacher is None:
        raise ConfigError(missing_teacher_message())
    if isinstance(teacher, EmbeddingModel):
        return teacher
    if isinstance(teacher, str):
        raise ConfigTypeError(
            f"method_args.teacher={teacher!r} is a name or path, which lt_train resolves "
            "(lightly_train.train(..., method_args={'teacher': ...}) or lt_train.train). "
            "Fix: with lt_methods alone, pass the teacher module: an lt_core.EmbeddingModel "
            "or a model wrapper (get_model, forward_features, forward_pool, feature_dim)."
        )
    if isinstance(teacher, nn.Module) and callable(getattr(teacher, "forward_features", None)):
        if callable(getattr(teacher, "feature_dim", None)):
            return EmbeddingModel(cast(Any, teacher), embed_dim=None, pool=True)
    raise ConfigTypeError(
        f"method_args.teacher is a {type(teacher).__name__}, which is neither an "
        "lt_core.EmbeddingModel nor a model wrapper (get_model, forward_features, "
        "forward_pool, feature_dim). Fix: wrap it (docs/custom_models.md), or train through "
        "lightly_train.train, which also wraps torchvision and timm models."
    )


def mix(x: Tensor) -> Tensor:
    """``lam * x + (1 - lam) * x[perm]`` with ``lam ~ U(0, 1)`` and a random permutation
    of the batch, both drawn from the CPU generator (saved in checkpoints)."""
    lam = float(torch.rand(()))
    perm = torch.randperm(x.shape[0]).to(x.device, non_blocking=True)
    return lam * x + (1.0 - lam) * x[perm]


def queue_loss(student: Tensor, teacher: Tensor, keys: Tensor, temperature: float) -> Tensor:
    """``KL(p_t || p_s)`` averaged over the batch, ``p = softmax(x keys^T / temperature)``.

    Args:
        student: ``(B, D)`` L2-normalized student embeddings (projected).
        teacher: ``(B, D)`` L2-normalized teacher embeddings.
        keys: ``(K, D)`` L2-normalized teacher embeddings (the batch and the queue).
        temperature: Softmax temperature.
    """
    log_p_s = F.log_softmax(student @ keys.T / temperature, dim=-1)
    log_p_t = F.log_softmax(teacher @ keys.T / temperature, dim=-1)
    return F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True)


def dense_loss(student: Tensor, teacher: Tensor) -> Tensor:
    """Mean over batch and locations of ``|n(s) - n(t)|^2 = 2 - 2 cos(s, t)``, with ``n``
    the L2 normalization over channels; ``student`` ``(B, D, h, w)`` is resized
    (bilinear) to the grid of ``teacher`` ``(B, D, H, W)`` first."""
    if student.shape[-2:] != teacher.shape[-2:]:
        student = F.interpolate(
            student, size=teacher.shape[-2:], mode="bilinear", align_corners=False
        )
    s = F.normalize(student.float(), dim=1)
    t = F.normalize(teacher.float(), dim=1)
    return (s - t).pow(2).sum(dim=1).mean()


class _Head(nn.Module):
    """Linear projection (or an MLP with LayerNorm and GELU) over the last dimension."""

    def __init__(self, layers: list[nn.Module]) -> None:
        super().__init__()
        self.net = nn.Sequential(*layers)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)

    def forward(self, x: Tensor) -> Tensor:
        return cast(Tensor, self.net(x))


def _head(in_dim: int, out_dim: int, a: DistillationArgs) -> nn.Module:
    dims = [in_dim] + [a.projection_hidden_dim] * (a.n_projection_layers - 1) + [out_dim]
    layers: list[nn.Module] = []
    for i, (d_in, d_out) in enumerate(itertools.pairwise(dims)):
        layers.append(nn.Linear(d_in, d_out))
        if i < len(dims) - 2:
            layers += [nn.LayerNorm(d_out), nn.GELU()]
    return _Head(layers)


def _drop_teacher(
    module: nn.Module, state: dict[str, Any], prefix: str, metadata: Any
) -> dict[str, Any]:
    """State-dict hook: the teacher's weights stay out of checkpoints."""
    for key in [k for k in state if k.startswith(prefix + _TEACHER)]:
        del state[key]
    return state


def _keep_teacher(
    module: nn.Module, state: Mapping[str, Any], prefix: str, *args: Any, **kwargs: Any
) -> None:
    """Load pre-hook: a state dict without the teacher loads strictly (the teacher keeps
    its weights); one with the teacher's keys loads them."""
    teacher = cast(Distillation, module).teacher
    for key, value in teacher.state_dict(keep_vars=True).items():
        cast(dict[str, Any], state).setdefault(prefix + _TEACHER + key, value.detach())
