"""MLflow tracking URIs: every form either starts a run or fails in one line, checked
before the out folder is touched."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from lt_core import ConfigError
from lt_train._loggers import _MLflow, check_mlflow_uri, mlflow_tracking_uri
from lt_train._run_args import MLFlowLoggerArgs

pytest.importorskip("mlflow")
_HAS_SQL = all(importlib.util.find_spec(m) for m in ("sqlalchemy", "alembic"))


@pytest.mark.parametrize(
    "uri", ["tracking_uri", "mlruns", "./mlruns", "file:./mlruns", "file:///tmp/x/mlruns"]
)
def test_folder_uris_start_a_run(uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    if uri.startswith("file:///"):
        uri = (tmp_path / "abs").as_uri()
    writer = _MLflow(tmp_path, MLFlowLoggerArgs(tracking_uri=uri), {"epochs": 1})
    writer.log({"loss": 1.0}, step=1)
    writer.close("success", None)


def test_default_uri_is_the_mlruns_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert mlflow_tracking_uri(MLFlowLoggerArgs()) == "file:./mlruns"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://server:5000")
    assert mlflow_tracking_uri(MLFlowLoggerArgs()) == "http://server:5000"


@pytest.mark.skipif(_HAS_SQL, reason="the full mlflow package can store in a database")
def test_database_uri_without_sqlalchemy_is_one_line() -> None:
    with pytest.raises(
        ConfigError, match=r"'sqlite:///mlflow.db' is a database.*pip install mlflow"
    ):
        check_mlflow_uri("sqlite:///mlflow.db")


def test_unknown_scheme_and_server_uris() -> None:
    with pytest.raises(ConfigError, match=r"scheme 'ftp'.*Valid: a folder"):
        check_mlflow_uri("ftp://host/x")
    for uri in ("http://localhost:5000", "https://x.example", "databricks"):
        check_mlflow_uri(uri)  # a server is reached when the run starts


def test_bad_uri_fails_in_plan_run_before_the_out_folder(tmp_path: Path) -> None:
    from _tiny import tiny_config, write_images

    from lt_train._setup import plan_run

    data = write_images(tmp_path / "data", 8)
    config = tiny_config(tmp_path / "out", data, loggers={"mlflow": {"tracking_uri": "ftp://x"}})
    with pytest.raises(ConfigError, match="scheme 'ftp'"):
        plan_run(config)
    assert not (tmp_path / "out").exists()


def test_a_server_that_cannot_start_a_run_fails_before_the_out_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unreachable tracking server is found when the MLflow run starts: before the out
    folder is touched, so an earlier run in it stays as it was, even with overwrite=True."""
    from _tiny import tiny_config, write_images

    from lt_train import _loggers, train

    data = write_images(tmp_path / "data", 8)
    out = tmp_path / "out"
    train(tiny_config(out, data))
    before = {p.relative_to(out): p.stat().st_mtime_ns for p in out.rglob("*")}

    def unreachable(self: object, uri: str, hparams: object) -> None:
        raise ConnectionError("Failed to establish a new connection: [Errno 111] refused")

    monkeypatch.setattr(_loggers._MLflow, "_start", unreachable)
    config = tiny_config(
        out, data, overwrite=True, loggers={"mlflow": {"tracking_uri": "http://127.0.0.1:9"}}
    )
    with pytest.raises(ConfigError, match=r"MLflow could not start a run .*ConnectionError"):
        train(config)
    assert {p.relative_to(out): p.stat().st_mtime_ns for p in out.rglob("*")} == before
