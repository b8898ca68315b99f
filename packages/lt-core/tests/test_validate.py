from __future__ import annotations

import pytest
import torch
from _wrappers import GoodWrapper, TinyCNN, ViTWrapper
from torch import Tensor, nn

from lt_core import (
    LightlyTrainError,
    ModelWrapper,
    WrapperError,
    WrapperTypeError,
    WrapperValueError,
    validate_wrapper,
)


def test_good_cnn_wrapper_passes() -> None:
    info = validate_wrapper(GoodWrapper(), image_size=32)
    assert info.feature_dim == 16
    assert info.feature_size == (16, 16)
    assert info.pooled_size == (1, 1)
    assert isinstance(GoodWrapper(), ModelWrapper)


def test_vit_token_wrapper_passes() -> None:
    info = validate_wrapper(ViTWrapper(), image_size=(32, 48))
    assert info.feature_dim == 24
    assert info.feature_size == (4, 6)


def test_training_mode_is_restored_and_no_grad() -> None:
    w = GoodWrapper()
    w.train()
    w.model.bn.eval()  # a user-frozen submodule keeps its own mode
    validate_wrapper(w, image_size=16)
    assert w.training and w.model.training
    assert not w.model.bn.training
    assert w.model.conv.weight.grad is None
    assert int(w.model.bn.num_batches_tracked) == 0  # ran in eval mode: stats untouched


def test_check_pool_false_skips_forward_pool() -> None:
    class NoPool(GoodWrapper):
        def forward_pool(self, x: dict[str, Tensor]) -> dict[str, Tensor]:
            raise NotImplementedError

    assert validate_wrapper(NoPool(), image_size=16, check_pool=False).pooled_size is None
    with pytest.raises(WrapperError, match=r"forward_pool\(\) raised NotImplementedError"):
        validate_wrapper(NoPool(), image_size=16)


class _Override(GoodWrapper):
    """GoodWrapper with one method replaced by a lambda given in the test table."""

    def __init__(self, **overrides: object) -> None:
        super().__init__()
        for name, fn in overrides.items():
            object.__setattr__(self, name, fn.__get__(self))  # type: ignore[attr-defined]


def _feat(x: Tensor, c: int = 16) -> Tensor:
    return torch.zeros(len(x), c, 4, 4)


BAD_WRAPPERS = [
    pytest.param(
        lambda: "resnet",
        WrapperTypeError,
        r"must be a torch.nn.Module, got builtins.str",
        id="not-a-module",
    ),
    pytest.param(
        lambda: TinyCNN(),
        WrapperTypeError,
        r"TinyCNN is missing the wrapper method\(s\) get_model, forward_features, forward_pool, feature_dim",
        id="plain-model",
    ),
    pytest.param(
        lambda: type(
            "NoPool",
            (nn.Module,),
            {
                "get_model": lambda s: s,
                "forward_features": lambda s, x: {},
                "feature_dim": lambda s: 1,
            },
        )(),
        WrapperTypeError,
        r"NoPool is missing the wrapper method\(s\) forward_pool",
        id="missing-method",
    ),
    pytest.param(
        lambda: _Override(get_model=lambda s: "model"),
        WrapperTypeError,
        r"get_model\(\) must return a torch.nn.Module",
        id="get_model-not-module",
    ),
    pytest.param(
        lambda: _Override(forward_features=lambda s, x: _feat(x)),
        WrapperTypeError,
        r"forward_features\(\) must return a dict .* got a Tensor of shape \(2, 16, 4, 4\)",
        id="features-tensor",
    ),
    pytest.param(
        lambda: _Override(forward_features=lambda s, x: [_feat(x)]),
        WrapperTypeError,
        r"forward_features\(\) must return a dict .* got list",
        id="features-list",
    ),
    pytest.param(
        lambda: _Override(forward_features=lambda s, x: {"feats": _feat(x)}),
        WrapperValueError,
        r"forward_features\(\) returned a dict without the key 'features' \(keys: \['feats'\]\)",
        id="no-features-key",
    ),
    pytest.param(
        lambda: _Override(forward_features=lambda s, x: {"features": torch.zeros(len(x), 16)}),
        WrapperValueError,
        r"forward_features\(\)\['features'\] must have 4 dimensions .* got shape \(2, 16\)",
        id="features-2d",
    ),
    pytest.param(
        lambda: _Override(forward_features=lambda s, x: {"features": _feat(x, 8)}),
        WrapperValueError,
        r"forward_features\(\)\['features'\] has 8 channels .* feature_dim\(\) returns 16",
        id="channel-mismatch",
    ),
    pytest.param(
        lambda: _Override(forward_features=lambda s, x: {"features": _feat(x)[:1]}),
        WrapperValueError,
        r"forward_features\(\)\['features'\] has batch size 1 for an input batch of size 2",
        id="features-batch",
    ),
    pytest.param(
        lambda: _Override(forward_features=lambda s, x: {"features": _feat(x) * float("nan")}),
        WrapperValueError,
        r"forward_features\(\)\['features'\] contains 512 NaN or infinite values",
        id="features-nan",
    ),
    pytest.param(
        lambda: _Override(forward_features=lambda s, x: {"features": _feat(x).long()}),
        WrapperTypeError,
        r"must be a floating-point tensor",
        id="features-int",
    ),
    pytest.param(
        lambda: _Override(forward_features=lambda s, x: 1 / 0),
        WrapperError,
        r"forward_features\(\) raised ZeroDivisionError on a batch of shape \(2, 3, 16, 16\)",
        id="features-raises",
    ),
    pytest.param(
        lambda: _Override(
            forward_pool=lambda s, x: {
                "pooled_features": x["features"]
                .mean((0, 2, 3))[None, :, None, None]
                .expand(1, -1, 1, 1)
            }
        ),
        WrapperValueError,
        r"forward_pool\(\)\['pooled_features'\] has batch size 1 for an input batch of size 2",
        id="pool-drops-batch",
    ),
    pytest.param(
        lambda: _Override(
            forward_pool=lambda s, x: {"pooled_features": x["features"].mean((2, 3))}
        ),
        WrapperValueError,
        r"forward_pool\(\)\['pooled_features'\] must have 4 dimensions .* got shape \(2, 16\)",
        id="pool-2d",
    ),
    pytest.param(
        lambda: _Override(forward_pool=lambda s, x: x),
        WrapperValueError,
        r"forward_pool\(\) returned a dict without the key 'pooled_features'",
        id="pool-no-key",
    ),
    pytest.param(
        lambda: _Override(feature_dim=lambda s: 0),
        WrapperValueError,
        r"feature_dim\(\) must return a positive int, got 0",
        id="dim-zero",
    ),
    pytest.param(
        lambda: _Override(feature_dim=lambda s: 16.0),
        WrapperTypeError,
        r"feature_dim\(\) must return an int .* got 16.0 of type float",
        id="dim-float",
    ),
    pytest.param(
        lambda: _Override(feature_dim=lambda s: True),
        WrapperTypeError,
        r"feature_dim\(\) must return an int",
        id="dim-bool",
    ),
]


@pytest.mark.parametrize(("make", "error", "message"), BAD_WRAPPERS)
def test_bad_wrapper_is_rejected(make, error, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error, match=message) as info:
        validate_wrapper(make(), image_size=16)
    assert isinstance(info.value, LightlyTrainError)
    assert "Fix" in str(info.value) or "must" in str(info.value)


def test_errors_inherit_builtins() -> None:
    assert issubclass(WrapperTypeError, TypeError)
    assert issubclass(WrapperValueError, ValueError)
    assert issubclass(WrapperTypeError, WrapperError)


def test_dry_run_uses_wrapper_device_and_size() -> None:
    seen: list[tuple[int, ...]] = []

    class Spy(GoodWrapper):
        def forward_features(self, x: Tensor) -> dict[str, Tensor]:
            seen.append(tuple(x.shape))
            return super().forward_features(x)

    validate_wrapper(Spy(), image_size=(24, 40), batch_size=3)
    assert seen == [(3, 3, 24, 40)]
