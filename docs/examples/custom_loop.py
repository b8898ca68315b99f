"""Compose the packages yourself: lt_data's views, an lt_methods method and lt_core's
embedding model in a plain PyTorch loop, without lt_train or lightly_train.

Run from the repository root: uv run python docs/examples/custom_loop.py [OUT_FILE]
(1 epoch on the bundled images at 32x32, a few seconds on 2 CPU cores).
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader
from torchvision.models import resnet18

import lt_data
import lt_methods
from lt_core import EmbeddingModel

DATA = Path(__file__).resolve().parents[1] / "quickstart_data"


class MyModelWrapper(nn.Module):
    """The four-method wrapper around a torchvision ResNet-18 (as in quickstart.py)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self._model = model
        self._features = nn.Sequential(*list(model.children())[:-2])  # drop avgpool and fc
        self._pool = nn.AdaptiveAvgPool2d(1)

    def get_model(self) -> nn.Module:
        return self._model

    def forward_features(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"features": self._features(x)}

    def forward_pool(self, x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"pooled_features": self._pool(x["features"])}

    def feature_dim(self) -> int:
        return 512


def main(out: str | Path = "out/custom_loop/model.pt", epochs: int = 1, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    wrapper = MyModelWrapper(resnet18())
    # lt_methods: the method (heads, loss) around lt_core's embedding model.
    method_cls = lt_methods.get_method("simclr")
    method = method_cls(EmbeddingModel(wrapper, pool=True), None, {"image_size": [32, 32]})
    # lt_data: decode images to uint8 batches, then make the method's views batch-wise.
    image_size = method.transform_args.image_size
    dataset = lt_data.ImageDataset(lt_data.list_image_files(DATA), image_size=image_size)
    loader = DataLoader(
        dataset, batch_size=64, shuffle=True, drop_last=True, collate_fn=lt_data.collate_images
    )
    views_of = lt_data.build_view_transform(method_cls.view_recipe(method.transform_args))
    # SGD with the method's defaults; the lr scales linearly with the batch size.
    optimizer = torch.optim.SGD(
        method.param_groups(),
        lr=method_cls.default_lr * 64 / 256,
        momentum=0.9,
        weight_decay=method_cls.default_weight_decay,  # groups without their own value
    )
    steps_per_epoch = len(loader)
    max_steps = epochs * steps_per_epoch
    method.train()
    step = 0
    for _ in range(epochs):
        for batch in loader:
            if len(batch["images"]) == 0:  # every image of the batch failed to decode
                continue
            views = views_of(batch["images"])
            metrics = method(views, step=step, max_steps=max_steps, steps_per_epoch=steps_per_epoch)
            optimizer.zero_grad()
            metrics["loss"].backward()
            method.on_before_optimizer_step(step, steps_per_epoch)
            optimizer.step()
            method.on_after_optimizer_step(step, max_steps)
            step += 1
            print(f"step {step}/{max_steps} loss {metrics['loss'].item():.4f}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(wrapper.get_model().state_dict(), out)
    print(f"Saved the ResNet-18 state dict to {out}")
    return out


if __name__ == "__main__":
    main(*sys.argv[1:2])
