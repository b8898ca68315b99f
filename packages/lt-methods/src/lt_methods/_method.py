"""The base class of all self-supervised methods.

A method owns everything that is specific to one SSL algorithm: its heads, its loss, any
teacher network, the views it wants (as plain :class:`lt_core.ViewConfig` data) and its
default optimizer settings. The training loop in ``lt_train`` only talks to this interface::

    method = get_method(name)(model, args, transform_args)
    optimizer = build(method.default_optimizer, method.param_groups(), ...)
    for each batch:
        views = augment(images, method.view_recipe(transform_args))
        out = method(views, step=..., max_steps=..., steps_per_epoch=...)  # training_step
        out["loss"].backward()
        method.on_before_optimizer_step(step, steps_per_epoch)
        optimizer.step()
        method.on_after_optimizer_step(step, max_steps)

``forward`` calls :meth:`Method.training_step`, so a method wrapped by DDP (through Fabric)
runs its gradient synchronization hooks.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import Any, ClassVar

from torch import Tensor, nn

from lt_core import ConfigError, ConfigTypeError, EmbeddingModel, ViewConfig, from_dict

__all__ = ["Method", "split_decay_params"]

#: Module types whose parameters never get weight decay.
_NORM_TYPES: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase,
    nn.GroupNorm,
    nn.LayerNorm,
    nn.LocalResponseNorm,
    *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()),
)


class Method(nn.Module, abc.ABC):
    """A self-supervised learning method: heads, loss and views around an embedding model.

    Subclasses set the class attributes below, implement :meth:`view_recipe` and
    :meth:`training_step`, and are made available by name with
    :func:`lt_methods.register_method`.

    Attributes:
        name: The registry name, lowercase (``method="simclr"``).
        Args: Keyword-only dataclass of the method's options (``method_args``).
        TransformArgs: Keyword-only dataclass of the view options (``transform_args``).
        default_optimizer: ``"sgd"``, ``"adamw"`` or ``"lars"``.
        default_lr: Base learning rate for a global batch of 256 images; the trainer uses
            ``default_lr * batch_size / 256``.
        default_weight_decay: Weight decay of all parameters except biases and norm layers.
        vit_defaults: ``(optimizer, lr per 256 images, weight decay)`` used instead of the
            three defaults above when the model is a vision transformer (the papers train
            ViTs with AdamW and CNNs with SGD or LARS); ``None`` keeps the defaults above
            for every model. See :meth:`optimizer_defaults`.
        min_batch_size: The fewest images one forward pass of the loss must see to learn
            anything (SimCLR: 2, an image needs another as its negative); the trainer
            rejects smaller batches before training.
        gathers_batch: Whether the loss gathers the batches of all processes (SimCLR's
            NT-Xent with ``gather_distributed=True``): then ``min_batch_size`` applies to
            the global batch, otherwise to each process's share of it.
        model: The student embedding model (wrapper + embedding layer), the part that is
            exported after training.
        args: The method options, an instance of ``Args``.
        transform_args: The view options, an instance of ``TransformArgs``.

    Args:
        model: The embedding model to pretrain; must pool (``pool=True``) so that its
            output is ``(B, embed_dim)``.
        args: An ``Args`` instance, a dict of its fields, or ``None`` for the defaults.
        transform_args: A ``TransformArgs`` instance, a dict, or ``None`` for the defaults.
    """

    name: ClassVar[str]
    Args: ClassVar[type]
    TransformArgs: ClassVar[type]
    default_optimizer: ClassVar[str]
    default_lr: ClassVar[float]
    default_weight_decay: ClassVar[float]
    vit_defaults: ClassVar[tuple[str, float, float] | None] = None
    min_batch_size: ClassVar[int] = 1
    gathers_batch: ClassVar[bool] = False

    def __init__(self, model: EmbeddingModel, args: Any = None, transform_args: Any = None) -> None:
        super().__init__()
        if not isinstance(model, EmbeddingModel):
            raise ConfigTypeError(
                f"{type(self).__name__} needs an lt_core.EmbeddingModel, got "
                f"{type(model).__name__}. Wrap your model wrapper: EmbeddingModel(wrapper)."
            )
        if not model.pool:
            raise ConfigError(
                f"{type(self).__name__} is a global method and needs EmbeddingModel(..., "
                "pool=True), whose output is (B, embed_dim)."
            )
        self.model = model
        self.args = type(self).resolve_args(_coerce(type(self).Args, args, "method_args"))
        self.transform_args = _coerce(type(self).TransformArgs, transform_args, "transform_args")

    @classmethod
    def resolve_args(
        cls, args: Any, num_images: int | None = None, total_steps: int | None = None
    ) -> Any:
        """Fill the automatic (``"auto"`` or ``None``) options of ``args`` from the dataset
        size and the run length; returns a new ``Args`` and leaves explicit values alone.

        The trainer calls this with both numbers known before it builds the method; a
        method built directly resolves with both unknown (its reference defaults). Methods
        whose ``Args`` has a ``resolve(num_images, total_steps)`` method use it; others
        are returned unchanged. Resolving twice changes nothing.
        """
        resolve = getattr(args, "resolve", None)
        return resolve(num_images, total_steps) if callable(resolve) else args

    @classmethod
    def optimizer_defaults(cls, family: str = "cnn") -> tuple[str, float, float]:
        """``(optimizer, lr per 256 images, weight decay)`` for a model of ``family``
        (``"cnn"`` or ``"vit"``): :attr:`vit_defaults` for a ViT when set, else
        ``default_optimizer``, ``default_lr`` and ``default_weight_decay``."""
        if family == "vit" and cls.vit_defaults is not None:
            return cls.vit_defaults
        return cls.default_optimizer, cls.default_lr, cls.default_weight_decay

    @classmethod
    @abc.abstractmethod
    def view_recipe(cls, transform_args: Any) -> list[ViewConfig]:
        """The view groups this method expects, in the order ``training_step`` takes them."""

    @abc.abstractmethod
    def training_step(
        self, views: list[Tensor], step: int, max_steps: int, steps_per_epoch: int
    ) -> dict[str, Tensor]:
        """Compute the loss of one batch.

        Args:
            views: One ``(B, 3, H, W)`` tensor per view, in the order of
                :meth:`view_recipe` (all views of the first group, then the next group).
            step: Index of the optimizer step, from 0.
            max_steps: Number of optimizer steps of the whole run.
            steps_per_epoch: Optimizer steps per epoch.

        Returns:
            Scalar tensors: ``"loss"`` (to backpropagate) and optional metrics.
        """

    def forward(
        self, views: list[Tensor], step: int, max_steps: int, steps_per_epoch: int
    ) -> dict[str, Tensor]:
        """Same as :meth:`training_step` (so DDP wrappers see a forward call)."""
        return self.training_step(
            views, step=step, max_steps=max_steps, steps_per_epoch=steps_per_epoch
        )

    def param_groups(self) -> list[dict[str, Any]]:
        """Optimizer parameter groups of the trainable parameters.

        Parameters that do not require gradients (an EMA teacher, frozen layers) are left
        out. Biases, norm-layer parameters and other 1-d parameters go to a group with
        ``"weight_decay": 0.0``; the other group has no ``weight_decay`` key so the trainer
        sets the configured value. Empty groups are dropped.
        """
        decay, no_decay = split_decay_params(self)
        groups: list[dict[str, Any]] = []
        if decay:
            groups.append({"name": "decay", "params": decay})
        if no_decay:
            groups.append({"name": "no_decay", "params": no_decay, "weight_decay": 0.0})
        return groups

    def on_before_optimizer_step(self, step: int, steps_per_epoch: int) -> None:
        """Called after the backward pass, before ``optimizer.step()``. No-op by default."""

    def on_after_optimizer_step(self, step: int, max_steps: int) -> None:
        """Called after ``optimizer.step()`` (EMA updates go here). No-op by default."""

    def embedding_model(self) -> EmbeddingModel:
        """The backbone with its embedding layer that gets exported: the student by
        default; a method with an EMA network returns the one its paper evaluates."""
        return self.model

    def ema_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        """``(trained module, its exponential moving average)`` pairs that
        :meth:`on_after_optimizer_step` updates; empty for methods without an EMA. The
        tests check that every average moves towards its module after a step."""
        return []


def split_decay_params(module: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """Split the trainable parameters of ``module`` into ``(decay, no_decay)``.

    ``no_decay`` holds biases, parameters of norm layers and every parameter with at most
    one dimension (e.g. a LayerScale gamma). Each parameter appears once, even if shared.
    """
    decay: list[nn.Parameter] = []
    no_decay: list[nn.Parameter] = []
    seen: set[int] = set()
    for submodule in module.modules():
        is_norm = isinstance(submodule, _NORM_TYPES)
        for name, param in submodule.named_parameters(recurse=False):
            if not param.requires_grad or id(param) in seen:
                continue
            seen.add(id(param))
            if is_norm or name.endswith("bias") or param.ndim <= 1:
                no_decay.append(param)
            else:
                decay.append(param)
    return decay, no_decay


def _coerce(cls: type, value: Any, name: str) -> Any:
    if value is None or isinstance(value, Mapping):
        return from_dict(cls, value, name)
    if not isinstance(value, cls):
        raise ConfigTypeError(
            f"{name} must be a {cls.__name__}, a dict of its fields or None, got "
            f"{type(value).__name__}."
        )
    return value
