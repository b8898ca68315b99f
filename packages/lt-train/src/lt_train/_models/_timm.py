"""Wrappers for timm models (optional dependency)."""

from __future__ import annotations

from typing import Any

from torch import Tensor, nn

__all__ = ["TimmWrapper", "create_timm_wrapper", "import_timm", "timm_names"]

INSTALL = "pip install timm  (or: pip install 'lightly-train[timm]')"


def import_timm() -> Any:
    try:
        import timm
    except ImportError as e:
        raise ImportError(
            f"timm models need the timm package, which is not installed. Run: {INSTALL}"
        ) from e
    return timm


class TimmWrapper(nn.Module):
    """A timm model. CNN feature maps pass through; ViT tokens are reshaped to a map and the
    prefix (class) token is used as the pooled feature when the model has one."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self._model = model
        self._pool = nn.AdaptiveAvgPool2d(1)
        self._prefix = int(getattr(model, "num_prefix_tokens", 0))

    def get_model(self) -> nn.Module:
        return self._model

    def forward_features(self, x: Tensor) -> dict[str, Tensor]:
        out = self._model.forward_features(x)  # type: ignore[operator]
        if out.ndim == 3:  # (B, prefix + N, C) tokens
            tokens = out[:, self._prefix :]
            grid = getattr(getattr(self._model, "patch_embed", None), "dynamic_feat_size", None)
            h, w = grid(x.shape[2:]) if callable(grid) else _square(tokens.shape[1])
            result = {"features": tokens.transpose(1, 2).reshape(len(x), -1, h, w)}
            if self._prefix:
                result["cls_token"] = out[:, 0]
            return result
        if (
            out.ndim == 4
            and out.shape[1] != self.feature_dim()
            and out.shape[3] == self.feature_dim()
        ):
            out = out.permute(0, 3, 1, 2)  # channels-last models
        return {"features": out}

    def forward_pool(self, x: dict[str, Tensor]) -> dict[str, Tensor]:
        if "cls_token" in x:
            return {"pooled_features": x["cls_token"][:, :, None, None]}
        return {"pooled_features": self._pool(x["features"])}

    def feature_dim(self) -> int:
        return int(self._model.num_features)  # type: ignore[arg-type]


def _square(n: int) -> tuple[int, int]:
    side = round(n**0.5)
    return side, n // max(side, 1)


def timm_names() -> list[str]:
    timm = import_timm()
    return list(timm.list_models())


def create_timm_wrapper(name: str, model_args: dict[str, Any] | None = None) -> TimmWrapper:
    timm = import_timm()
    if name not in timm.list_models():
        from lt_core import ConfigError, closest_match_hint

        raise ConfigError(
            f"Unknown timm model '{name}'.{closest_match_hint(name, timm.list_models())}"
        )
    from lt_train._models._args import build_with_args

    def build(**kwargs: Any) -> nn.Module:
        return timm.create_model(name, **kwargs)  # type: ignore[no-any-return]

    model = build_with_args(f"timm/{name}", build, model_args or {}, None, {"pretrained": False})
    return TimmWrapper(model)
