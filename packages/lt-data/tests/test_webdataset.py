from __future__ import annotations

import io
import logging
import tarfile
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader

from lt_core import ConfigError, DataError
from lt_data import (
    WebImageDataset,
    collate_images,
    count_samples,
    decode_image,
    is_webdataset_source,
    list_shards,
)
from lt_data._webdataset import IMAGE_MEMBER_SUFFIXES, _describe, find_image_member

SIZE = (16, 16)


def write_tar(path: Path, members: list[tuple[str, bytes]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture
def shards(tmp_path: Path, cifar_jpegs: list[Path]) -> tuple[str, list[str]]:
    """8 shards of 5 real JPEG samples each; returns the pattern and all sample keys."""
    files = cifar_jpegs[:40]
    keys = []
    for s in range(8):
        members = []
        for i, f in enumerate(files[5 * s : 5 * s + 5]):
            key = f"{f.parent.name}/{s}_{i}"
            members += [(f"{key}.jpg", f.read_bytes()), (f"{key}.cls", b"3")]
            keys.append(key)
        write_tar(tmp_path / "shards" / f"train-{s:03d}.tar", members)
    return str(tmp_path / "shards" / "train-{000..007}.tar"), keys


def key_of(item: dict[str, Any]) -> str:
    path = str(item["path"])
    return path.split(".tar/", 1)[1].rsplit(".", 1)[0]


def test_is_webdataset_source(tmp_path: Path) -> None:
    yes = ["s/train-{000000..000127}.tar", "a.tar", Path("b.TAR.gz"), "c.tgz",
           ["a.tar", "b.tar"], "https://host/x-{0..9}.tar", "pipe:cat a.tar",
           "s/x.{tar,tgz}", "http://host/images"]  # fmt: skip
    no = ["images", Path("images/"), ["images", "a.tar"], [], "a.jpg", 3, None, ["a.tar", 3]]
    assert all(is_webdataset_source(d) for d in yes)
    assert not any(is_webdataset_source(d) for d in no)
    (tmp_path / "folder.tar").mkdir()
    assert not is_webdataset_source(tmp_path / "folder.tar")


def test_list_shards(shards: tuple[str, list[str]], tmp_path: Path) -> None:
    pattern, _ = shards
    listed = list_shards(pattern)
    assert len(listed) == 8 and listed[0].endswith("train-000.tar")
    assert list_shards([listed[1], listed[0]]) == [listed[1], listed[0]]
    assert len(list_shards([pattern, listed[0]])) == 9
    remote = list_shards("https://example.com/x-{0..3}.tar")  # not checked
    assert remote == [f"https://example.com/x-{i}.tar" for i in range(4)]
    assert list_shards("pipe:curl -s https://example.com/a.tar") == [
        "pipe:curl -s https://example.com/a.tar"
    ]
    assert list_shards(str(tmp_path / "shards" / "train-*.tar")) == listed  # in name order
    assert list_shards(str(tmp_path / "shards" / "train-00?.tar")) == listed
    assert is_webdataset_source(str(tmp_path / "shards" / "*.tar"))
    with pytest.raises(DataError, match=r"'.*valid-\*\.tar' of .* matches no file.*Fix"):
        list_shards(str(tmp_path / "shards" / "valid-*.tar"))
    unchecked = str(tmp_path / "shards" / "valid-*.tar")
    assert list_shards(unchecked, check=False) == [unchecked]
    assert list_shards("https://host/a?b=*.tar") == ["https://host/a?b=*.tar"]  # not a path
    wrong = pattern.replace("007", "009")
    with pytest.raises(DataError, match=r"2 of the 10 shard\(s\) of .*009.* do not exist.*Fix"):
        list_shards(wrong)
    with pytest.raises(DataError, match=r"folder.*list_image_files"):
        list_shards(str(tmp_path / "shards"))
    with pytest.raises(DataError, match="empty"):
        list_shards([])
    with pytest.raises(DataError, match="pattern"):
        list_shards(3)  # type: ignore[arg-type]


def test_missing_pattern_fails_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"'.*nope-\{0\.\.3\}\.tar'.*do not exist.*Fix"):
        WebImageDataset(str(tmp_path / "nope-{0..3}.tar"), SIZE)


def test_reads_every_sample_decoded_like_files(
    shards: tuple[str, list[str]], cifar_jpegs: list[Path]
) -> None:
    pattern, keys = shards
    items = list(WebImageDataset(pattern, SIZE, shuffle_buffer=0))
    assert [key_of(i) for i in items] == keys  # shard order, then order in the shard
    files = cifar_jpegs[:40]
    for item, file in zip(items, files):
        assert item["error"] is None and item["index"] == -1 and item["image_size"] == SIZE
        assert item["path"].endswith(f"train-{keys.index(key_of(item)) // 5:03d}.tar/"
                                     f"{key_of(item)}.jpg")  # fmt: skip
        assert torch.equal(item["image"], decode_image(file, SIZE))
    batch = collate_images(items[:7])
    assert batch["images"].shape == (7, 3, *SIZE) and batch["skipped"] == []


def read_split(pattern: str, rank: int, world_size: int, **kwargs: Any) -> list[str]:
    dataset = WebImageDataset(pattern, SIZE, rank=rank, world_size=world_size, **kwargs)
    loader = DataLoader(dataset, batch_size=None, num_workers=2)
    return [key_of(item) for item in loader]


def test_ranks_and_workers_read_disjoint_samples_covering_all(
    shards: tuple[str, list[str]],
) -> None:
    pattern, keys = shards
    rank0, rank1 = (read_split(pattern, rank, 2, shuffle_buffer=4) for rank in (0, 1))
    assert len(rank0) == len(rank1) == 20
    assert Counter(rank0 + rank1) == Counter(keys)  # each sample exactly once
    # collate_images works on the stream unchanged
    dataset = WebImageDataset(pattern, SIZE, rank=1, world_size=2)
    loader = DataLoader(dataset, batch_size=6, num_workers=2, collate_fn=collate_images)
    assert sum(len(b["images"]) for b in loader) == 20


def test_shuffle_buffer_is_deterministic_under_seed(shards: tuple[str, list[str]]) -> None:
    pattern, keys = shards

    def order(seed: int, epoch: int = 0) -> list[str]:
        dataset = WebImageDataset(pattern, SIZE, shuffle_buffer=10, seed=seed)
        dataset.set_epoch(epoch)
        return [key_of(item) for item in dataset]

    first = order(0)
    assert sorted(first) == sorted(keys) and first != keys
    assert order(0) == first
    assert order(1) != first and sorted(order(1)) == sorted(keys)
    assert order(0, epoch=1) != first


def test_corrupt_member_and_sample_without_image(tmp_path: Path, cifar_jpegs: list[Path]) -> None:
    good = cifar_jpegs[:2]
    shard = write_tar(
        tmp_path / "s.tar",
        [("a.jpg", good[0].read_bytes()), ("b.JPG", b"garbage"), ("c.cls", b"1"),
         ("c.json", b"{}"), ("d.seg.png", b"x"), ("d.jpeg", good[1].read_bytes())],
    )  # fmt: skip
    items = list(WebImageDataset(str(shard), SIZE, shuffle_buffer=0))
    assert [i["path"] for i in items] == [f"{shard}/a.jpg", f"{shard}/b.jpg", f"{shard}/c",
                                          f"{shard}/d.jpeg"]  # fmt: skip
    assert items[0]["image"] is not None and items[3]["image"] is not None
    assert items[1]["image"] is None and "cannot identify image file" in items[1]["error"]
    assert f"{shard}/b.jpg" in items[1]["error"]
    assert items[2]["image"] is None and "no image member" in items[2]["error"]
    assert "cls, json" in items[2]["error"]
    batch = collate_images(items)
    assert len(batch["images"]) == 2
    assert [p for p, _ in batch["skipped"]] == [f"{shard}/b.jpg", f"{shard}/c"]


def test_find_image_member() -> None:
    assert find_image_member({"__key__": "k", "cls": b"", "seg.png": b"", "jpg": b""}) == "jpg"
    assert find_image_member({"seg.png": b"", "1.jpg": b""}) == "1.jpg"
    assert find_image_member({"__key__": "k", "txt": b""}) is None
    assert {f".{k}" for k in IMAGE_MEMBER_SUFFIXES} == {
        ".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"
    }  # fmt: skip


def test_truncated_and_vanished_shards_are_skipped(
    tmp_path: Path, cifar_jpegs: list[Path], caplog: pytest.LogCaptureFixture
) -> None:
    files = cifar_jpegs[:8]
    whole = write_tar(tmp_path / "s-0.tar", [(f"{i}.jpg", f.read_bytes()) for i, f in
                                             enumerate(files[:4])])  # fmt: skip
    cut = write_tar(tmp_path / "s-1.tar", [(f"{i}.jpg", f.read_bytes()) for i, f in
                                           enumerate(files[4:], 4)])  # fmt: skip
    data = cut.read_bytes()
    cut.write_bytes(data[: 512 * 3 + 700])  # inside the second member
    gone = write_tar(tmp_path / "s-2.tar", [("x.jpg", files[0].read_bytes())])
    dataset = WebImageDataset(str(tmp_path / "s-{0..2}.tar"), SIZE, shuffle_buffer=0)
    gone.unlink()  # after the up-front check
    with caplog.at_level(logging.WARNING):
        items = list(dataset)
    good = [i["path"] for i in items if i["image"] is not None]
    assert good == [f"{whole}/{i}.jpg" for i in range(4)] + [f"{cut}/4.jpg"]
    errors = [(i["path"], i["error"]) for i in items if i["image"] is None]
    assert [p for p, _ in errors] == [str(cut), str(gone)]
    assert "rest of the shard is skipped" in errors[0][1]
    assert "FileNotFoundError" in errors[1][1]
    assert caplog.text.count("Skipping the rest of the shard") == 2


def test_epoch_size_with_resampling(shards: tuple[str, list[str]]) -> None:
    pattern, keys = shards
    dataset = WebImageDataset(pattern, SIZE, epoch_size=50, resampled=True, shuffle_buffer=5)
    assert len(dataset) == 50
    items = list(dataset)
    assert len(items) == 50 and set(map(key_of, items)) <= set(keys)
    assert max(Counter(map(key_of, items)).values()) > 1  # drawn with replacement
    per_rank = WebImageDataset(pattern, SIZE, epoch_size=51, resampled=True, rank=1,
                               world_size=2)  # fmt: skip
    assert len(per_rank) == 25
    loader = DataLoader(per_rank, batch_size=4, num_workers=2, collate_fn=collate_images)
    assert sum(len(b["images"]) for b in loader) == 25
    with pytest.raises(TypeError, match="epoch_size"):
        len(WebImageDataset(pattern, SIZE))


def test_epoch_size_without_resampling_repeats_the_shards(
    shards: tuple[str, list[str]],
) -> None:
    pattern, keys = shards
    items = list(WebImageDataset(pattern, SIZE, epoch_size=100, shuffle_buffer=0))
    assert [key_of(i) for i in items] == keys + keys + keys[:20]
    short = list(WebImageDataset(pattern, SIZE, epoch_size=7))
    assert len(short) == 7 and len(set(map(key_of, short))) == 7


def test_fewer_shards_than_readers(
    shards: tuple[str, list[str]], caplog: pytest.LogCaptureFixture
) -> None:
    pattern, _ = shards
    three = pattern.replace("007", "002")
    with caplog.at_level(logging.WARNING):
        assert len(read_split(three, 0, 2)) == 10  # 2 of the 3 shards (readers 0 and 1)
    # The warning comes from a DataLoader worker; check_split gives it in the main process,
    # and the workers then skip it.
    dataset = WebImageDataset(three, SIZE, rank=0, world_size=2)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        dataset.check_split(num_workers=2)
    assert "3 shard(s) for 4 readers" in caplog.text and "1 reader(s) get no shard" in caplog.text
    assert dataset._checked == (2, 2)  # what a worker of 2 compares with before checking
    next(iter(dataset))  # reading in the main process (1 reader) keeps that record
    assert dataset._checked == (2, 2)
    one = pattern.replace("{000..007}", "000")
    with pytest.raises(DataError, match=r"1 shard.* for 2 ranks"):
        list(WebImageDataset(one, SIZE, rank=1, world_size=2))
    with pytest.raises(DataError, match=r"1 shard.* for 2 ranks.*make_shards"):
        WebImageDataset(one, SIZE, rank=1, world_size=2).check_split()
    assert len(list(WebImageDataset(one, SIZE, rank=1, world_size=2, resampled=True,
                                    epoch_size=6))) == 3  # fmt: skip


def test_options_are_checked(shards: tuple[str, list[str]]) -> None:
    pattern, _ = shards
    with pytest.raises(ConfigError, match="shuffle_buffer"):
        WebImageDataset(pattern, SIZE, shuffle_buffer=-1)
    with pytest.raises(ConfigError, match="epoch_size"):
        WebImageDataset(pattern, SIZE, epoch_size=0)
    with pytest.raises(ConfigError, match="rank"):
        WebImageDataset(pattern, SIZE, rank=2, world_size=2)
    with pytest.raises(ConfigError, match="rank"):
        WebImageDataset(pattern, SIZE, rank=0)
    with pytest.raises(ConfigError, match="height, width"):
        WebImageDataset(pattern, (0, 3))


def test_count_samples_with_images_only(tmp_path: Path, cifar_jpegs: list[Path]) -> None:
    jpeg = cifar_jpegs[0].read_bytes()
    shard = write_tar(
        tmp_path / "s.tar",
        [("a.jpg", jpeg), ("a.cls", b"1"), ("b.JPG", b"garbage"), ("c.txt", b"x"),
         ("dir/d.seg.png", b"x"), ("e.json", b"{}"), ("e.cls", b"2")],
    )  # fmt: skip
    assert count_samples([str(shard)]) == 5  # a, b, c, dir/d, e
    assert count_samples([str(shard)], images_only=True) == 3  # a, b (not decodable), dir/d
    text = write_tar(tmp_path / "t.tar", [(f"{i}.txt", b"x") for i in range(4)])
    assert count_samples([str(text)]) == 4 and count_samples([str(text)], images_only=True) == 0


def test_a_stream_that_fails_whole_passes_stops_short_of_epoch_size(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # An unreachable source (here a pipe whose command fails) is not retried until the
    # quota of epoch_size fills: one failed pass, one error item per shard, a warning.
    missing = tmp_path / "gone"
    urls = [f"pipe:cat {missing}-{i}.tar" for i in range(3)]
    dataset = WebImageDataset(urls, SIZE, epoch_size=1000, shuffle_buffer=0)
    with caplog.at_level(logging.WARNING):
        items = list(dataset)
    assert [i["path"] for i in items] == urls
    # The exit status, or the empty stream when tar reads it before the status is in.
    assert all(
        f"'cat {missing}-{n}.tar' exited with status 1" in i["error"] or "empty file" in i["error"]
        for n, i in enumerate(items)
    )
    assert "No readable image in a whole pass over 3 shard(s)" in caplog.text


def test_curl_failures_are_described() -> None:
    args = "(['curl', '--connect-timeout', '30', '-f', '-s', '-L', 'https://h/a.tar'],)"
    for code, meaning in [(7, "could not connect"), (22, "HTTP error"), (99, "man curl")]:
        error = OSError(f"({args}, {{'bufsize': 8192}}): exit {code} (read) {{}}")
        text = _describe(error)
        assert text.startswith(f"OSError: downloading the shard failed: curl exit code {code}")
        assert meaning in text and "bufsize" not in text
    assert _describe(ValueError("bad header @ <stream>")) == "ValueError: bad header"
