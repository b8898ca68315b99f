"""One interface for files and shards: list_data -> DataListing -> ImageSource.

The same tests run on both kinds of data: full batches from any position, a resumed
position that is the tail of the whole epoch, the cache, and unreadable images.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from lt_core import ConfigError
from lt_data import DataListing, ImageSource, SourceOptions, list_data, make_shards

CIFAR = Path(__file__).resolve().parents[3] / "docs" / "quickstart_data"


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("images")
    for i, src in enumerate(sorted(CIFAR.rglob("*.jpg"))[:48]):
        shutil.copy(src, out / f"{i:02d}.jpg")
    return out


@pytest.fixture(scope="module")
def shards(folder: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    out = tmp_path_factory.mktemp("shards") / "shards"
    make_shards(folder, out, max_count=12, progress=False)
    return str(out / "*.tar")


def _listing(kind: str, folder: Path, shards: str) -> DataListing:
    return list_data(folder if kind == "files" else shards)


def _options(**kwargs: object) -> SourceOptions:
    values: dict[str, object] = {"decode_size": (32, 32), "micro_batch": 8, "seed": 3}
    values.update(kwargs)
    return SourceOptions(**values)  # type: ignore[arg-type]


def _epoch(source: ImageSource, epoch: int, step: int = 0) -> list[torch.Tensor]:
    return list(source.batches(epoch, step))


KINDS = ["files", "shards"]


@pytest.mark.parametrize("kind", KINDS)
def test_listing_counts_and_describes(kind: str, folder: Path, shards: str) -> None:
    listing = _listing(kind, folder, shards)
    assert listing.num_images == 48
    assert listing.describe() == ("files" if kind == "files" else "4 WebDataset shards")
    assert listing.probe_short_side() == 32.0
    options = _options(accumulation=2)
    assert listing.steps_per_epoch(options) == 3
    assert listing.batches_per_process(options) == (6 if kind == "files" else None)


@pytest.mark.parametrize("kind", KINDS)
def test_full_batches_and_a_resumed_position_is_the_tail_of_the_epoch(
    kind: str, folder: Path, shards: str
) -> None:
    listing = _listing(kind, folder, shards)
    options = _options(accumulation=2)
    source = listing.open(options)
    assert source.steps_per_epoch == listing.steps_per_epoch(options) == 3
    whole = _epoch(source, 1)
    assert len(whole) == 6 and all(
        b.shape == (8, 3, 32, 32) and b.dtype == torch.uint8 for b in whole
    )
    tail = _epoch(listing.open(options), 1, step=2)  # a new source, as after a restart
    assert len(tail) == 2
    assert all(torch.equal(a, b) for a, b in zip(tail, whole[4:]))
    assert not torch.equal(whole[0], _epoch(source, 2)[0])  # another epoch, another order
    source.close()


@pytest.mark.parametrize("kind", KINDS)
def test_processes_read_disjoint_images(kind: str, folder: Path, shards: str) -> None:
    listing = _listing(kind, folder, shards)
    seen = []
    for rank in (0, 1):
        source = listing.open(_options(micro_batch=4, rank=rank, world_size=2))
        seen.append({tuple(img.flatten()[:64].tolist()) for b in _epoch(source, 0) for img in b})
    assert seen[0] and seen[1] and not seen[0] & seen[1]


@pytest.mark.parametrize("kind", KINDS)
def test_the_cache_serves_later_epochs_and_refills_on_resume(
    kind: str, folder: Path, shards: str
) -> None:
    listing = _listing(kind, folder, shards)
    source = listing.open(_options())
    assert source.use_cache("ram", epochs=2, local_processes=1) == "ram"
    first = _epoch(source, 0)
    source.end_epoch()
    second = _epoch(source, 1)
    cached = {tuple(img.flatten().tolist()) for b in first for img in b}
    assert all(tuple(img.flatten().tolist()) in cached for b in second for img in b)
    resumed = listing.open(_options())
    resumed.use_cache("auto", epochs=2, local_processes=1, resumed="ram")
    resumed.prefill(1, 2)  # the interrupted run had filled the cache in epoch 0
    assert all(torch.equal(a, b) for a, b in zip(_epoch(resumed, 1, 2), second[2:]))


def test_unreadable_images_are_replaced_and_counted(
    folder: Path, tmp_path: Path, write_image: Callable[..., Path]
) -> None:
    data = tmp_path / "mixed"
    shutil.copytree(folder, data)
    for i in range(5):
        (data / f"broken_{i}.jpg").write_bytes(b"not a jpeg")
    source = list_data(data).open(_options(log_skipped=False))
    batches = _epoch(source, 0)
    assert len(batches) == 53 // 8 and all(len(b) == 8 for b in batches)
    skipped = source.take_skipped()
    assert sorted(Path(name).name for name, _ in skipped) == [f"broken_{i}.jpg" for i in range(5)]
    assert source.take_skipped() == []


def test_too_few_images_for_a_step_names_the_fix(folder: Path) -> None:
    with pytest.raises(ConfigError, match="Lower batch_size or num_workers"):
        list_data(folder).open(_options(micro_batch=64))
