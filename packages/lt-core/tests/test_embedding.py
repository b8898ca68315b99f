from __future__ import annotations

import pytest
import torch
from _wrappers import GoodWrapper, TinyCNN, ViTWrapper

from lt_core import ConfigError, EmbeddingLayer, EmbeddingModel, WrapperTypeError


def test_identity_embedding_keeps_feature_dim() -> None:
    model = EmbeddingModel(GoodWrapper(16))
    out = model(torch.randn(3, 3, 16, 16))
    assert out.shape == (3, 16)
    assert model.embed_dim == 16
    assert isinstance(model.embedding.proj, torch.nn.Identity)


def test_int_embed_dim_adds_1x1_conv() -> None:
    model = EmbeddingModel(ViTWrapper(), embed_dim=8)
    assert isinstance(model.embedding.proj, torch.nn.Conv2d)
    assert model.embedding.proj.kernel_size == (1, 1)
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 8)


def test_call_order_matches_manual_composition() -> None:
    torch.manual_seed(0)
    w = GoodWrapper(16)
    model = EmbeddingModel(w, embed_dim=4).eval()
    x = torch.randn(2, 3, 8, 8)
    expected = model.embedding(w.forward_pool(w.forward_features(x))["pooled_features"]).flatten(1)
    assert torch.allclose(model(x), expected)


def test_unpooled_path_for_dense_methods() -> None:
    model = EmbeddingModel(GoodWrapper(16), embed_dim=5, pool=False)
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 5, 8, 8)


def test_gradients_reach_the_wrapped_model() -> None:
    w = GoodWrapper(16)
    EmbeddingModel(w, embed_dim=4)(torch.randn(2, 3, 8, 8)).sum().backward()
    assert w.model.conv.weight.grad is not None


@pytest.mark.parametrize("bad", [0, -1, 2.5, True])
def test_bad_embed_dim(bad: object) -> None:
    with pytest.raises(ConfigError, match="embed_dim must be None or a positive int"):
        EmbeddingLayer(16, bad)  # type: ignore[arg-type]


def test_embedding_model_rejects_plain_module() -> None:
    with pytest.raises(WrapperTypeError, match="missing the wrapper method"):
        EmbeddingModel(TinyCNN())  # type: ignore[arg-type]


def test_dense_outputs_whatever_pool_says() -> None:
    torch.manual_seed(0)
    model = EmbeddingModel(GoodWrapper(16), embed_dim=5, pool=True)
    x = torch.randn(2, 3, 16, 16)
    w = model.wrapper
    dense = model.forward_dense(x)
    expected = model.embedding(w.forward_features(x)["features"])
    assert dense.ndim == 4 and dense.shape[:2] == (2, 5)
    torch.testing.assert_close(dense, expected)
    pooled, dense2 = model.forward_global_and_dense(x)
    torch.testing.assert_close(pooled, model(x))
    torch.testing.assert_close(dense2, expected)
