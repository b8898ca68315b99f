"""data_cache: the first epoch decodes, later epochs read no file; resume stays exact."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from _wrappers import CtrlC
from conftest import QUICKSTART_DATA

import lightly_train
from lt_core import TrainingInterrupted
from lt_data import ImageDataset

OPTIONS = {
    "epochs": 3,
    "batch_size": 32,
    "num_workers": 0,
    "accelerator": "cpu",
    "progress_bar": False,
    "log_every_n_steps": 1,
    "checkpoint_every_n_steps": 100,
    "transform_args": {"image_size": [32, 32]},
}


def _losses(out: Path) -> dict[int, float]:
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in records if "loss" in r}


def test_cached_epochs_read_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reads: list[int] = []
    original = ImageDataset.__getitem__

    def counted(self: ImageDataset, index: int) -> object:
        reads.append(index)
        return original(self, index)

    monkeypatch.setattr(ImageDataset, "__getitem__", counted)
    for mode, expected in (("ram", 1), ("none", 3)):
        reads.clear()
        torch.manual_seed(0)
        out = lightly_train.train(
            out=tmp_path / mode,
            data=QUICKSTART_DATA,
            model=CtrlC(at=-1),
            data_cache=mode,
            monitor_args={"enabled": False},  # (its sample is read once more, uncached)
            **OPTIONS,
        )  # type: ignore[arg-type]
        assert len(reads) == expected * 9 * 32  # 300 images: 9 steps of 32 an epoch
        assert len(_losses(out)) == 27
        log = (out / "train.log").read_text()
        assert f"Data cache: {mode}" in log or mode == "none"
    assert len(set(reads)) > 288  # without a cache each epoch draws another 288 of the 300


def test_interrupt_in_the_fill_epoch_then_resume_is_exact(tmp_path: Path) -> None:
    """The resumed run decodes the first epoch's images again, in the same order, so the
    cached epochs deal the same batches as in an uninterrupted run."""
    options = {**OPTIONS, "data_cache": "ram"}
    torch.manual_seed(0)
    ref = lightly_train.train(
        out=tmp_path / "ref", data=QUICKSTART_DATA, model=CtrlC(at=-1), **options
    )  # type: ignore[arg-type]
    out = tmp_path / "out"
    torch.manual_seed(0)
    with pytest.raises(TrainingInterrupted, match="at step 5 of 27"):
        lightly_train.train(out=out, data=QUICKSTART_DATA, model=CtrlC(at=5), **options)  # type: ignore[arg-type]
    lightly_train.train(
        out=out, data=QUICKSTART_DATA, model=CtrlC(at=-1), resume_interrupted=True, **options
    )  # type: ignore[arg-type]
    assert _losses(out) == _losses(ref)
    assert "Refilling the data cache: decoding 160 images" in (out / "train.log").read_text()
    ours = torch.load(out / "exported_models" / "exported_last.pt", weights_only=True)
    theirs = torch.load(ref / "exported_models" / "exported_last.pt", weights_only=True)
    assert all(torch.equal(ours[k], theirs[k]) for k in theirs)


def test_decode_on_the_device(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """decode="gpu" runs the same code on any device: the workers send JPEG bytes, the
    main process decodes them in batches (here with libjpeg on the CPU, as no GPU is
    at hand; on a GPU with nvjpeg)."""
    from lt_core import ConfigError
    from lt_data import DeviceDecoder
    from lt_train import _setup

    with pytest.raises(ConfigError, match="decode='gpu' decodes JPEGs with nvjpeg on a CUDA"):
        lightly_train.train(
            out=tmp_path / "x", data=QUICKSTART_DATA, model=CtrlC(at=-1), decode="gpu", **OPTIONS
        )  # type: ignore[arg-type]
    assert not (tmp_path / "x").exists()
    monkeypatch.setattr(_setup, "_decode", lambda name, accelerator: "gpu")
    decoded: list[int] = []
    original = DeviceDecoder.__call__

    def counted(self: DeviceDecoder, batch: dict[str, object]) -> dict[str, object]:
        decoded.append(len(batch["encoded"]))  # type: ignore[arg-type]
        return original(self, batch)

    monkeypatch.setattr(DeviceDecoder, "__call__", counted)
    out = lightly_train.train(
        out=tmp_path / "gpu", data=QUICKSTART_DATA, model=CtrlC(at=-1), data_cache="ram", **OPTIONS
    )  # type: ignore[arg-type]
    assert decoded == [32] * 9  # the first epoch's batches, all JPEG bytes; then the cache
    assert len(_losses(out)) == 27
    config = json.loads((out / "config.json").read_text())
    assert config["resolved"]["decode"] == "gpu"
