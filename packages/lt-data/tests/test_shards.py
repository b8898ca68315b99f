from __future__ import annotations

import hashlib
import logging
import shutil
import tarfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from lt_core import ConfigError, DataError
from lt_data import (
    WebImageDataset,
    collate_images,
    count_samples,
    decode_image,
    is_webdataset_source,
    list_image_files,
    make_shards,
)

SIZE = (16, 16)


def digest(image: torch.Tensor) -> str:
    return hashlib.sha1(image.numpy().tobytes()).hexdigest()


@pytest.fixture
def folder(tmp_path: Path, cifar_jpegs: list[Path], write_image: Callable[..., Path]) -> Path:
    """13 real JPEGs in two subfolders, a PNG, tricky names and one broken file."""
    data = tmp_path / "data"
    for i, src in enumerate(cifar_jpegs[::25][:10]):
        dst = data / src.parent.name / f"img_{i}.jpg"
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, dst)
    shutil.copy(cifar_jpegs[1], data / "a.b%c.JPG")  # dots and % in the name
    shutil.copy(cifar_jpegs[2], data / "same.jpg")
    write_image(data / "same.png", size=(20, 10))  # same stem as same.jpg
    write_image(data / "deep" / "er" / "x.png", mode="L", size=(8, 8), color=7)
    (data / "broken.jpg").write_bytes(b"not an image")
    return data


def test_round_trip_reads_every_good_image_once(folder: Path, tmp_path: Path) -> None:
    stats = make_shards(folder, tmp_path / "shards", max_count=4, progress=False)
    good = [f for f in list_image_files(folder) if not f.endswith("broken.jpg")]
    assert stats.num_images == len(good) == 14
    assert stats.skipped == [(str(folder / "broken.jpg"), stats.skipped[0][1])]
    assert "cannot identify image file" in stats.skipped[0][1]
    assert len(stats.shards) == 4 and all(Path(s).is_file() for s in stats.shards)
    assert stats.pattern == str(tmp_path / "shards" / "shard-{000000..000003}.tar")
    assert stats.num_bytes == sum(Path(f).stat().st_size for f in good)
    assert is_webdataset_source(stats.pattern)

    assert count_samples(stats.shards) == 14  # from the tar headers alone
    assert count_samples(["https://example.com/a.tar"]) is None  # remote: unknown

    items = list(WebImageDataset(stats.pattern, SIZE, shuffle_buffer=0))
    assert all(i["error"] is None for i in items)
    expected = Counter(digest(decode_image(f, SIZE)) for f in good)
    assert Counter(digest(i["image"]) for i in items) == expected  # same pixels, once each
    assert len(collate_images(items)["images"]) == 14


def test_keys_and_members(folder: Path, tmp_path: Path) -> None:
    stats = make_shards(folder, tmp_path / "shards", progress=False)
    assert len(stats.shards) == 1 and stats.pattern == stats.shards[0]
    with tarfile.open(stats.shards[0]) as tar:
        names = tar.getnames()
        original = tar.extractfile("airplane/img_0.jpg").read()  # type: ignore[union-attr]
    assert original == (folder / "airplane" / "img_0.jpg").read_bytes()  # not re-encoded
    assert names[:3] == ["a%2Eb%25c.jpg", "airplane/img_0.jpg", "airplane/img_1.jpg"]
    assert "deep/er/x.png" in names and "same.jpg" in names and "same%2Epng.png" in names
    assert len(names) == 14 and not any("broken" in n for n in names)
    paths = [i["path"] for i in WebImageDataset(stats.pattern, SIZE, shuffle_buffer=0)]
    assert paths[0] == f"{stats.shards[0]}/a%2Eb%25c.jpg"


def test_list_of_entries_keys_relative_to_common_parent(folder: Path, tmp_path: Path) -> None:
    stats = make_shards(
        [folder / "airplane", folder / "deep" / "er" / "x.png"], tmp_path / "s", progress=False
    )
    with tarfile.open(stats.shards[0]) as tar:
        assert tar.getnames()[-1] == "deep/er/x.png" and tar.getnames()[0].startswith("airplane/")


def test_out_folder_must_be_new_or_empty(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "old.tar").write_bytes(b"")
    with pytest.raises(DataError, match=r"'.*out' is not empty.*old\.tar.*Fix"):
        make_shards(folder, out)
    with pytest.raises(DataError, match="is a file"):
        make_shards(folder, out / "old.tar")
    (out / "old.tar").unlink()
    assert make_shards(folder, out, progress=False).num_images == 14  # an empty folder is fine


def test_options_and_unreadable_data(folder: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="%-field"):
        make_shards(folder, tmp_path / "o", pattern="shard.tar")
    with pytest.raises(ConfigError, match="end with"):
        make_shards(folder, tmp_path / "o", pattern="shard-%d.zip")
    with pytest.raises(ConfigError, match="max_count"):
        make_shards(folder, tmp_path / "o", max_count=0)
    with pytest.raises(DataError, match="does not exist"):
        make_shards(tmp_path / "missing", tmp_path / "o")
    with pytest.raises(DataError, match=r"None of the 1 image file.*broken\.jpg.*nothing"):
        make_shards(folder / "broken.jpg", tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_progress_and_skipped_are_reported(
    folder: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        stats = make_shards(folder, tmp_path / "s", pattern="x-%d.tar", max_count=5)
    err = capsys.readouterr().err
    assert "15/15 files, 3 shard(s)" in err and "skipped 1 unreadable" in err
    assert "broken.jpg" in caplog.text
    assert stats.pattern == str(tmp_path / "s" / "x-{0..2}.tar")
