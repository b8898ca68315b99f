"""The wrapper protocol that model authors implement.

A wrapper is an ``nn.Module`` with four methods. lightly-train never looks inside the wrapped
model; it only calls these methods, in this order during training::

    forward_features -> forward_pool -> embedding layer -> flatten

Dense methods skip ``forward_pool`` and embed the unpooled feature map.
"""

from __future__ import annotations

from typing import NotRequired, Protocol, TypedDict, runtime_checkable

from torch import Tensor, nn

__all__ = ["WRAPPER_METHODS", "ForwardFeaturesOutput", "ForwardPoolOutput", "ModelWrapper"]


class ForwardFeaturesOutput(TypedDict):
    """Return value of :meth:`ModelWrapper.forward_features`.

    ``features`` is the feature map before any pooling or head, with shape
    ``(B, feature_dim, H, W)``. Extra entries (for example a ViT class token under
    ``"cls_token"``) are allowed and are passed unchanged to ``forward_pool``.
    """

    features: Tensor
    cls_token: NotRequired[Tensor]


class ForwardPoolOutput(TypedDict):
    """Return value of :meth:`ModelWrapper.forward_pool`.

    ``pooled_features`` has shape ``(B, feature_dim, h, w)``, usually with ``h = w = 1``.
    """

    pooled_features: Tensor


@runtime_checkable
class ModelWrapper(Protocol):
    """The four methods every model wrapper implements (it must also be an ``nn.Module``)."""

    def get_model(self) -> nn.Module:
        """Return the wrapped model, whose ``state_dict`` is exported after training."""
        ...

    def forward_features(self, x: Tensor) -> ForwardFeaturesOutput:
        """Compute the unpooled feature map ``(B, feature_dim, H, W)`` of images ``x``."""
        ...

    def forward_pool(self, x: ForwardFeaturesOutput) -> ForwardPoolOutput:
        """Pool the output of ``forward_features`` to ``(B, feature_dim, h, w)``."""
        ...

    def feature_dim(self) -> int:
        """Return the number of feature channels, ``C`` in ``(B, C, H, W)``."""
        ...


#: Method names and signatures of the protocol, used in error messages.
WRAPPER_METHODS: dict[str, str] = {
    "get_model": "get_model(self) -> torch.nn.Module",
    "forward_features": "forward_features(self, x: Tensor) -> {'features': Tensor (B, feature_dim, H, W)}",
    "forward_pool": "forward_pool(self, x: dict) -> {'pooled_features': Tensor (B, feature_dim, h, w)}",
    "feature_dim": "feature_dim(self) -> int",
}
