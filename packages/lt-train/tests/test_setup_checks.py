"""Checks that reject a bad run before anything is built or written: counts, the batch a
method can learn from, model_args, a checkpoint that does not fit."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from _tiny import Tiny, tiny_config, write_images

from lt_core import ConfigError
from lt_methods import get_method
from lt_train import get_model_wrapper
from lt_train._setup import _check_min_batch, plan_run


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"epochs": 0}, "epochs must be >= 1"),
        ({"loggers": {"jsonl": {"flush_logs_every_n_steps": 0}}}, "flush_logs_every_n_steps"),
        ({"callbacks": {"model_export": {"every_n_epochs": 0}}}, "every_n_epochs must be >= 1"),
    ],
)
def test_counts_must_be_at_least_one(tmp_path: Path, options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        tiny_config(tmp_path / "out", tmp_path, **options)


def test_simclr_batch_of_one_is_rejected_before_anything_is_written(tmp_path: Path) -> None:
    data = write_images(tmp_path / "data", 4)
    config = tiny_config(tmp_path / "out", data, batch_size=1, method="simclr")
    with pytest.raises(ConfigError, match=r"method='simclr' needs at least 2 images.*batch_size=1"):
        plan_run(config)
    assert not (tmp_path / "out").exists()
    plan_run(tiny_config(tmp_path / "out", data, batch_size=1, method="dino"))  # DINO learns


def test_min_batch_follows_whether_the_loss_gathers_over_processes() -> None:
    simclr, dino = get_method("simclr"), get_method("dino")
    assert simclr.min_batch_size == 2 and simclr.gathers_batch
    _check_min_batch(simclr, batch_size=2, world_size=2)  # 1 per process, gathered: 2
    with pytest.raises(ConfigError, match="batch_size=2 or more"):
        _check_min_batch(simclr, batch_size=1, world_size=1)
    _check_min_batch(dino, batch_size=1, world_size=1)


def test_min_batch_of_a_method_without_gather_counts_per_process() -> None:
    method = type("Local", (get_method("dino"),), {"min_batch_size": 2, "gathers_batch": False})
    with pytest.raises(ConfigError, match=r"1 per process \(batch_size=4 over 4 processes\)"):
        _check_min_batch(method, batch_size=4, world_size=4)


def test_unknown_torchvision_model_arg_names_the_accepted_ones() -> None:
    with pytest.raises(ConfigError) as info:
        get_model_wrapper("torchvision/resnet18", {"foo": 1})
    text = str(info.value)
    assert "model_args of model='torchvision/resnet18'" in text and "'foo'" in text
    assert "num_classes" in text and "zero_init_residual" in text  # ResNet.__init__'s
    with pytest.raises(ConfigError, match="Did you mean 'num_classes'"):
        get_model_wrapper("torchvision/resnet18", {"num_clases": 3})


def test_user_constructor_error_shows_the_users_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "fb_user_models.py").write_text(
        "from torch import nn\n"
        "class Wrapper(nn.Module):\n"
        "    def __init__(self, width=4):\n"
        "        super().__init__()\n"
        "        raise ValueError(f'width {width} is odd')\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError) as info:
        get_model_wrapper("fb_user_models:Wrapper", {"width": 3})
    text = str(info.value)
    assert "model='fb_user_models:Wrapper' could not be built" in text
    assert "ValueError: width 3 is odd" in text and "Accepted model_args: width" in text
    assert 'fb_user_models.py", line 5, in __init__' in text
    assert "_registry.py" not in text and "_args.py" not in text  # our frames are left out
    assert isinstance(info.value.__cause__, ValueError)  # the whole traceback is kept
    with pytest.raises(ConfigError, match="Did you mean 'width'"):
        get_model_wrapper("fb_user_models:Wrapper", {"widht": 3})
    sys.modules.pop("fb_user_models", None)


def test_shufflenet_is_a_named_model() -> None:
    from lt_core import validate_wrapper

    wrapper = get_model_wrapper("torchvision/shufflenet_v2_x0_5")
    validate_wrapper(wrapper, image_size=(32, 32))
    assert wrapper.feature_dim() == 1024


def test_checkpoint_that_does_not_fit_is_one_short_line(tmp_path: Path) -> None:
    from lt_train._build import _load_init_weights

    method_cls = get_method("simclr")
    from lt_core import EmbeddingModel

    method = method_cls(EmbeddingModel(Tiny(), pool=True))
    state = {f"layer{i}.weight": torch.zeros(1) for i in range(200)}
    with pytest.raises(ConfigError) as info:
        _load_init_weights(method, {"kind": "model", "state": state}, "x.pt")
    text = str(info.value)
    assert len(text) < 400 and "\n" not in text
    assert (
        "200 unexpected keys ('layer0.weight', 'layer1.weight', 'layer2.weight' and 197 more)"
        in text
    )
    other = {"model.x": torch.zeros(1)}
    with pytest.raises(ConfigError, match=r"\d+ of its \d+ model weights .* more; -v"):
        _load_init_weights(method, {"kind": "checkpoint", "state": other}, "x.ckpt")


def test_plain_torchvision_and_timm_models_are_wrapped() -> None:
    import torchvision

    from lt_train._models._timm import TimmWrapper
    from lt_train._models._torchvision import TorchvisionWrapper
    from lt_train._setup import resolve_model

    for build in (torchvision.models.resnet18, torchvision.models.shufflenet_v2_x0_5):
        model = build()
        wrapper = resolve_model(model)
        assert isinstance(wrapper, TorchvisionWrapper) and wrapper.get_model() is model
    timm = pytest.importorskip("timm")
    model = timm.create_model("resnet18", pretrained=False)
    wrapper = resolve_model(model)
    assert isinstance(wrapper, TimmWrapper) and wrapper.get_model() is model
    assert resolve_model(Tiny()).__class__ is Tiny  # a wrapper passes through


def test_unknown_plain_model_names_the_known_classes() -> None:
    from lt_core import WrapperTypeError
    from lt_train._setup import resolve_model

    with pytest.raises(WrapperTypeError, match=r"torch\.nn\.modules\.conv\.Conv2d.*ResNet.*timm"):
        resolve_model(torch.nn.Conv2d(3, 4, 3))


def test_run_of_a_plain_resnet_exports_its_weights(tmp_path: Path) -> None:
    import torchvision

    from lt_train import train

    model = torchvision.models.resnet18()
    data = write_images(tmp_path / "data", 8)
    out = train(tiny_config(tmp_path / "out", data, model=model))
    exported = torch.load(out / "exported_models" / "exported_last.pt", weights_only=True)
    assert exported.keys() == model.state_dict().keys()
    assert all(torch.equal(v, model.state_dict()[k].cpu()) for k, v in exported.items())


def test_auto_epochs_above_the_peers_100_are_said_at_the_start(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = write_images(tmp_path / "data", 16)
    with caplog.at_level("WARNING", logger="lt_train"):
        plan = plan_run(tiny_config(tmp_path / "out", data, epochs="auto"))
    assert plan.epochs == 1000
    assert "epochs='auto' runs 1000 epochs of 2 steps on 16 images" in caplog.text
    assert "lightly-train 0.18.0 runs 100" in caplog.text
