"""Model names (``torchvision/<name>``, ``timm/<name>``) resolved to model wrappers."""

from lt_train._models._registry import get_model_wrapper, list_models

__all__ = ["get_model_wrapper", "list_models"]
