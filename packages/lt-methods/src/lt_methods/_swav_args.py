"""Options of SwAV: ``method_args`` (:class:`SwAVArgs`) and ``transform_args``
(:class:`SwAVTransformArgs`, 2 global views and the multi-crop local views).

``"auto"`` (or ``None``) options follow the dataset size, the run length and the epoch
length: :meth:`SwAVArgs.resolve` sets those that follow the dataset size before training,
the schedules (:meth:`SwAVArgs.freeze_steps`, :meth:`SwAVArgs.queue_start`) those that
need the epoch length, and :meth:`SwAVArgs.queue_on` decides the queue from the batch.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

from lt_core import ConfigError
from lt_methods._checks import check_int, check_lr_scaling, check_positive, scale_size
from lt_methods._dino_args import DINOLocalViewArgs, DINORandomResizeArgs, resolved
from lt_methods._transform_args import MethodTransformArgs

__all__ = ["SwAVArgs", "SwAVTransformArgs"]

Auto = Literal["auto"]

#: The paper's 3000 prototypes are for ImageNet's 1.28M images and 1000 classes.
_MAX_PROTOTYPES = 3000
_MIN_PROTOTYPES = 100
#: One prototype per this many images: 500 for CIFAR-10's 50k images, close to the 512
#: of lightly's CIFAR-10 benchmark (about 50 per class).
_IMAGES_PER_PROTOTYPE = 100
#: The paper's queue for batches of 256: 15 batches, started at epoch 15.
_QUEUE_LENGTH = 3840
_QUEUE_START_EPOCHS = 15
_QUEUE_START_MAX_FRACTION = 0.2
#: The queue holds at most this fraction of the dataset, so that its features are recent.
_QUEUE_MAX_DATA_FRACTION = 0.1
_FREEZE_PROTOTYPES_EPOCHS = 1
_AUTO_FIELDS = (
    "num_prototypes",
    "freeze_prototypes_steps",
    "use_queue",
    "queue_length",
    "queue_start_steps",
)


@dataclass(kw_only=True)
class SwAVArgs:
    """Options of :class:`SwAV` (``method_args``). ``"auto"`` and ``None`` both mean
    automatic (``None`` is stored as ``"auto"``).

    Attributes:
        hidden_dim: Width of the projection head's hidden layer (paper: 2048).
        output_dim: Dimension of the normalized projections and of the prototypes
            (paper: 128).
        num_prototypes: Number of prototypes ``K``. Auto: one per 100 training images,
            rounded to a multiple of 100 and clamped to 100-3000 (the paper's 3000 for
            ImageNet's 1.28M images; 500 for CIFAR-10). Unknown size: 3000.
        temperature: Softmax temperature of the swapped prediction (paper: 0.1).
        sinkhorn_iterations: Iterations of the Sinkhorn-Knopp algorithm (paper: 3).
        sinkhorn_epsilon: Entropy regularization of the codes (paper: 0.05).
        freeze_prototypes_steps: Optimizer steps at the start during which the prototypes
            are not updated. Auto: 1 epoch (the paper).
        use_queue: Whether the codes are computed over the batch and a queue of the
            features of earlier batches. Auto: on when the global batch is smaller than
            ``num_prototypes`` (the paper adds the queue for batches of 256 with 3000
            prototypes and leaves it out at 4096): an equal partition of the batch over
            more prototypes than images is a poor target. Decided at the first step, and
            reported as the metric ``queue_active``.
        queue_length: Projections each queue (one per global view, over all processes)
            holds. Auto:
            the paper's 3840 (15 batches of 256), at most a tenth of the dataset so that
            its features stay recent. 0 for no queue.
        queue_start_steps: Optimizer steps before the queue takes part in the codes; it
            is filled from the first step and used only once full. Auto: the paper's 15
            epochs, at most a fifth of the run.
        lr_scale_method: ``"linear"`` or ``"sqrt"``: how the trainer scales the base lr to
            the effective batch (see :class:`lt_methods.SimCLRArgs`).
        reference_batch_size: Batch size the base learning rate is given for.
    """

    hidden_dim: int = 2048
    output_dim: int = 128
    num_prototypes: int | Auto | None = "auto"
    temperature: float = 0.1
    sinkhorn_iterations: int = 3
    sinkhorn_epsilon: float = 0.05
    freeze_prototypes_steps: int | Auto | None = "auto"
    use_queue: bool | Auto | None = "auto"
    queue_length: int | Auto | None = "auto"
    queue_start_steps: int | Auto | None = "auto"
    lr_scale_method: Literal["linear", "sqrt"] = "linear"
    reference_batch_size: int = 256

    def __post_init__(self) -> None:
        for key in _AUTO_FIELDS:
            if getattr(self, key) is None:
                setattr(self, key, "auto")
        check_int("method_args.hidden_dim", self.hidden_dim, 1)
        check_int("method_args.output_dim", self.output_dim, 1)
        check_int("method_args.sinkhorn_iterations", self.sinkhorn_iterations, 1)
        check_positive("method_args.temperature", self.temperature)
        check_positive("method_args.sinkhorn_epsilon", self.sinkhorn_epsilon)
        for key, minimum in (
            ("num_prototypes", 2),
            ("freeze_prototypes_steps", 0),
            ("queue_length", 0),
            ("queue_start_steps", 0),
        ):
            if getattr(self, key) != "auto":
                check_int(f"method_args.{key}", getattr(self, key), minimum)
        if self.use_queue not in ("auto", True, False):
            raise ConfigError(
                f"method_args.use_queue must be true, false or 'auto', got {self.use_queue!r}."
            )
        if self.use_queue is True and self.queue_length == 0:
            raise ConfigError(
                "method_args.use_queue=True needs a queue: set method_args.queue_length > 0 "
                "(or leave it 'auto')."
            )
        check_lr_scaling(self.lr_scale_method, self.reference_batch_size)

    def resolve(self, num_images: int | None = None, total_steps: int | None = None) -> SwAVArgs:
        """A copy with the automatic ``num_prototypes`` and ``queue_length`` set from the
        dataset size (``None``: unknown, the paper's ImageNet values). The options that
        follow the epoch length or the batch stay ``"auto"`` and are resolved when
        training."""
        num_prototypes = self.num_prototypes
        if num_prototypes == "auto":
            num_prototypes = _MAX_PROTOTYPES
            if num_images is not None:
                hundreds = round(num_images / _IMAGES_PER_PROTOTYPE / 100)
                num_prototypes = min(_MAX_PROTOTYPES, max(_MIN_PROTOTYPES, 100 * hundreds))
        queue_length = self.queue_length
        if queue_length == "auto":
            queue_length = _QUEUE_LENGTH
            if num_images is not None:
                queue_length = min(queue_length, int(num_images * _QUEUE_MAX_DATA_FRACTION))
        return dataclasses.replace(self, num_prototypes=num_prototypes, queue_length=queue_length)

    def freeze_steps(self, steps_per_epoch: int) -> int:
        """Optimizer steps at the start during which the prototypes stay fixed."""
        if self.freeze_prototypes_steps != "auto":
            return resolved(self.freeze_prototypes_steps, "freeze_prototypes_steps")
        return _FREEZE_PROTOTYPES_EPOCHS * steps_per_epoch

    def queue_start(self, max_steps: int, steps_per_epoch: int) -> int:
        """First optimizer step at which a full queue takes part in the codes."""
        if self.queue_start_steps != "auto":
            return resolved(self.queue_start_steps, "queue_start_steps")
        cap = int(max_steps * _QUEUE_START_MAX_FRACTION)
        return min(_QUEUE_START_EPOCHS * steps_per_epoch, cap)

    def queue_on(self, global_batch_size: int) -> bool:
        """Whether the queue is used for a global batch of ``global_batch_size`` images."""
        if resolved(self.queue_length, "queue_length") == 0 or self.use_queue is False:
            return False
        if self.use_queue is True:
            return True
        return global_batch_size < resolved(self.num_prototypes, "num_prototypes")


@dataclass(kw_only=True)
class SwAVTransformArgs(MethodTransformArgs):
    """Options of SwAV's multi-crop views (``transform_args``): 2 global views at
    ``image_size``, then ``local_view.num_views`` small local views. See
    :class:`MethodTransformArgs` for the shared keys (SimCLR's color jitter, grayscale
    and blur, as in the paper, for every view).

    Attributes:
        random_resize: Crop of the global views (area 0.14-1, the paper).
        local_view: The local views (6 of 96 pixels at 224, area 0.05-0.14, blur p=0.5,
            the paper's recipe; DINO's block), or ``None`` for none.
    """

    random_resize: DINORandomResizeArgs | None = field(default_factory=DINORandomResizeArgs)
    local_view: DINOLocalViewArgs | None = field(default_factory=DINOLocalViewArgs)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.local_view is not None:
            self.local_view.check("transform_args.local_view")

    def local_size(self) -> tuple[int, int]:
        """Size of the local views: ``local_view.view_size`` or ``image_size * 96 / 224``."""
        size = self.local_view.view_size if self.local_view is not None else "auto"
        return scale_size(self.image_size, 96, 224) if size == "auto" else size
