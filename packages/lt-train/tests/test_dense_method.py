"""A dense method in real training: DenseCL trains a wrapper through its unpooled map."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from _tiny import tiny_config, write_images
from torch import Tensor, nn

from lt_train import train


class MapOnly(nn.Module):
    """A stride-4 convolution: a 4x4 map for 16x16 views. Its pooled features carry no
    gradient, so the wrapper can only learn through ``forward_features``' unpooled map."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Conv2d(3, 8, 4, stride=4)

    def get_model(self) -> nn.Module:
        return self.net

    def forward_features(self, x: Tensor) -> dict[str, Tensor]:
        return {"features": torch.relu(self.net(x))}

    def forward_pool(self, x: dict[str, Tensor]) -> dict[str, Tensor]:
        return {"pooled_features": x["features"].detach().mean((2, 3), keepdim=True)}

    def feature_dim(self) -> int:
        return 8


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_images(tmp_path_factory.mktemp("images"), 16)


def _run(out: Path, data: Path, dense_loss_weight: float) -> tuple[list[dict], dict, dict]:
    model = MapOnly()
    before = {k: v.clone() for k, v in model.get_model().state_dict().items()}
    method_args = {"hidden_dim": 16, "output_dim": 8, "lambda_": dense_loss_weight}
    run = train(
        tiny_config(
            out,
            data,
            model=model,
            method="densecl",
            method_args=method_args,
            optim_args={"weight_decay": 0.0},  # weights change only by gradient
            log_every_n_steps=1,
        )
    )
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    after = torch.load(run / "exported_models" / "exported_last.pt", weights_only=True)
    return metrics, before, after


def test_densecl_trains_the_wrapper_through_its_unpooled_map(data: Path, tmp_path: Path) -> None:
    metrics, before, after = _run(tmp_path / "dense", data, dense_loss_weight=0.5)
    steps = [m for m in metrics if "loss_dense" in m]
    assert len(steps) == 2  # 16 images, batch 8, 1 epoch
    for m in steps:  # auto warm-up: 10% of 2 steps is none
        assert m["dense_loss_weight"] == 0.5 and 0 < m["loss_dense"] < 100
        assert m["loss"] == pytest.approx(0.5 * (m["loss_global"] + m["loss_dense"]), rel=1e-4)
    assert not torch.equal(after["weight"], before["weight"])
    config = json.loads((tmp_path / "dense" / "config.json").read_text())
    assert config["method_args"]["memory_bank_size"] == 1  # a tenth of 16 images, auto
    assert config["method_args"]["dense_warmup_steps"] == 0


def test_without_the_dense_loss_the_map_only_wrapper_does_not_learn(
    data: Path, tmp_path: Path
) -> None:
    metrics, before, after = _run(tmp_path / "global", data, dense_loss_weight=0.0)
    assert all(m["dense_loss_weight"] == 0.0 for m in metrics if "loss_dense" in m)
    for key, value in before.items():
        assert torch.equal(after[key], value), key
