"""Models of the quality benchmark (``tools/quality_benchmark.py``): CIFAR-stem ResNets.

One wrapper class, :class:`CifarResNetWrapper`, is handed to both implementations (ours and
the peer ``lightly-train==0.18.0``); both accept the model-wrapper protocol
(``get_model``, ``forward_features``, ``forward_pool``, ``feature_dim``). The wrapped
network is a CIFAR-style ResNet (He et al., "Deep Residual Learning for Image Recognition",
CVPR 2016; the CIFAR stem as in the SimCLR paper's CIFAR experiments): a 3x3 stride-1
first convolution and no max pooling, so a 32-pixel image keeps a 4x4 map after the last
stage (a useful unpooled map for dense methods). Its width (channels of the first stage)
and blocks per stage are parameters: ``(2, 2, 2, 2)`` is ResNet-18, ``(1, 1, 1, 1)``
ResNet-10. The blocks are torchvision's ``BasicBlock``.

This module imports torch at import time: the benchmark's command line does not import it
(``--help`` works without torch); the training workers and the evaluation do.
"""

from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torchvision.models.resnet import BasicBlock

#: Wall-clock times of the first and last forward pass that builds a graph (a training
#: step), over all wrapper instances of the process (EMA methods train a deep copy of the
#: wrapper, so the times cannot live on the instance). Used for images/s excluding setup.
STEP_TIMES: dict[str, float] = {}


class CifarResNet(nn.Module):
    """A CIFAR-stem ResNet of ``BasicBlock`` stages; output ``(B, 8 * width, H/8, W/8)``."""

    def __init__(self, *, layers: tuple[int, ...] = (2, 2, 2, 2), width: int = 64) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, width, kernel_size=3, stride=1, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        )
        stages: list[nn.Module] = []
        inplanes = width
        for i, num_blocks in enumerate(layers):
            planes = width * 2**i
            stride = 1 if i == 0 else 2
            downsample = None
            if stride != 1 or inplanes != planes:
                downsample = nn.Sequential(
                    nn.Conv2d(inplanes, planes, kernel_size=1, stride=stride, bias=False),
                    nn.BatchNorm2d(planes),
                )
            blocks = [BasicBlock(inplanes, planes, stride, downsample)]
            blocks += [BasicBlock(planes, planes) for _ in range(num_blocks - 1)]
            stages.append(nn.Sequential(*blocks))
            inplanes = planes
        self.stages = nn.Sequential(*stages)
        self.out_channels = inplanes
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        return self.stages(self.stem(x))


class CifarResNetWrapper(nn.Module):
    """The model-wrapper protocol around a :class:`CifarResNet` (global average pooling)."""

    def __init__(self, model: CifarResNet) -> None:
        super().__init__()
        self._model = model
        self._pool = nn.AdaptiveAvgPool2d(1)

    def get_model(self) -> nn.Module:
        return self._model

    def forward_features(self, x: Tensor) -> dict[str, Tensor]:
        if torch.is_grad_enabled() and not torch.compiler.is_compiling():
            now = time.perf_counter()
            STEP_TIMES.setdefault("first", now)
            STEP_TIMES["last"] = now
        return {"features": self._model(x)}

    def forward_pool(self, x: dict[str, Tensor]) -> dict[str, Tensor]:
        return {"pooled_features": self._pool(x["features"])}

    def feature_dim(self) -> int:
        return self._model.out_channels


def build_model(
    spec: dict[str, Any], init_weights: Path | None = None, seed: int = 0
) -> CifarResNet:
    """A :class:`CifarResNet` of ``spec``: seed-``seed`` init, or the state dict ``init_weights``."""
    torch.manual_seed(seed)
    model = CifarResNet(layers=tuple(spec["layers"]), width=int(spec["width"]))
    if init_weights is not None:
        state = torch.load(init_weights, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    return model


def build_wrapper(spec: dict[str, Any], init_weights: Path | None = None) -> CifarResNetWrapper:
    return CifarResNetWrapper(build_model(spec, init_weights=init_weights))


def file_digest(path: Path) -> str:
    """SHA-256 of a file (first 16 hex digits): ties a distillation row to its teacher."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:16]
