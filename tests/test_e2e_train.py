"""End-to-end pretraining runs through all five packages, on CPU, on real images."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import torch
from _wrappers import Tiny
from conftest import QUICKSTART_DATA, cli_train_command
from torchvision.models import resnet18

import lightly_train

FAST = {
    "epochs": 1,
    "batch_size": 64,
    "num_workers": 1,
    "accelerator": "cpu",
    "progress_bar": False,
}


def _check_out(out: Path) -> list[dict[str, object]]:
    state = torch.load(out / "exported_models" / "exported_last.pt", weights_only=True)
    resnet18().load_state_dict(state, strict=True)
    assert (out / "checkpoints" / "last.ckpt").is_file()
    assert (out / "train.log").read_text().count("Epoch 1/1 done") == 1
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["event"] == "end"
    assert all(r["loss"] == r["loss"] for r in records if "loss" in r)  # no NaN
    return records


@pytest.mark.parametrize("method", ["simclr", "dino"])
def test_python_api_one_epoch(method: str, wrapper, images: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "out"
    before = {k: v.clone() for k, v in wrapper.get_model().state_dict().items()}
    result = lightly_train.train(
        out=out,
        data=images,
        model=wrapper,
        method=method,
        transform_args={"image_size": [32, 32]},
        log_every_n_steps=1,
        **FAST,
    )
    assert result == out
    records = _check_out(out)
    steps = [r for r in records if "loss" in r]
    assert len(steps) == 300 // 64  # drop_last
    assert {"loss", "lr", "images_per_s", "data_wait"} <= set(steps[0])
    after = wrapper.get_model().state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)  # weights were trained
    config = json.loads((out / "config.json").read_text())
    assert config["method"] == method and config["resolved"]["num_images"] == 300
    assert "memory format channels_last" in (out / "train.log").read_text()
    if method == "dino":
        # The trainer sized DINO to 300 images and 4 steps, not to ImageNet.
        args = config["method_args"]
        assert (args["output_dim"], args["teacher_temp"], args["momentum_start"]) == (
            1024,
            0.04,
            0.99,
        )


def test_cli_one_epoch(images: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli_out"
    cmd = cli_train_command(out, images, "optim_args.lr=0.1")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.count("Exported model:") == 1
    _check_out(out)
    config = json.loads((out / "config.json").read_text())
    assert config["resolved"]["lr"] == pytest.approx(0.1 * 64 / 256)


def _train_simclr(out: Path, data: Path, wrapper, **options: object) -> None:  # type: ignore[no-untyped-def]
    lightly_train.train(
        out=out,
        data=data,
        model=wrapper,
        method="simclr",
        transform_args={"image_size": [32, 32]},
        **{**FAST, **options},  # type: ignore[arg-type]
    )


def test_bad_images_are_skipped_and_counted(images: Path, tmp_path: Path, wrapper) -> None:  # type: ignore[no-untyped-def]
    # 62 good images and 2 bad files, one batch of 64: every file is read in the one step.
    data = tmp_path / "mixed"
    data.mkdir()
    for src in sorted(images.rglob("*.jpg"))[:62]:
        (data / f"{src.parent.name}_{src.name}").write_bytes(src.read_bytes())
    (data / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (data / "empty.png").write_bytes(b"")
    out = tmp_path / "out"
    _train_simclr(out, data, wrapper, log_every_n_steps=1)
    log = (out / "train.log").read_text()
    assert "Skipped unreadable image" in log and "broken.jpg" in log and "empty.png" in log
    assert "Skipped 2 unreadable image(s)" in log
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert records[-1]["skipped_images"] == 2
    assert len([r for r in records if "loss" in r]) == 1  # the step ran on a refilled batch


def test_overwrite_keeps_user_files(images: Path, tmp_path: Path, wrapper) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    _train_simclr(out, images, wrapper, overwrite=True)
    assert (out / "notes.txt").read_text() == "mine"
    assert (out / "exported_models" / "exported_last.pt").is_file()


def test_readme_quickstart_script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's main-job command runs docs/examples/quickstart.py; run its main()."""
    import quickstart

    monkeypatch.chdir(tmp_path)
    quickstart.main(out="out/quickstart", epochs=1)
    resnet18().load_state_dict(
        torch.load("out/quickstart/exported_models/exported_last.pt", weights_only=True)
    )


def test_compile_keeps_checkpoint_and_export_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """compile=True compiles the model in place (dynamo traces it; the eager backend here
    skips inductor's C++ build, ~40 s on this CPU, which the benchmark covers)."""
    compiled: list[str] = []
    original = torch.nn.Module.compile

    def eager_compile(self: torch.nn.Module, *args: Any, **kwargs: Any) -> None:
        compiled.append(type(self).__name__)
        original(self, *args, **{**kwargs, "backend": "eager"})

    monkeypatch.setattr(torch.nn.Module, "compile", eager_compile)
    torch.manual_seed(0)
    out = lightly_train.train(
        out=tmp_path / "out",
        data=QUICKSTART_DATA,
        model=Tiny(),
        compile=True,
        epochs=1,
        batch_size=64,
        num_workers=0,
        accelerator="cpu",
        progress_bar=False,
        transform_args={"image_size": [32, 32]},
    )  # type: ignore[arg-type]
    assert compiled == ["EmbeddingModel"]
    state = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["method"]
    assert "model.wrapper.net.0.weight" in state
    assert not any("_orig_mod" in k for k in state)
    exported = torch.load(out / "exported_models" / "exported_last.pt", weights_only=True)
    Tiny().get_model().load_state_dict(exported)
