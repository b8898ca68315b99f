"""decode_size: small random crops of a large image are cut from a decode that keeps its
detail (a fine checkerboard stays a checkerboard), within the documented bounds."""

from __future__ import annotations

import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lt_core import ConfigError, ViewConfig
from lt_data import (
    ImageDataset,
    build_view_transform,
    decode_size_for,
    probe_short_side,
    resolve_decode_size,
)

SIMCLR_224 = [ViewConfig(size=(224, 224), num_views=2, crop_scale=(0.08, 1.0))]
DINO_224 = [
    ViewConfig(size=(224, 224), num_views=2, crop_scale=(0.32, 1.0)),
    ViewConfig(size=(96, 96), num_views=6, crop_scale=(0.05, 0.32)),
]


def test_auto_covers_the_smallest_crop_within_the_bounds() -> None:
    # 224 / sqrt(0.08) = 792 px would keep every crop's detail; bounded by 2x.
    assert decode_size_for(SIMCLR_224, (224, 224)) == (448, 448)
    assert decode_size_for(SIMCLR_224, (224, 224), max_factor=4.0) == (792, 792)
    # Sources of 375 px (ImageNet's typical shorter side): no larger than they are.
    assert decode_size_for(SIMCLR_224, (224, 224), source_side=375) == (375, 375)
    # CIFAR at 32 px: the sources have no more detail; never below the image size.
    assert decode_size_for(SIMCLR_224, (32, 32), source_side=32) == (32, 32)
    assert decode_size_for(SIMCLR_224, (224, 224), source_side=100) == (224, 224)
    # Crops that are never small need no more than the image size.
    whole = [ViewConfig(size=(64, 64), crop_scale=(1.0, 1.0))]
    assert decode_size_for(whole, (64, 64)) == (64, 64)
    # DINO: the 96-px local views at scale 0.05 need 429 px.
    assert decode_size_for(DINO_224, (224, 224), max_factor=4.0) == (429, 429)
    # Not square: the factor applies to both sides.
    assert decode_size_for(SIMCLR_224, (112, 224)) == (224, 448)


def test_explicit_decode_size() -> None:
    assert resolve_decode_size(300, SIMCLR_224, (224, 224), None) == (300, 300)
    assert resolve_decode_size(256, SIMCLR_224, (128, 256), None) == (256, 512)
    assert resolve_decode_size("auto", SIMCLR_224, (224, 224), 375) == (375, 375)
    with pytest.raises(ConfigError, match="at least the image height"):
        resolve_decode_size(100, SIMCLR_224, (224, 224), None)


def _checkerboard(path: Path, side: int = 256, square: int = 4) -> None:
    y, x = np.indices((side, side))
    board = (((y // square) + (x // square)) % 2 * 255).astype(np.uint8)
    Image.fromarray(board).convert("RGB").save(path)


def test_small_crops_of_a_large_image_stay_sharp(tmp_path: Path) -> None:
    """A 1024-px checkerboard of 16-px squares, 64-px views of 1/16 of its area (256
    source pixels a side, 16 squares): cut from a 64-px decode the squares are gone (each
    is one decoded pixel, averaged to gray, then upsampled 4x); from the decode that
    decode_size_for picks (256 px) they are 4 pixels wide in the view: black and white,
    not an upsampled blur."""
    path = tmp_path / "board.png"
    _checkerboard(path, side=1024, square=16)
    recipe = [
        ViewConfig(
            size=(64, 64),
            crop_scale=(1 / 16, 1 / 16),
            crop_ratio=(1.0, 1.0),
            color_jitter=None,
            grayscale_prob=0.0,
            hflip_prob=0.0,
            mean=(0.0, 0.0, 0.0),
            std=(1.0, 1.0, 1.0),
        )
    ]
    transform = build_view_transform(recipe)
    side = probe_short_side([str(path)], streaming=False)
    assert side == 1024
    sharp_size = decode_size_for(recipe, (64, 64), source_side=side, max_factor=4.0)
    assert sharp_size == (256, 256)

    def crops(size: tuple[int, int]) -> torch.Tensor:
        image = ImageDataset([path], size)[0]["image"]
        torch.manual_seed(0)
        return transform(image.unsqueeze(0).expand(8, -1, -1, -1))[0]

    blurred, sharp = crops((64, 64)), crops(sharp_size)
    # Share of pixels that are clearly black or white.
    assert float(((blurred < 0.1) | (blurred > 0.9)).float().mean()) < 0.05
    assert float(((sharp < 0.1) | (sharp > 0.9)).float().mean()) > 0.4
    assert float(sharp.std()) > 3 * float(blurred.std())


def test_probe_reads_headers_of_files_and_shards(tmp_path: Path) -> None:
    paths = []
    for i, (w, h) in enumerate([(500, 375), (375, 500), (640, 480), (20, 20)]):
        p = tmp_path / f"img_{i}.jpg"
        Image.new("RGB", (w, h)).save(p)
        paths.append(str(p))
    (tmp_path / "bad.jpg").write_bytes(b"not an image")
    paths.append(str(tmp_path / "bad.jpg"))
    assert probe_short_side(paths, streaming=False) == 375  # median of 375, 375, 480, 20
    shard = tmp_path / "shard.tar"
    with tarfile.open(shard, "w") as tar:
        for i, p in enumerate(paths):
            tar.add(p, arcname=f"s{i}.jpg")
    assert probe_short_side([str(shard)], streaming=True) == 375
    assert probe_short_side(["https://example.com/a.tar"], streaming=True) is None
    assert probe_short_side([str(tmp_path / "bad.jpg")], streaming=False) is None
