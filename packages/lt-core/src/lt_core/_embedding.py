"""The embedding layer and the embedding model of the documented call order."""

from __future__ import annotations

from typing import cast

from torch import Tensor, nn

from lt_core._errors import ConfigError
from lt_core._protocol import ModelWrapper
from lt_core._validate import check_wrapper_static

__all__ = ["EmbeddingLayer", "EmbeddingModel"]


class EmbeddingLayer(nn.Module):
    """Maps a ``(B, in_dim, h, w)`` feature map to ``(B, embed_dim, h, w)``.

    ``embed_dim=None`` is the identity (the output keeps ``in_dim`` channels); an int adds
    a 1x1 convolution with bias.
    """

    def __init__(self, in_dim: int, embed_dim: int | None = None) -> None:
        super().__init__()
        if embed_dim is not None and (
            isinstance(embed_dim, bool) or not isinstance(embed_dim, int) or embed_dim <= 0
        ):
            raise ConfigError(f"embed_dim must be None or a positive int, got {embed_dim!r}.")
        self.in_dim = in_dim
        self.out_dim = in_dim if embed_dim is None else embed_dim
        self.proj: nn.Module = (
            nn.Identity() if embed_dim is None else nn.Conv2d(in_dim, embed_dim, kernel_size=1)
        )

    def forward(self, x: Tensor) -> Tensor:
        return cast(Tensor, self.proj(x))


class EmbeddingModel(nn.Module):
    """A wrapper followed by an embedding layer, in the documented call order.

    With ``pool=True`` (global methods such as SimCLR and DINO) ``forward`` computes
    ``forward_features -> forward_pool -> embedding layer -> flatten`` and returns
    ``(B, embed_dim * h * w)``, which is ``(B, embed_dim)`` for the usual 1x1 pooling.
    With ``pool=False`` (dense methods) it skips ``forward_pool`` and returns the embedded
    map ``(B, embed_dim, H, W)`` unflattened.

    Args:
        wrapper: A model wrapper (checked statically here; run
            :func:`lt_core.validate_wrapper` for the dry run).
        embed_dim: ``None`` keeps ``wrapper.feature_dim()`` channels; an int projects to it.
        pool: Whether to call ``forward_pool``.
    """

    def __init__(
        self, wrapper: ModelWrapper, embed_dim: int | None = None, pool: bool = True
    ) -> None:
        super().__init__()
        dim = check_wrapper_static(wrapper)
        self.wrapper = cast(nn.Module, wrapper)
        self.embedding = EmbeddingLayer(dim, embed_dim)
        self.pool = pool

    @property
    def embed_dim(self) -> int:
        """Channels of the output (``feature_dim()`` when ``embed_dim`` is ``None``)."""
        return self.embedding.out_dim

    def forward(self, x: Tensor) -> Tensor:
        wrapper = cast(ModelWrapper, self.wrapper)
        features = wrapper.forward_features(x)
        if self.pool:
            emb = self.embedding(wrapper.forward_pool(features)["pooled_features"])
            return cast(Tensor, emb.flatten(start_dim=1))
        return cast(Tensor, self.embedding(features["features"]))

    def forward_dense(self, x: Tensor) -> Tensor:
        """The embedded unpooled map ``(B, embed_dim, H, W)``, whatever ``pool`` says:
        ``forward_features -> embedding layer``, no ``forward_pool``."""
        features = cast(ModelWrapper, self.wrapper).forward_features(x)
        return cast(Tensor, self.embedding(features["features"]))

    def forward_global_and_dense(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Both outputs from one ``forward_features`` call: the pooled embedding
        ``(B, embed_dim * h * w)`` (as ``forward`` with ``pool=True``) and the embedded
        unpooled map ``(B, embed_dim, H, W)`` (as :meth:`forward_dense`). Dense methods
        (DenseCL, dense distillation) use this to train the global and the local
        features of one pass."""
        wrapper = cast(ModelWrapper, self.wrapper)
        features = wrapper.forward_features(x)
        pooled = self.embedding(wrapper.forward_pool(features)["pooled_features"])
        dense = self.embedding(features["features"])
        return cast(Tensor, pooled.flatten(start_dim=1)), cast(Tensor, dense)
