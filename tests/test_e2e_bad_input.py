"""Bad inputs fail fast, with a clear message, and write nothing into an existing out folder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_tar
from torch import nn

import lightly_train
from lt_core import ConfigError, DataError, LightlyTrainError, WrapperTypeError, WrapperValueError


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """An existing out folder with a user's file; overwrite=True so only the checks stop a run."""
    path = tmp_path / "out"
    path.mkdir()
    (path / "keep.txt").write_text("mine")
    return path


def _run(out: Path, data: object, **kwargs: object) -> None:
    options: dict[str, object] = dict(
        model="torchvision/resnet18",
        epochs=1,
        batch_size=8,
        accelerator="cpu",
        overwrite=True,
        transform_args={"image_size": [32, 32]},
    )
    options.update(kwargs)
    lightly_train.train(out=out, data=data, **options)  # type: ignore[arg-type]


class TooFewChannels(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)

    def get_model(self) -> nn.Module:
        return self.conv

    def forward_features(self, x):  # type: ignore[no-untyped-def]
        return {"features": self.conv(x)}

    def forward_pool(self, x):  # type: ignore[no-untyped-def]
        return {"pooled_features": x["features"].mean((2, 3), keepdim=True)}

    def feature_dim(self) -> int:
        return 16


def _empty(tmp_path: Path) -> Path:
    (tmp_path / "empty").mkdir()
    return tmp_path / "empty"


def _no_images(tmp_path: Path) -> Path:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.txt").write_text("x")
    (tmp_path / "docs" / ".hidden.jpg").write_bytes(b"x")
    return tmp_path / "docs"


def _text_tar(tmp_path: Path) -> Path:
    return write_tar(tmp_path / "text.tar", [(f"{i}.txt", b"x") for i in range(40)])


def _corrupt_tar(tmp_path: Path) -> Path:
    return write_tar(tmp_path / "corrupt.tar", [(f"{i}.jpg", b"not a jpeg") for i in range(40)])


CASES = [
    pytest.param(
        lambda t, img: dict(data=_text_tar(t)),
        DataError,
        r"hold 40 sample\(s\), none with an image member \(a member name ending in \.jpg",
        id="tar-without-images",
    ),
    pytest.param(
        lambda t, img: dict(data=_corrupt_tar(t)),
        DataError,
        r"No image of the 1 shard\(s\) '.*corrupt\.tar' could be read",
        id="tar-of-corrupt-images",
    ),
    pytest.param(  # an unreachable source with epoch_size: one failed pass, not a retry loop
        lambda t, img: dict(data=f"pipe:cat {t}/missing-{{0..3}}.tar", epoch_size=10_000),
        DataError,
        r"no full batch of 8 images in the first epoch",
        id="unreachable-stream",
    ),
    pytest.param(
        lambda t, img: dict(data=t / "missing"), DataError, "missing", id="missing-folder"
    ),
    pytest.param(lambda t, img: dict(data=_empty(t)), DataError, "is empty", id="empty-folder"),
    pytest.param(
        lambda t, img: dict(data=_no_images(t)),
        DataError,
        "contains no images: its 1 file",
        id="no-images",
    ),
    pytest.param(
        lambda t, img: dict(data=img, model="torchvision/resnet19"),
        ConfigError,
        "Did you mean 'resnet18'",
        id="unknown-model",
    ),
    pytest.param(
        lambda t, img: dict(data=img, method="simclear"),
        ConfigError,
        "Did you mean 'simclr'",
        id="unknown-method",
    ),
    pytest.param(
        lambda t, img: dict(data=img, model=nn.Linear(3, 3)),
        WrapperTypeError,
        "neither a model wrapper .* nor a model of a known class \\(torchvision.models.ResNet",
        id="plain-module",
    ),
    pytest.param(
        lambda t, img: dict(data=img, model=TooFewChannels()),
        WrapperValueError,
        "feature_dim\\(\\) returns 16",
        id="invalid-wrapper",
    ),
    pytest.param(
        lambda t, img: dict(data=img, batch_size=1000),
        DataError,
        "batch_size=1000 is larger than the dataset \\(300 images",
        id="batch-too-large",
    ),
    pytest.param(
        lambda t, img: dict(data=img, method_args={"temprature": 0.1}, method="simclr"),
        ConfigError,
        "Did you mean 'temperature'",
        id="method-arg-typo",
    ),
    pytest.param(
        lambda t, img: dict(data=img, transform_args={"image_sise": [32, 32]}),
        ConfigError,
        "Did you mean 'image_size'",
        id="transform-arg-typo",
    ),
]


@pytest.mark.parametrize(("make", "error", "message"), CASES)
def test_bad_input_fails_fast_and_writes_nothing(
    make, error, message, out: Path, tmp_path: Path, images: Path
) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(error, match=message) as info:
        _run(out, **make(tmp_path, images))
    assert isinstance(info.value, LightlyTrainError)
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_out_is_a_file(tmp_path: Path, images: Path) -> None:
    f = tmp_path / "out.txt"
    f.write_text("mine")
    with pytest.raises(ConfigError, match="is a file, not a folder"):
        _run(f, images)
    assert f.read_text() == "mine"


def test_non_empty_out_without_overwrite(out: Path, images: Path) -> None:
    with pytest.raises(ConfigError, match="exists and is not empty"):
        lightly_train.train(
            out=out, data=images, model="torchvision/resnet18", epochs=1, accelerator="cpu"
        )
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]


def test_a_script_whose_train_call_fails_exits(tmp_path: Path) -> None:
    # An uncaught error keeps its traceback, and with it the loader's iterator, alive until
    # the interpreter exits; the workers ignore SIGTERM, so train() must stop them itself
    # or the exit waits for them forever.
    data = _corrupt_tar(tmp_path)
    script = tmp_path / "script.py"
    script.write_text(
        "import lightly_train\n"
        f"lightly_train.train(out={str(tmp_path / 'out')!r}, data={str(data)!r}, "
        "model='torchvision/resnet18', epochs=1, batch_size=8, accelerator='cpu', "
        "num_workers=2, transform_args={'image_size': [32, 32]})\n"
    )
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 1
    assert "DataError: No image of the 1 shard(s)" in proc.stderr
    assert not (tmp_path / "out").exists()
