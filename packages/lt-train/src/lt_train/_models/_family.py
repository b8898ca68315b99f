"""Which family a model belongs to, for the method's optimizer defaults.

The self-supervised papers train convolutional networks with SGD or LARS and vision
transformers with AdamW at a smaller learning rate and a larger weight decay (MoCo v3,
DINO, iBOT); a method's :meth:`lt_methods.Method.optimizer_defaults` gives both recipes
and the trainer picks one with :func:`model_family`.
"""

from __future__ import annotations

import re
from typing import Any

from torch import nn

__all__ = ["model_family"]

#: Name parts of the transformer models of torchvision and timm.
_VIT_NAME = re.compile(
    r"(^|[/_.:-])(vit|deit|beit|swin|swinv2|eva|eva02|cait|xcit|levit|pit|twins|crossvit|"
    r"maxvit|dinov2|vision_transformer|flexivit|naflexvit)",
    re.IGNORECASE,
)
#: Class names in CamelCase (``my_models:MyViT``).
_VIT_CLASS = re.compile(r"ViT|Vit[A-Z]|DeiT|BEiT|Beit|Swin|VisionTransformer")


def model_family(model: Any) -> str:
    """``"vit"`` for a vision transformer, ``"cnn"`` for everything else.

    A model name (``"timm/vit_small_patch16_224"``, ``"torchvision/swin_t"``) is judged by
    its name; a module by its layers: attention layers and at most two convolutions (a
    patch embedding) make a transformer. Hybrid models with a convolutional stem count
    as CNNs, whose recipe (SGD) they were mostly published with.
    """
    if isinstance(model, str):
        name = model.rsplit(":", 1)[-1]
        return "vit" if _VIT_NAME.search(name) or _VIT_CLASS.search(name) else "cnn"
    if not isinstance(model, nn.Module):
        return "cnn"
    attention = convs = 0
    for module in model.modules():
        if isinstance(module, nn.MultiheadAttention) or type(module).__name__.endswith("Attention"):
            attention += 1
        elif isinstance(module, nn.Conv2d):
            convs += 1
    return "vit" if attention and convs <= 2 else "cnn"
