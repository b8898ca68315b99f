from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from lt_core import ConfigError
from lt_train._atomic import atomic_torch_save, atomic_write, remove_temp_files
from lt_train._checkpoint import (
    changed_options,
    get_rng_state,
    load_checkpoint,
    set_rng_state,
)
from lt_train._checkpointer import Checkpointer
from lt_train._run_args import ModelCheckpointArgs


def test_failed_write_keeps_the_old_file_and_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "file.pt"
    atomic_torch_save({"a": torch.ones(2)}, path)

    def fail(f: object) -> None:
        f.write(b"partial")  # type: ignore[attr-defined]
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, fail)
    assert torch.equal(torch.load(path, weights_only=True)["a"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["file.pt"]


def test_remove_temp_files_only_removes_temp_files(tmp_path: Path) -> None:
    (tmp_path / ".last.ckpt.tmp-1-ab").write_bytes(b"x")
    (tmp_path / "last.ckpt").write_bytes(b"y")
    (tmp_path / ".hidden").write_bytes(b"z")
    assert [p.name for p in remove_temp_files(tmp_path)] == [".last.ckpt.tmp-1-ab"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".hidden", "last.ckpt"]


def test_rng_state_round_trips_through_a_weights_only_checkpoint(tmp_path: Path) -> None:
    torch.manual_seed(3)
    random.seed(3)
    atomic_torch_save({"rng": get_rng_state()}, tmp_path / "c.ckpt")
    expected = (torch.rand(4), random.random())
    torch.manual_seed(99)
    random.seed(99)
    set_rng_state(load_checkpoint(tmp_path / "c.ckpt")["rng"])
    assert torch.equal(torch.rand(4), expected[0]) and random.random() == expected[1]


def _checkpointer(folder: Path, **args: object) -> Checkpointer:
    return Checkpointer(ModelCheckpointArgs(**args), folder, epochs=3)  # type: ignore[arg-type]


def test_keep_k_checkpoints_and_last_is_the_newest(tmp_path: Path) -> None:
    checkpointer = _checkpointer(tmp_path, save_top_k=3)
    for step in range(1, 6):
        state = {"epoch": step // 3, "step": step, "w": torch.full((2,), float(step))}
        checkpointer.write(state)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [
        "epoch=1-step=3.ckpt",
        "epoch=1-step=4.ckpt",
        "epoch=1-step=5.ckpt",
        "last.ckpt",
    ]
    assert load_checkpoint(tmp_path / "last.ckpt")["step"] == 5


def test_custom_filename_and_keep_all(tmp_path: Path) -> None:
    checkpointer = _checkpointer(tmp_path, save_top_k=-1, filename="e{epoch}-s{step}")
    for step in (10, 20):
        checkpointer.write({"epoch": 0, "step": step})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e0-s10.ckpt", "e0-s20.ckpt", "last.ckpt"]


def test_keep_one_writes_last_only(tmp_path: Path) -> None:
    checkpointer = _checkpointer(tmp_path)
    checkpointer.write({"epoch": 0, "step": 1})
    checkpointer.write({"epoch": 0, "step": 2})
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_truncated_checkpoint_gives_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "last.ckpt"
    atomic_torch_save({"w": torch.zeros(1000)}, path)
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(ConfigError, match="may be truncated"):
        load_checkpoint(path)
    with pytest.raises(ConfigError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.ckpt")


def test_changed_options_name_old_and_new_values() -> None:
    saved = {"epochs": 10, "transform_args": {"image_size": (32, 32)}, "lr": 0.1}
    current = {"epochs": 20, "transform_args": {"image_size": [32, 32]}, "lr": 0.1}
    assert changed_options(saved, current) == ["epochs: 10 -> 20"]


def test_changed_options_compare_dict_options_key_by_key() -> None:
    saved = {"transform_args": {"image_size": [32, 32], "blur": {"prob": 0.5}}}
    # A key added after the checkpoint was written, and switched off: unchanged.
    current = {"transform_args": {"image_size": [32, 32], "blur": {"prob": 0.5}, "augment": None}}
    assert changed_options(saved, current) == []
    current["transform_args"]["blur"] = {"prob": 0.1}
    current["transform_args"]["augment"] = "RandomRotation(degrees=30.0)"
    assert changed_options(saved, current) == [
        "transform_args.augment: None -> 'RandomRotation(degrees=30.0)'",
        "transform_args.blur.prob: 0.5 -> 0.1",
    ]


def test_an_option_newer_than_the_checkpoint_counts_only_when_not_default() -> None:
    saved = {"epochs": 10}  # written before "compile" and "decode" existed
    defaults = {"compile": False, "decode": "auto", "epochs": 100}
    current = {"epochs": 10, "compile": False, "decode": "auto"}
    assert changed_options(saved, current, defaults) == []
    current = {"epochs": 10, "compile": True, "decode": "auto"}
    assert changed_options(saved, current, defaults) == ["compile: None -> True"]
    assert changed_options(saved, {"epochs": 10, "compile": False}) == [
        "compile: None -> False"  # without defaults: every new key differs
    ]


def test_cadence_by_steps_epochs_and_time(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from lt_train import _checkpointer

    now = [100.0]
    monkeypatch.setattr(_checkpointer.time, "monotonic", lambda: now[0])
    checkpointer = _checkpointer.Checkpointer(
        ModelCheckpointArgs(every_n_train_steps=4, every_n_epochs=2, train_time_interval=60),
        tmp_path,
        epochs=5,
    )
    assert [s for s in range(1, 13) if checkpointer.due_after_step(s)] == [4, 8, 12]
    assert [e for e in range(1, 6) if checkpointer.due_after_epoch(e)] == [2, 4, 5]  # and the last
    assert not checkpointer.time_due()
    now[0] += 60
    assert checkpointer.time_due()
    checkpointer.done(7)
    assert not checkpointer.time_due() and checkpointer.last_step == 7
