"""Batches with unreadable images keep their size, so every step (and every DDP process)
trains on a full batch."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
import torch
from PIL import Image

from lt_core import DataError
from lt_data import ImageDataset, WebImageDataset
from lt_data._batch_filler import draw_readable as _draw_readable
from lt_data._batch_filler import refill as _refill


def _folder(tmp_path: Path, good: int, bad: int) -> list[Path]:
    files = []
    for i in range(good):
        path = tmp_path / f"good_{i}.png"
        Image.new("RGB", (20, 12), color=(10 * i, 0, 0)).save(path)
        files.append(path)
    for i in range(bad):
        path = tmp_path / f"bad_{i}.jpg"
        path.write_bytes(b"not an image")
        files.append(path)
    return files


def test_refill_repeats_good_images_up_to_the_batch_size() -> None:
    images = torch.arange(3, dtype=torch.uint8).view(3, 1, 1, 1).expand(3, 3, 4, 4)
    filled = _refill(images, 8)
    assert filled.shape == (8, 3, 4, 4)
    assert torch.equal(filled[:3], images)
    assert set(filled[3:, 0, 0, 0].tolist()) <= {0, 1, 2}
    assert _refill(images, 3) is images


def test_draw_readable_skips_bad_files(tmp_path: Path) -> None:
    dataset = ImageDataset(_folder(tmp_path, good=2, bad=6), (8, 8))
    images = _draw_readable(dataset, 5)
    assert images.shape == (5, 3, 8, 8) and images.dtype == torch.uint8
    # Only the two good images (red channel 0 and 10 after resizing) appear.
    assert set(images[:, 0, 0, 0].tolist()) <= {0, 10}


def test_draw_readable_fails_clearly_when_nothing_is_readable(tmp_path: Path) -> None:
    dataset = ImageDataset(_folder(tmp_path, good=0, bad=3), (8, 8))
    with pytest.raises(DataError, match="None of the 3 images could be read"):
        _draw_readable(dataset, 2)


def test_draw_readable_names_the_shards_of_a_stream_without_a_readable_image(
    tmp_path: Path,
) -> None:
    # A stream has no length (without epoch_size): the error names its shards instead.
    shard = tmp_path / "bad.tar"
    with tarfile.open(shard, "w") as tar:
        for name, data in [("a.jpg", b"not an image"), ("b.txt", b"text")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    dataset = WebImageDataset(str(shard), (8, 8), shuffle_buffer=0)
    with pytest.raises(DataError, match=r"No image of the 1 shard\(s\) '.*bad\.tar' could be"):
        _draw_readable(dataset, 2)
