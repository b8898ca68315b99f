from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lightly_train._cli import main, parse_key_values, parse_value
from lt_core import ConfigError, LossNotFiniteError, TrainingInterrupted


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("10", 10),
        ("0.1", 0.1),
        ("1e-3", 1e-3),
        ("true", True),
        ("False", False),
        ("null", None),
        ("[32,32]", [32, 32]),
        ("[32, 32]", [32, 32]),
        ("(32, 32)", (32, 32)),
        ("out/my_experiment", "out/my_experiment"),
        ("torchvision/resnet18", "torchvision/resnet18"),
        ("bf16-mixed", "bf16-mixed"),
        ("[a,b/c]", ["a", "b/c"]),
        ('"123"', "123"),
        ("dino", "dino"),
    ],
)
def test_parse_value(text: str, value: object) -> None:
    assert parse_value(text) == value


def test_parse_nested_keys() -> None:
    assert parse_key_values(
        [
            "epochs=3",
            "optim_args.lr=0.1",
            "transform_args.image_size=[32,32]",
            "transform_args.local_view.view_size=[14,14]",
        ]
    ) == {
        "epochs": 3,
        "optim_args": {"lr": 0.1},
        "transform_args": {"image_size": [32, 32], "local_view": {"view_size": [14, 14]}},
    }


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["epochs"], "expected key=value"),
        (["a=1", "a=2"], "given twice"),
        (["a=1", "a.b=2"], "already has a value"),
    ],
)
def test_parse_errors(args: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_key_values(args)


def test_help_lists_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["help"]) == 0
    text = capsys.readouterr().out
    for option in (
        "out=(required)",
        "epochs=100",
        "batch_size=128",
        "optim_args=None",
        "transform_args",
        "overwrite=False",
    ):
        assert option in text


def test_unknown_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["trian"]) == 2
    assert "Unknown command 'trian'. Did you mean 'train'?" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("epoch=1", "Unknown option 'epoch'. Did you mean 'epochs'?"),
        ("epochs=ten", "epochs must be of type int or 'auto', got str: 'ten'"),
        ("optim_args.lrr=0.1", "Unknown key 'optim_args.lrr'. Did you mean 'lr'?"),
    ],
    ids=["misspelled-key", "wrong-type", "nested-misspelled-key"],
)
def test_bad_option_fails_before_work(
    option: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    code = main(["train", f"out={out}", f"data={tmp_path}", "model=torchvision/resnet18", option])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_list_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list_methods"]) == 0
    methods = capsys.readouterr().out.split()
    assert "simclr" in methods and "dino" in methods
    assert main(["list_models"]) == 0
    assert "torchvision/resnet18" in capsys.readouterr().out.split()


def test_console_script_is_installed() -> None:
    script = Path(sys.executable).parent / "lightly-train"
    proc = subprocess.run([str(script), "help"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "lightly-train train out=OUT data=DATA model=MODEL" in proc.stdout


@pytest.mark.parametrize(
    ("error", "code", "message"),
    [
        (OSError(28, "No space left on device"), 1, "error: [Errno 28] No space left"),
        (LossNotFiniteError("The loss became NaN at step 3"), 1, "error: The loss became NaN"),
        (TrainingInterrupted("Stopped by SIGTERM", 15, "out"), 143, ""),
        (KeyboardInterrupt(), 130, "stopped."),
    ],
)
def test_failures_during_training_are_clean_messages(
    error: BaseException,
    code: int,
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import lightly_train

    def fail(**options: object) -> None:
        raise error

    monkeypatch.setattr(lightly_train, "train", fail)
    assert main(["train", "out=o", "data=d", "model=m"]) == code
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_make_shards_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    data = tmp_path / "images"
    data.mkdir()
    for i in range(5):
        Image.new("RGB", (8, 8), (i, 0, 0)).save(data / f"{i}.png")
    (data / "broken.jpg").write_bytes(b"no")
    out = tmp_path / "shards"
    assert main(["make-shards", f"data={data}", f"out={out}", "max_count=2", "progress=false"]) == 0
    assert "Wrote 5 images into 3 shards" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == [f"shard-00000{i}.tar" for i in range(3)]
    assert main(["make-shards", f"data={data}"]) == 2
    assert "make-shards needs out=..." in capsys.readouterr().err
    assert main(["make-shards", f"data={data}", f"out={out}2", "max_cout=2"]) == 2
    assert "max_cout" in capsys.readouterr().err


def test_usage_names_every_embed_format() -> None:
    import typing

    from lightly_train._cli import USAGE
    from lightly_train._embed import embed

    line = next(line for line in USAGE.splitlines() if "lightly-train embed" in line)
    formats = typing.get_args(typing.get_type_hints(embed)["format"])
    assert f"format={'|'.join(formats)}" in line
