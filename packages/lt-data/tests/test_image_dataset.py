from __future__ import annotations

import pickle
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from lt_core import ConfigError, DataError
from lt_data import ImageDataset, collate_images, list_image_files


def corrupt_jpeg(path: Path, write_image: Callable[..., Path]) -> Path:
    write_image(path, size=(64, 64))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    return path


@pytest.fixture
def files(tmp_path: Path, write_image: Callable[..., Path]) -> list[Path]:
    return [
        write_image(tmp_path / "a.png", size=(40, 30)),
        corrupt_jpeg(tmp_path / "bad.jpg", write_image),
        write_image(tmp_path / "c.jpg", mode="L", size=(16, 16), color=9),
        tmp_path / "gone.png",  # listed, then deleted
    ]


def test_items(files: list[Path]) -> None:
    ds = ImageDataset(files, (24, 20))
    assert len(ds) == 4
    good = ds[0]
    assert good["image"].shape == (3, 24, 20) and good["image"].dtype == torch.uint8
    assert good["index"] == 0 and good["path"] == str(files[0]) and good["error"] is None
    assert good["image_size"] == (24, 20)
    bad = ds[1]
    assert bad["image"] is None and bad["index"] == 1 and bad["path"] == str(files[1])
    assert "truncated" in bad["error"]
    assert ds[3]["image"] is None and "No such file" in ds[3]["error"]
    assert ds[-2]["index"] == 2 and ds[-2]["image"][:, 0, 0].tolist() == [9, 9, 9]
    with pytest.raises(IndexError):
        ds[4]


def test_dataset_arguments(files: list[Path]) -> None:
    with pytest.raises(DataError, match="no files"):
        ImageDataset([], (32, 32))
    with pytest.raises(ConfigError, match="height, width"):
        ImageDataset(files, (32, -1))
    ds = pickle.loads(pickle.dumps(ImageDataset([*files, "ünïcode/ß.png"], (8, 8))))
    assert [ds.path(i) for i in range(len(ds))] == [*map(str, files), "ünïcode/ß.png"]


def test_collate_drops_and_reports_bad_images(files: list[Path]) -> None:
    ds = ImageDataset(files, (24, 20))
    batch = collate_images([ds[i] for i in range(len(ds))])
    assert batch["images"].shape == (2, 3, 24, 20) and batch["images"].dtype == torch.uint8
    assert batch["indices"].tolist() == [0, 2] and batch["indices"].dtype == torch.int64
    assert torch.equal(batch["images"][1], ds[2]["image"])
    assert [p for p, _ in batch["skipped"]] == [str(files[1]), str(files[3])]
    assert all(isinstance(e, str) and e for _, e in batch["skipped"])


def test_collate_all_bad(files: list[Path]) -> None:
    ds = ImageDataset(files, (24, 20))
    batch = collate_images([ds[1], ds[3]])
    assert batch["images"].shape == (0, 3, 24, 20) and batch["images"].dtype == torch.uint8
    assert batch["indices"].shape == (0,) and batch["indices"].dtype == torch.int64
    assert len(batch["skipped"]) == 2


def test_dataloader_with_workers(
    tmp_path: Path, real_jpegs: list[Path], write_image: Callable[..., Path]
) -> None:
    bad = corrupt_jpeg(tmp_path / "real" / "broken.jpg", write_image)
    files = list_image_files(tmp_path / "real")
    assert bad in files and len(files) == len(real_jpegs) + 1
    loader = DataLoader(
        ImageDataset(files, (32, 32)),
        batch_size=3,
        shuffle=True,
        num_workers=2,
        collate_fn=collate_images,
    )
    indices, images, skipped = [], [], []
    for batch in loader:
        assert batch["images"].shape[1:] == (3, 32, 32)
        assert len(batch["images"]) == len(batch["indices"])
        indices += batch["indices"].tolist()
        images += list(batch["images"])
        skipped += batch["skipped"]
    bad_index = files.index(bad)
    assert sorted(indices) == [i for i in range(len(files)) if i != bad_index]
    assert len(skipped) == 1 and skipped[0][0] == str(bad) and skipped[0][1]
    assert all(img.float().std() > 1 for img in images)  # real content, not blank
