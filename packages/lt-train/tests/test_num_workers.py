"""The ``num_workers="auto"`` rule: cores shared by the machine's training processes, and
no worker a run's epochs cannot use, and workers started before the model is built."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from _tiny import tiny_config, write_images

from lt_data import ImageDataset, _listing, auto_num_workers
from lt_train import _setup, _trainer, train
from lt_train._devices import local_processes


@pytest.fixture
def cores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_listing.os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)


def test_explicit_value_is_kept(tmp_path: Path, cores: None) -> None:
    data = write_images(tmp_path / "data", 8)
    plan = _setup.plan_run(tiny_config(tmp_path / "out", data, batch_size=8, num_workers=3))
    assert plan.num_workers == 3


def test_auto_uses_the_cores_minus_the_training_processes(cores: None) -> None:
    assert auto_num_workers(None) == 15
    assert auto_num_workers(None, local_processes(2, "cpu")) == 7
    assert auto_num_workers(None, local_processes([0, 1, 2, 3], "cuda")) == 3
    assert auto_num_workers(None, local_processes("0,1", "cuda")) == 7
    assert auto_num_workers(None, 32) == 1  # never none for a long run


@pytest.mark.parametrize(
    ("batches", "expected"), [(1, 0), (2, 1), (3, 2), (15, 14), (16, 15), (1000, 15), (None, 15)]
)
def test_auto_starts_no_worker_an_epoch_cannot_use(
    cores: None, batches: int | None, expected: int
) -> None:
    assert auto_num_workers(batches) == expected


def test_local_processes() -> None:
    assert local_processes(4, "cuda") == 4
    assert local_processes([3], "cuda") == 1
    assert local_processes(" 0, 1 ,", "cuda") == 2
    assert local_processes("auto", "cpu") == 1


def test_plan_of_a_one_batch_run_starts_no_worker(tmp_path: Path, cores: None) -> None:
    data = write_images(tmp_path / "data", 8)
    plans = {}
    for batch_size in (8, 4):
        config = tiny_config(
            tmp_path / f"out{batch_size}", data, batch_size=batch_size, num_workers="auto"
        )
        plans[batch_size] = _setup.plan_run(config)
    assert plans[8].num_workers == 0  # one batch an epoch
    assert plans[4].num_workers == 1  # two: one worker reads the second during the first step


def test_workers_read_while_the_model_is_built(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first epoch's workers are started before the model is built: a worker has read
    an image by the time ``build_method`` runs (it waits up to 30 s for one)."""
    data = write_images(tmp_path / "data", 16)
    markers = tmp_path / "markers"
    markers.mkdir()
    read = ImageDataset.__getitem__

    def marked(self: ImageDataset, index: int) -> object:
        (markers / str(os.getpid())).touch()
        return read(self, index)

    build_method = _trainer.build_method
    seen: list[set[str]] = []

    def waiting(*args: object) -> object:
        deadline = time.monotonic() + 30
        while not any(markers.iterdir()) and time.monotonic() < deadline:
            time.sleep(0.01)
        seen.append({p.name for p in markers.iterdir()})
        return build_method(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(ImageDataset, "__getitem__", marked)
    monkeypatch.setattr(_trainer, "build_method", waiting)
    train(tiny_config(tmp_path / "out", data, num_workers=1))
    assert len(seen) == 1 and seen[0] and str(os.getpid()) not in seen[0]
