"""``method_args.lr_scale_method`` and ``reference_batch_size`` set the trainer's lr."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from _tiny import tiny_config, write_images

from lt_train._setup import plan_run


@pytest.mark.parametrize(
    ("method", "method_args", "expected"),
    [
        ("simclr", {}, 0.4 * 16 / 256),
        ("simclr", {"lr_scale_method": "sqrt", "reference_batch_size": 64}, 0.4 * math.sqrt(0.25)),
        ("dino", {"lr_scale_method": "linear", "reference_batch_size": 32}, 0.4 * 16 / 32),
        ("dino", {"lr_scale_method": "sqrt"}, 0.4 * math.sqrt(16 / 256)),
    ],
)
def test_lr_follows_the_effective_batch_by_the_method_args(
    method: str, method_args: dict[str, object], expected: float, tmp_path: Path
) -> None:
    data = write_images(tmp_path / "images", 16)
    config = tiny_config(
        tmp_path / "out",
        data,
        method=method,
        method_args=method_args,
        optim_args={"lr": 0.4},
        gradient_accumulation_steps=2,  # an optimizer step of 2 x 8 images
    )
    assert plan_run(config).lr == pytest.approx(expected)
