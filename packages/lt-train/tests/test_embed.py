"""lt_train.embed: every format, file names, bad images and shards, from a tiny trained run."""

from __future__ import annotations

import csv
import importlib.util
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from _tiny import Tiny
from torch import Tensor

from lt_core import ConfigError, EmbeddingModel
from lt_data import decode_image, make_shards
from lt_train import TrainConfig, train
from lt_train._embed import _writers as _embed_writers
from lt_train._embed._embed import embed as _embed
from lt_train._export._source import Source, run_image_size, run_normalization

QUICKSTART = Path(__file__).resolve().parents[3] / "docs" / "quickstart_data"
MEAN = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
STD = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A Tiny run (embed_dim=4) and a data folder of 13 images in two subfolders plus one
    unreadable file, ``b/broken.jpg``."""
    root = tmp_path_factory.mktemp("embed")
    data = root / "data"
    for i, src in enumerate(sorted(QUICKSTART.rglob("*.jpg"))[:13]):
        folder = data / ("a" if i < 7 else "b")
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(src, folder / f"{i:03d}.jpg")
    train_data = root / "train_data"
    shutil.copytree(data, train_data)
    (data / "b" / "broken.jpg").write_bytes(b"not a jpeg")
    torch.manual_seed(0)
    train(
        TrainConfig(
            out=str(root / "run"),
            data=str(train_data),
            model=Tiny(),
            embed_dim=4,
            epochs=1,
            batch_size=8,
            num_workers=0,
            accelerator="cpu",
            transform_args={"image_size": [32, 32]},
            progress_bar=False,
            loggers=[],
        )
    )
    return {"root": root, "data": data, "ckpt": root / "run" / "checkpoints" / "last.ckpt"}


def embed(**kwargs: Any) -> Path:
    """``embed`` of the Tiny run (a wrapper object run needs ``model=``)."""
    kwargs.setdefault("model", Tiny())
    kwargs.setdefault("num_workers", 0)
    return _embed(**kwargs)


def reference(setup: dict[str, Path], names: list[str], size: int = 32) -> Tensor:
    """The embeddings of ``names`` (relative to the data folder), computed directly."""
    model = EmbeddingModel(Tiny(), embed_dim=4)
    state = torch.load(setup["ckpt"], weights_only=True)["method"]
    model.load_state_dict({k[6:]: v for k, v in state.items() if k.startswith("model.")})
    x = torch.stack([decode_image(setup["data"] / n, (size, size)) for n in names])
    with torch.no_grad():
        return model.eval()((x.float() / 255 - MEAN) / STD)


GOOD = [f"a/{i:03d}.jpg" for i in range(7)] + [f"b/{i:03d}.jpg" for i in range(7, 13)]


def read_output(path: Path, format: str) -> tuple[list[str], Tensor]:
    if format == "torch":
        saved = torch.load(path, weights_only=True)
        assert set(saved) == {"filenames", "embeddings"}
        return saved["filenames"], saved["embeddings"]
    if format == "parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        assert table.column_names == ["filename", "embedding"]
        return table["filename"].to_pylist(), torch.tensor(table["embedding"].to_pylist())
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    dim = len(header) - (2 if format == "lightly_csv" else 1)
    columns = [f"embedding_{i}" for i in range(dim)]
    if format == "lightly_csv":
        assert header == ["filenames", *columns, "labels"]
        assert all(row[-1] == "0" for row in body)
        body = [row[:-1] for row in body]
    else:
        assert header == ["filename", *columns]
    return [r[0] for r in body], torch.tensor([[float(v) for v in r[1:]] for r in body])


FORMATS = ["torch", "csv", "lightly_csv", "parquet"]


@pytest.mark.parametrize("format", FORMATS)
def test_every_format_holds_the_embeddings_in_listing_order(
    setup: dict[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    format: str,
) -> None:
    if format == "parquet" and importlib.util.find_spec("pyarrow") is None:
        pytest.skip("needs pyarrow")
    monkeypatch.setattr(_embed_writers, "CHUNK_ROWS", 4)  # several parquet row groups
    out = tmp_path / "out" / f"embeddings.{format}"
    with caplog.at_level(logging.WARNING):
        result = embed(
            out=out,
            data=setup["data"],
            checkpoint=setup["ckpt"],
            format=format,
            batch_size=3,  # 5 batches
            num_workers=0,
            accelerator="cpu",
        )
    assert result == out
    names, embeddings = read_output(out, format)
    assert names == GOOD  # relative to the folder, sorted, the unreadable file left out
    assert embeddings.dtype == torch.float32 and embeddings.shape == (13, 4)
    torch.testing.assert_close(embeddings, reference(setup, GOOD), atol=1e-5, rtol=1e-4)
    assert "broken.jpg" in caplog.text  # the skipped image is named
    assert os.listdir(out.parent) == [out.name]  # no scratch file left


def test_workers_keep_the_order(setup: dict[str, Path], tmp_path: Path) -> None:
    out = embed(
        out=tmp_path / "e.pt", data=setup["data"], checkpoint=setup["ckpt"], batch_size=4,
        num_workers=2,
    )  # fmt: skip
    assert torch.load(out, weights_only=True)["filenames"] == GOOD


def test_file_names_of_lists_and_single_files(
    setup: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(setup["data"])
    out = embed(
        out=tmp_path / "e.pt", data=["b", "a/000.jpg"], checkpoint=setup["ckpt"], num_workers=0
    )
    saved = torch.load(out, weights_only=True)
    assert saved["filenames"] == ["a/000.jpg"] + [os.path.join("b", n[2:]) for n in GOOD[7:]]
    out = embed(
        out=tmp_path / "f.csv", data="a/003.jpg", checkpoint=setup["ckpt"], format="csv",
        num_workers=0,
    )  # fmt: skip
    assert read_output(out, "csv")[0] == ["a/003.jpg"]


def test_image_size_default_int_and_pair(setup: dict[str, Path], tmp_path: Path) -> None:
    data = setup["data"] / "a"
    names = GOOD[:7]
    for i, size in enumerate([None, 24, [24, 24]]):
        out = embed(
            out=tmp_path / f"{i}.pt", data=data, checkpoint=setup["ckpt"], image_size=size,
            num_workers=0,
        )  # fmt: skip
        saved = torch.load(out, weights_only=True)
        expected = reference(setup, names, 32 if size is None else 24)
        torch.testing.assert_close(saved["embeddings"], expected, atol=1e-5, rtol=1e-4)
    with pytest.raises(ConfigError, match="image_size"):
        embed(out=tmp_path / "x.pt", data=data, checkpoint=setup["ckpt"], image_size=[1, 2, 3])


def test_webdataset_shards(setup: dict[str, Path], tmp_path: Path) -> None:
    stats = make_shards(setup["data"], tmp_path / "shards", max_count=5, progress=False)
    assert stats.pattern is not None
    out = embed(
        out=tmp_path / "e.pt", data=stats.pattern, checkpoint=setup["ckpt"], batch_size=4,
        num_workers=0,
    )  # fmt: skip
    saved = torch.load(out, weights_only=True)
    assert len(saved["filenames"]) == 13
    assert all(name.startswith(str(tmp_path / "shards" / "shard-")) for name in saved["filenames"])
    keys = [name.split(".tar/", 1)[1] for name in saved["filenames"]]
    assert keys == GOOD
    torch.testing.assert_close(saved["embeddings"], reference(setup, GOOD), atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("format", ["torch", "csv", "lightly_csv"])
def test_only_unreadable_images_give_an_empty_file(
    setup: dict[str, Path], tmp_path: Path, format: str
) -> None:
    data = tmp_path / "bad"
    data.mkdir()
    for name in ("x.jpg", "y.png"):
        (data / name).write_bytes(b"broken")
    out = embed(out=tmp_path / "e", data=data, checkpoint=setup["ckpt"], format=format)
    if format == "torch":
        saved = torch.load(out, weights_only=True)
        assert saved["filenames"] == [] and saved["embeddings"].numel() == 0
    else:
        header = "filenames,labels" if format == "lightly_csv" else "filename"
        assert out.read_text().splitlines() == [header]


def test_out_is_protected_unless_overwrite(setup: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "e.csv"
    out.write_text("keep me")
    kwargs = {"data": setup["data"] / "a", "checkpoint": setup["ckpt"], "format": "csv"}
    with pytest.raises(ConfigError, match="overwrite=True"):
        embed(out=out, **kwargs)
    assert out.read_text() == "keep me"
    embed(out=out, overwrite=True, num_workers=0, **kwargs)
    assert out.read_text().startswith("filename,embedding_0")


def test_bad_options_are_clear_errors(
    setup: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kwargs = {"data": setup["data"], "checkpoint": setup["ckpt"]}
    with pytest.raises(ConfigError, match=r"Did you mean 'lightly_csv'\?.*parquet"):
        embed(out=tmp_path / "e", format="lightly-csv", **kwargs)
    with pytest.raises(ConfigError, match="precision"):
        embed(out=tmp_path / "e", precision="64", **kwargs)
    with pytest.raises(ConfigError, match="batch_size"):
        embed(out=tmp_path / "e", batch_size=0, **kwargs)
    exported = setup["ckpt"].parents[1] / "exported_models" / "exported_last.pt"
    with pytest.raises(ConfigError, match=r"last\.ckpt"):
        embed(out=tmp_path / "e", data=setup["data"], checkpoint=exported)
    with pytest.raises(ConfigError, match="model=<the same wrapper"):
        _embed(out=tmp_path / "e", **kwargs)
    with pytest.raises(ConfigError, match="Cannot import"):
        embed(out=tmp_path / "e", model="lt_no_such_module:Wrapper", **kwargs)
    monkeypatch.setattr(_embed_writers, "_available", lambda module: False)
    with pytest.raises(ImportError, match=r'pip install "lightly-train\[parquet\]"'):
        embed(out=tmp_path / "e", format="parquet", **kwargs)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("transform_args", "size", "mean"),
    [
        (
            {"image_size": [32, 48], "normalize": {"mean": [0.5] * 3, "std": [0.2] * 3}},
            (32, 48),
            0.5,
        ),
        ({"image_size": [32, 32], "mean": [0.4] * 3, "std": [0.2] * 3}, (32, 32), 0.4),
        ({"image_size": [64, 64], "global_view": {"view_size": [40, 40]}}, (40, 40), 0.485),
        ({"image_size": [64, 64], "global_view": {"view_size": None}}, (64, 64), 0.485),
        ({}, (224, 224), 0.485),
    ],
)
def test_the_run_decides_image_size_and_normalization(
    transform_args: dict[str, Any], size: tuple[int, int], mean: float
) -> None:
    source = Source(Path("x"), {}, {"transform_args": transform_args}, "")
    assert run_image_size(source) == size
    assert run_normalization(source)[0][0] == mean


def test_low_disk_space_is_said_before_the_embeddings_are_written(
    setup: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    from lt_train import _atomic

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(_atomic.shutil, "disk_usage", lambda p: usage._replace(free=8))
    with caplog.at_level(logging.WARNING, logger="lt_train"):
        out = embed(out=tmp_path / "e.pt", data=setup["data"], checkpoint=setup["ckpt"])
    assert out.is_file()  # (a warning only: some filesystems report no or wrong free space)
    assert f"Low disk space: the embeddings {out} needs about" in caplog.text
