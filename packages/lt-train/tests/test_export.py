"""lt_train.export: every part and format from a tiny trained run."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from _tiny import Tiny
from torch import Tensor, nn

from lt_core import ConfigError, EmbeddingModel
from lt_train import TrainConfig, train
from lt_train._export import _onnx as _export_onnx
from lt_train._export._export import export

QUICKSTART = Path(__file__).resolve().parents[3] / "docs" / "quickstart_data"
PARTS = ("model", "embedding_model", "wrapped_model")


# The same wrapper as a module of its own, so a run can name it "module:Class".
TINY_MODULE = """
import torch
from torch import nn


class TinyByPath(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, 6, 3, stride=2), nn.BatchNorm2d(6))

    def get_model(self):
        return self.net

    def forward_features(self, x):
        return {"features": torch.relu(self.net(x))}

    def forward_pool(self, x):
        return {"pooled_features": x["features"].mean((2, 3), keepdim=True)}

    def feature_dim(self):
        return 6
"""


def copy_images(dst: Path, count: int) -> Path:
    dst.mkdir(parents=True)
    for i, src in enumerate(sorted(QUICKSTART.rglob("*.jpg"))[:count]):
        shutil.copy(src, dst / f"{i:03d}.jpg")
    return dst


def train_tiny(out: Path, data: Path, model: Any, embed_dim: int | None) -> Path:
    train(
        TrainConfig(
            out=str(out),
            data=str(data),
            model=model,
            method="simclr",
            embed_dim=embed_dim,
            epochs=1,
            batch_size=8,
            num_workers=0,
            accelerator="cpu",
            transform_args={"image_size": [32, 32]},
            progress_bar=False,
            loggers=[],
        )
    )
    return out


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run of the wrapper object ``Tiny`` with an embedding layer (embed_dim=4)."""
    root = tmp_path_factory.mktemp("export")
    torch.manual_seed(0)
    return train_tiny(root / "run", copy_images(root / "images", 16), Tiny(), embed_dim=4)


@pytest.fixture(scope="module")
def named_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A run of the model named ``"lt_export_tiny:TinyByPath"`` (an import path)."""
    root = tmp_path_factory.mktemp("export_named")
    (root / "lt_export_tiny.py").write_text(TINY_MODULE)
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(root))
        images = copy_images(root / "images", 16)
        yield train_tiny(root / "run", images, "lt_export_tiny:TinyByPath", embed_dim=None)
        sys.modules.pop("lt_export_tiny", None)


def ckpt(run: Path) -> Path:
    return run / "checkpoints" / "last.ckpt"


def method_state(run: Path, prefix: str) -> dict[str, Tensor]:
    state = torch.load(ckpt(run), weights_only=True)["method"]
    return {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}


def assert_same_state(actual: dict[str, Tensor], expected: dict[str, Tensor]) -> None:
    assert list(actual) == list(expected)
    for key, value in expected.items():
        assert torch.equal(actual[key], value), key


EXPECTED_PREFIX = {
    "model": "model.wrapper.net.",
    "embedding_model": "model.",
    "wrapped_model": "model.wrapper.",
}


@pytest.mark.parametrize("format", ["package_default", "torch_state_dict"])
@pytest.mark.parametrize("part", PARTS)
def test_state_dict_formats_hold_the_trained_weights(
    run: Path, tmp_path: Path, part: str, format: str
) -> None:
    out = export(out=tmp_path / "sub" / "w.pt", checkpoint=ckpt(run), part=part, format=format)
    assert out == tmp_path / "sub" / "w.pt"
    state = torch.load(out, weights_only=True)
    assert_same_state(state, method_state(run, EXPECTED_PREFIX[part]))
    if part == "model":  # the same file as the automatic export of the run
        exported = torch.load(run / "exported_models" / "exported_last.pt", weights_only=True)
        assert_same_state(state, exported)


@pytest.mark.parametrize("part", PARTS)
def test_torch_model_is_the_module_with_the_trained_weights(
    run: Path, tmp_path: Path, part: str
) -> None:
    out = export(
        out=tmp_path / "m.pt", checkpoint=ckpt(run), part=part, format="torch_model", model=Tiny()
    )
    module = torch.load(out, weights_only=False)
    expected_type = {
        "model": nn.Sequential,
        "embedding_model": EmbeddingModel,
        "wrapped_model": Tiny,
    }
    assert isinstance(module, expected_type[part])
    assert_same_state(module.state_dict(), method_state(run, EXPECTED_PREFIX[part]))
    if part == "embedding_model":
        assert not module.training
        assert module(torch.rand(3, 3, 32, 32)).shape == (3, 4)


def test_model_wrapper_is_copied_not_changed(run: Path, tmp_path: Path) -> None:
    wrapper = Tiny()
    before = {k: v.clone() for k, v in wrapper.state_dict().items()}
    export(out=tmp_path / "m.pt", checkpoint=ckpt(run), format="torch_model", model=wrapper)
    assert_same_state(wrapper.state_dict(), before)


def test_a_wrapper_object_run_needs_model_for_module_formats(run: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"model=<the same wrapper"):
        export(out=tmp_path / "m.pt", checkpoint=ckpt(run), format="torch_model")
    assert not (tmp_path / "m.pt").exists()


def test_weights_that_do_not_fit_the_model_are_named(run: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="do not fit"):
        export(
            out=tmp_path / "m.pt",
            checkpoint=ckpt(run),
            format="torch_model",
            model=Tiny(channels=5),
        )


def test_a_named_run_rebuilds_its_model(named_run: Path, tmp_path: Path) -> None:
    out = export(
        out=tmp_path / "e.pt",
        checkpoint=ckpt(named_run),
        part="embedding_model",
        format="torch_model",
    )
    module = torch.load(out, weights_only=False)
    assert type(module.wrapper).__name__ == "TinyByPath"
    assert_same_state(module.state_dict(), method_state(named_run, "model."))
    assert module(torch.rand(2, 3, 32, 32)).shape == (2, 6)  # no embed_dim: feature_dim()


def test_an_exported_state_dict_works_as_checkpoint_for_part_model(
    run: Path, tmp_path: Path
) -> None:
    exported = run / "exported_models" / "exported_last.pt"
    expected = torch.load(exported, weights_only=True)
    out = export(out=tmp_path / "a.pt", checkpoint=exported, format="torch_state_dict")
    assert_same_state(torch.load(out, weights_only=True), expected)
    out = export(out=tmp_path / "b.pt", checkpoint=exported, format="torch_model", model=Tiny())
    assert_same_state(torch.load(out, weights_only=False).state_dict(), expected)
    with pytest.raises(ConfigError, match="model="):
        export(out=tmp_path / "c.pt", checkpoint=exported, format="torch_model")
    with pytest.raises(ConfigError, match="part='model' only"):
        export(out=tmp_path / "d.pt", checkpoint=exported, part="embedding_model")


def test_out_is_protected_unless_overwrite(run: Path, tmp_path: Path) -> None:
    out = tmp_path / "w.pt"
    out.write_bytes(b"keep me")
    with pytest.raises(ConfigError, match="overwrite=True"):
        export(out=out, checkpoint=ckpt(run))
    assert out.read_bytes() == b"keep me"
    export(out=out, checkpoint=ckpt(run), overwrite=True)
    assert isinstance(torch.load(out, weights_only=True), dict)
    with pytest.raises(ConfigError, match="is a folder"):
        export(out=tmp_path, checkpoint=ckpt(run), overwrite=True)
    with pytest.raises(ConfigError, match="checkpoint itself"):
        export(out=ckpt(run), checkpoint=ckpt(run), overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.pt"]  # no temporary file left


def test_bad_part_and_format_list_the_valid_values(run: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"Did you mean 'embedding_model'\?.*wrapped_model"):
        export(out=tmp_path / "w.pt", checkpoint=ckpt(run), part="embeding_model")
    with pytest.raises(ConfigError, match=r"Did you mean 'torch_model'\?.*onnx"):
        export(out=tmp_path / "w.pt", checkpoint=ckpt(run), format="torch_modle")
    with pytest.raises(ConfigError, match="part='embedding_model'"):
        export(out=tmp_path / "w.onnx", checkpoint=ckpt(run), part="wrapped_model", format="onnx")


def test_ultralytics_is_a_deprecated_alias_of_package_default(run: Path, tmp_path: Path) -> None:
    with pytest.warns(FutureWarning, match="package_default"):
        out = export(out=tmp_path / "w.pt", checkpoint=ckpt(run), format="ultralytics")
    assert_same_state(torch.load(out, weights_only=True), method_state(run, "model.wrapper.net."))


def test_missing_and_foreign_checkpoints_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        export(out=tmp_path / "w.pt", checkpoint=tmp_path / "missing.ckpt")
    torch.save({"epoch": 3, "notes": "x"}, tmp_path / "foreign.ckpt")
    with pytest.raises(ConfigError, match="neither a lightly-train checkpoint"):
        export(out=tmp_path / "w.pt", checkpoint=tmp_path / "foreign.ckpt")
    (tmp_path / "text.ckpt").write_text("not a checkpoint")
    with pytest.raises(ConfigError, match="Cannot load"):
        export(out=tmp_path / "w.pt", checkpoint=tmp_path / "text.ckpt")
    with pytest.raises(ConfigError, match="is a folder"):
        export(out=tmp_path / "w.pt", checkpoint=tmp_path)


def test_onnx_without_the_onnx_package_names_the_install_command(
    run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_export_onnx, "_available", lambda module: False)
    with pytest.raises(ImportError, match=r"pip install"):
        export(out=tmp_path / "m.onnx", checkpoint=ckpt(run), format="onnx", model=Tiny())
    assert not (tmp_path / "m.onnx").exists()


def _has(*modules: str) -> bool:
    return all(importlib.util.find_spec(m) is not None for m in modules)


@pytest.mark.skipif(not _has("onnx", "onnxruntime"), reason="needs onnx and onnxruntime")
@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
@pytest.mark.parametrize("part", ["model", "embedding_model"])
def test_onnx_matches_pytorch_with_a_dynamic_batch(
    run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, part: str, exporter: str
) -> None:
    import onnx
    import onnxruntime

    if exporter == "dynamo" and not _has("onnxscript"):
        pytest.skip("the dynamo exporter needs onnxscript")
    if exporter == "torchscript":
        monkeypatch.setattr(_export_onnx, "_available", lambda module: module != "onnxscript")
    out = export(
        out=tmp_path / "m.onnx", checkpoint=ckpt(run), part=part, format="onnx", model=Tiny()
    )
    proto = onnx.load(str(out))
    onnx.checker.check_model(proto)
    assert proto.opset_import[0].version == _export_onnx.ONNX_OPSET
    module = torch.load(
        export(
            out=tmp_path / "m.pt",
            checkpoint=ckpt(run),
            part=part,
            format="torch_model",
            model=Tiny(),
        ),
        weights_only=False,
    ).eval()
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    for batch in (1, 5):
        x = torch.randn(batch, 3, 32, 32)
        (actual,) = session.run(None, {"images": x.numpy()})
        with torch.no_grad():
            expected = module(x)
        torch.testing.assert_close(torch.from_numpy(actual), expected, atol=1e-4, rtol=1e-4)
