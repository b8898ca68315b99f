"""Resuming a run whose checkpoint an older lightly-train wrote (before some options existed)."""

from __future__ import annotations

from pathlib import Path

import torch
from _tiny import tiny_config, write_images

from lt_train import TrainConfig, train
from lt_train._atomic import atomic_torch_save
from lt_train._run_dir import RunDir

NEWER_OPTIONS = ("compile", "data_cache", "decode", "decode_size")


def _config(out: Path, data: Path, **options: object) -> TrainConfig:
    return tiny_config(out, data, **{"epochs": 2, "seed": 3, **options})


def test_a_checkpoint_without_the_newer_options_resumes(tmp_path: Path) -> None:
    data = write_images(tmp_path / "images", 24)
    out = tmp_path / "out"
    train(_config(out, data))
    # Make it look like an older version's run, stopped after epoch 1 (3 steps of 8 images).
    run = RunDir(out)
    state = torch.load(run.last_checkpoint, weights_only=True)
    for key in NEWER_OPTIONS:
        del state["run"][key]
    del state["data_cache"]
    state.update(epoch=1, step=3, step_in_epoch=0)
    atomic_torch_save(state, run.last_checkpoint)
    run.write_state("interrupted", step=3, max_steps=6)

    train(_config(out, data, resume_interrupted=True))  # default options: no "changed" error

    log = (out / "train.log").read_text()
    assert "Resuming the interrupted run" in log
    assert "Data cache: none, as in the interrupted run." in log  # it read every epoch from disk
    assert RunDir(out).state()["status"] == "finished"  # type: ignore[index]
