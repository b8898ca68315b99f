"""The export and embed commands, run with the commands of lightly-train 0.18.0's docs."""

from __future__ import annotations

import csv
import shlex
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torchvision.models import resnet18

import lightly_train
from lightly_train import _cli
from lightly_train._cli import parse_key_values
from lightly_train._cli_commands import embed_command, export_command
from lt_core import ConfigError, ConfigTypeError

QUICKSTART = Path(__file__).resolve().parents[3] / "docs" / "quickstart_data"
CKPT = "out/my_experiment/checkpoints/last.ckpt"
NUM_IMAGES = 10


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A folder with ``my_data_dir`` (10 images in two classes) and a run of
    ``torchvision/resnet18`` in ``out/my_experiment``, as in the docs' commands."""
    root = tmp_path_factory.mktemp("cli")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        for i, src in enumerate(sorted(QUICKSTART.rglob("*.jpg"))[:NUM_IMAGES]):
            folder = Path("my_data_dir") / ("cat" if i % 2 else "dog")
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, folder / f"{i}.jpg")
        torch.manual_seed(0)
        lightly_train.train(
            out="out/my_experiment",
            data="my_data_dir",
            model="torchvision/resnet18",
            method="simclr",
            epochs=1,
            batch_size=NUM_IMAGES,
            num_workers=0,
            accelerator="cpu",
            transform_args={"image_size": [32, 32]},
            progress_bar=False,
            loggers=[],
        )
        yield root


def run(command: str) -> int:
    """Run a ``lightly-train export|embed ...`` command line (parsed as a shell would)."""
    words = shlex.split(command)
    assert words[0] == "lightly-train"
    options = parse_key_values(words[2:])
    return {"export": export_command, "embed": embed_command}[words[1]](options)


def test_export_torch_state_dict_loads_into_torchvision(
    workdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    command = (
        'lightly-train export out="my_exported_model.pt" '
        'checkpoint="out/my_experiment/checkpoints/last.ckpt" part="model" '
        'format="torch_state_dict" overwrite=true'
    )
    assert run(command) == 0
    assert "Exported model (torch_state_dict) to my_exported_model.pt" in capsys.readouterr().out
    model = resnet18()
    model.load_state_dict(torch.load("my_exported_model.pt", weights_only=True))
    exported = torch.load("out/my_experiment/exported_models/exported_last.pt", weights_only=True)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in exported.items())


@pytest.mark.parametrize(
    "command",
    [
        f"lightly-train export checkpoint={CKPT} out=out/model.pth",
        f"lightly-train export checkpoint={CKPT} out=out/model.pth format=torch_state_dict",
    ],
)
def test_export_defaults_to_the_model_state_dict(workdir: Path, command: str) -> None:
    assert run(command + " overwrite=true") == 0
    resnet18().load_state_dict(torch.load("out/model.pth", weights_only=True))


def test_export_embedding_model_as_torch_model(workdir: Path) -> None:
    command = (
        f"lightly-train export checkpoint={CKPT} out=out/embedding_model.pth "
        "part=embedding_model format=torch_model overwrite=true"
    )
    assert run(command) == 0
    module = torch.load("out/embedding_model.pth", weights_only=False)
    assert module(torch.rand(2, 3, 32, 32)).shape == (2, 512)


def test_embed_torch(workdir: Path) -> None:
    command = (
        f"lightly-train embed out=my_embeddings.pth data=my_data_dir checkpoint={CKPT} "
        "format=torch overwrite=true"
    )
    assert run(command) == 0
    saved = torch.load("my_embeddings.pth", weights_only=True)
    assert saved["embeddings"].shape == (NUM_IMAGES, 512)
    assert saved["filenames"][0] == "cat/1.jpg"  # relative to the data folder


@pytest.mark.parametrize(
    ("command", "header"),
    [
        (
            f"lightly-train embed out=embeddings.csv data=my_data_dir checkpoint={CKPT} format=csv",
            "filename",
        ),
        (
            f"lightly-train embed out=embeddings.csv data=my_data_dir checkpoint={CKPT} "
            "format=lightly_csv",
            "filenames",
        ),
        (
            f"lightly-train embed out=embeddings.csv data=my_data_dir checkpoint={CKPT} "
            'format=csv image_size="[48, 64]"',
            "filename",
        ),
    ],
)
def test_embed_csv_commands(
    workdir: Path, capsys: pytest.CaptureFixture[str], command: str, header: str
) -> None:
    assert run(command + " overwrite=true num_workers=0") == 0
    assert "embeddings.csv" in capsys.readouterr().out
    with open("embeddings.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0][0] == header and rows[0][1] == "embedding_0"
    assert len(rows) == NUM_IMAGES + 1 and len(rows[1]) == len(rows[0])


def test_unknown_and_missing_options_name_the_fix(workdir: Path) -> None:
    with pytest.raises(ConfigError, match=r"Unknown option 'fromat'.*Did you mean 'format'\?"):
        export_command({"out": "x.pt", "checkpoint": CKPT, "fromat": "torch_model"})
    with pytest.raises(ConfigError, match=r"needs checkpoint=\.\.\."):
        export_command({"out": "x.pt"})
    with pytest.raises(ConfigError, match=r"needs out=\.\.\., data=\.\.\."):
        embed_command({"checkpoint": CKPT})
    with pytest.raises(ConfigError, match=r"Did you mean 'image_size'\?"):
        embed_command({"out": "e.pt", "data": "my_data_dir", "checkpoint": CKPT, "imagesize": 3})
    with pytest.raises(ConfigTypeError, match="out must be a path"):
        export_command({"out": True, "checkpoint": CKPT})
    Path("exists.pt").write_bytes(b"x")
    with pytest.raises(ConfigError, match="overwrite=true"):
        export_command({"out": "exists.pt", "checkpoint": CKPT})


@pytest.mark.skipif("export" not in _cli.COMMANDS, reason="export is not wired into the CLI yet")
def test_the_cli_runs_export_and_embed(workdir: Path) -> None:
    assert _cli.main(["export", "out=cli_model.pt", f"checkpoint={CKPT}", "overwrite=true"]) == 0
    assert Path("cli_model.pt").is_file()
    args = ["embed", "out=cli.csv", "data=my_data_dir", f"checkpoint={CKPT}", "format=csv"]
    assert _cli.main([*args, "overwrite=true", "num_workers=0"]) == 0
    assert _cli.main(["export", "out=x.pt", f"checkpoint={CKPT}", "part=modle"]) != 0
