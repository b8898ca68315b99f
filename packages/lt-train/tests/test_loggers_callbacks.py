"""Loggers (jsonl, TensorBoard, offline MLflow and W&B) and callbacks, on tiny runs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from _tiny import tiny_config, write_images

from lt_core import ConfigError
from lt_train import train
from lt_train._callbacks import RunCallbacks
from lt_train._run_args import CallbackArgs, EarlyStoppingArgs
from lt_train._setup import auto_epochs


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_images(tmp_path_factory.mktemp("images"), 32)


def _train(out: Path, data: Path, **options: object) -> Path:
    return train(tiny_config(out, data, **{"log_every_n_steps": 1, **options}))


def _metrics(out: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


def test_logger_dict_turns_loggers_off_and_on(data: Path, tmp_path: Path) -> None:
    out = _train(tmp_path / "a", data, loggers={"tensorboard": None})
    assert (out / "metrics.jsonl").is_file() and not (out / "tensorboard").exists()
    out = _train(tmp_path / "b", data, loggers={"jsonl": None, "tensorboard": {"name": "tb"}})
    assert not (out / "metrics.jsonl").exists()
    assert list((out / "tb").rglob("events.out.tfevents.*"))
    out = _train(tmp_path / "c", data, loggers=["jsonl"])  # our list form
    assert (out / "metrics.jsonl").is_file() and not (out / "tensorboard").exists()


def test_mlflow_file_store(data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 prefers a database

    uri = (tmp_path / "mlruns").as_uri()
    mlflow = {"experiment_name": "exp", "run_name": "run1", "tracking_uri": uri, "log_model": True}
    _train(tmp_path / "out", data, loggers={"mlflow": mlflow})
    client = MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name("exp").experiment_id])
    assert run.info.run_name == "run1" and run.info.status == "FINISHED"
    assert len(client.get_metric_history(run.info.run_id, "loss")) == 4  # 32 images / 8
    assert run.data.params["batch_size"] == "8"
    assert [a.path for a in client.list_artifacts(run.info.run_id, "model")] == [
        "model/exported_last.pt"
    ]


def test_wandb_offline(data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    out = _train(
        tmp_path / "out",
        data,
        loggers={"wandb": {"offline": True, "project": "p", "name": "n", "prefix": "train/"}},
    )
    runs = list((out / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    assert any(runs[0].glob("*.wandb"))  # the offline run file, ready for `wandb sync`


def test_missing_logger_package_names_the_install_command(
    data: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "wandb" else real(name, *a)
    )
    with pytest.raises(ImportError, match=r'pip install "lightly-train\[wandb\]"'):
        _train(tmp_path / "out", data, loggers={"wandb": {}})
    assert not (tmp_path / "out").exists()


def test_checkpoint_callback_dirpath_keep_and_filename(data: Path, tmp_path: Path) -> None:
    ckpts = tmp_path / "my_ckpts"
    _train(
        tmp_path / "out",
        data,
        epochs=2,
        callbacks={
            "model_checkpoint": {
                "dirpath": str(ckpts),
                "every_n_train_steps": 3,
                "save_top_k": 2,
                "filename": "e{epoch}-s{step}",
            },
            "learning_rate_monitor": None,
            "device_stats_monitor": {},
        },
    )
    # Checkpoints at steps 3, 4 (epoch end), 6, 8 (epoch end): the newest 2 are kept.
    names = sorted(p.name for p in ckpts.iterdir())
    assert names == ["e1-s6.ckpt", "e2-s8.ckpt", "last.ckpt"]
    records = [r for r in _metrics(tmp_path / "out") if "loss" in r]
    assert all("lr" not in r and "device/host_max_rss_mb" in r for r in records)


def test_seed_fixes_named_model_weights(tmp_path: Path, data: Path) -> None:
    exports = []
    for name in ("a", "b"):
        out = _train(tmp_path / name, data, model="torchvision/resnet18", seed=7, epochs=1)
        assert (out / "checkpoints" / "last.ckpt").is_file()
        exports.append(torch.load(out / "exported_models" / "exported_last.pt", weights_only=True))
    assert all(torch.equal(exports[0][k], exports[1][k]) for k in exports[0])


def test_import_path_model_with_model_args(
    tmp_path: Path, data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "my_models.py").write_text(
        "from torch import nn\n"
        "class Wrapper(nn.Module):\n"
        "    def __init__(self, width):\n"
        "        super().__init__()\n"
        "        self.net = nn.Conv2d(3, width, 3)\n"
        "    def get_model(self):\n"
        "        return self.net\n"
        "    def forward_features(self, x):\n"
        "        return {'features': self.net(x)}\n"
        "    def forward_pool(self, f):\n"
        "        return {'pooled_features': f['features'].mean((2, 3), keepdim=True)}\n"
        "    def feature_dim(self):\n"
        "        return self.net.out_channels\n"
    )
    monkeypatch.chdir(tmp_path)
    out = _train(tmp_path / "out", data, model="my_models:Wrapper", model_args={"width": 5})
    state = torch.load(out / "exported_models" / "exported_last.pt", weights_only=True)
    assert state["weight"].shape == (5, 3, 3, 3)
    with pytest.raises(ConfigError, match=r"has no 'Wraper'.*Did you mean 'Wrapper'"):
        _train(tmp_path / "o2", data, model="my_models:Wraper")
    with pytest.raises(ConfigError, match="Cannot import 'nope'"):
        _train(tmp_path / "o3", data, model="nope:Wrapper")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"loader_args": {"shuffle": False}}, "loader_args cannot set shuffle"),
        ({"callbacks": {"model_checkpoint": None}}, "cannot be None"),
        ({"callbacks": {"early_stoping": {}}}, "Did you mean 'early_stopping'"),
        ({"loggers": {"tensorbord": None}}, "Did you mean 'tensorboard'"),
        ({"strategy": "dp"}, "Unknown strategy"),
    ],
)
def test_bad_options_fail_before_work(
    options: dict[str, object], message: str, data: Path, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match=message):
        _train(tmp_path / "out", data, **options)
    assert not (tmp_path / "out").exists()


def test_loader_args_reach_the_data_loader(data: Path, tmp_path: Path) -> None:
    _train(tmp_path / "out", data, num_workers=1, loader_args={"prefetch_factor": 3, "timeout": 60})


def test_early_stopping_counts_epochs_without_improvement() -> None:
    callbacks = RunCallbacks(CallbackArgs(early_stopping=EarlyStoppingArgs(patience=2)), 10)
    assert [callbacks.early_stop(x) for x in (3.0, 2.0, 2.5)] == [None, None, None]
    assert "did not improve on 2.0000" in (callbacks.early_stop(2.1) or "")


def test_epochs_auto_aims_at_50k_steps_within_bounds() -> None:
    assert auto_epochs(1_281_167 // 256) == 100  # ImageNet: 5,004 steps an epoch
    assert auto_epochs(50_000 // 512) == 516  # CIFAR-10: 97 steps an epoch
    assert auto_epochs(300 // 64) == 1000
    assert auto_epochs(0) == 1000


def test_verbose_env_sets_debug_level(monkeypatch: pytest.MonkeyPatch) -> None:
    import logging

    from lt_train._logs import RunLog

    monkeypatch.setenv("LIGHTLY_TRAIN_LOG_LEVEL", "DEBUG")
    log = RunLog(console=False)
    assert logging.getLogger("lt_train").level == logging.DEBUG
    log.close()
    assert os.environ["LIGHTLY_TRAIN_LOG_LEVEL"] == "DEBUG"
