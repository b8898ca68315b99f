"""Metric writers of a run (process 0 only): metrics.jsonl, TensorBoard, MLflow, W&B."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

from lt_core import ConfigError
from lt_train._run_args import (
    JsonlLoggerArgs,
    LoggerArgs,
    MLFlowLoggerArgs,
    TensorBoardLoggerArgs,
    WandbLoggerArgs,
)

logger = logging.getLogger(__name__)

__all__ = ["MetricLoggers", "check_logger_packages", "check_mlflow_uri", "mlflow_tracking_uri"]

_EXTRAS = {"mlflow": ("mlflow", "mlflow"), "wandb": ("wandb", "wandb")}


def check_logger_packages(args: LoggerArgs) -> None:
    """Fail before any work if an enabled logger's package is missing."""
    for name, (module, extra) in _EXTRAS.items():
        if getattr(args, name) is not None and importlib.util.find_spec(module) is None:
            raise ImportError(
                f"loggers.{name} needs the {module} package, which is not installed. Fix: "
                f'pip install "lightly-train[{extra}]"'
            )
    if args.mlflow is not None:
        check_mlflow_uri(mlflow_tracking_uri(args.mlflow))


# MLflow's stores by URI scheme: SQLAlchemy databases need the full mlflow package
# (lightly-train[mlflow] installs mlflow-skinny, without sqlalchemy and alembic).
_SQL_SCHEMES = ("sqlite", "postgresql", "mysql", "mssql")
_SERVER_SCHEMES = ("http", "https", "databricks", "databricks-uc", "uc")
_URI_FORMS = (
    "a folder ('mlruns', 'file:///abs/path/mlruns'), a database ('sqlite:///mlflow.db', "
    "needs the full mlflow package: pip install mlflow), a tracking server "
    "('http://host:5000') or 'databricks'"
)


def mlflow_tracking_uri(args: MLFlowLoggerArgs) -> str:
    """``tracking_uri``, else ``$MLFLOW_TRACKING_URI``, else the folder ``./mlruns``."""
    return args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or "file:./mlruns"


def check_mlflow_uri(uri: str) -> None:
    """Fail in one line, before the out folder is touched, on a tracking URI whose store
    cannot work here. A folder (a plain path or ``file:``) is allowed although MLflow 3
    put its file store in maintenance mode (``MLFLOW_ALLOW_FILE_STORE`` is set for it)."""
    scheme = urlparse(uri).scheme.lower()
    base = scheme.split("+")[0]
    if scheme in ("", "file") or len(scheme) == 1:  # a path; "c:" is a Windows drive
        os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        return
    if base in _SQL_SCHEMES:
        missing = [m for m in ("sqlalchemy", "alembic") if importlib.util.find_spec(m) is None]
        if missing:
            raise ConfigError(
                f"loggers.mlflow.tracking_uri='{uri}' is a database, which MLflow stores "
                f"with {' and '.join(missing)}, not installed (lightly-train[mlflow] installs "
                "mlflow-skinny). Fix: pip install mlflow, or use a folder "
                "(tracking_uri='mlruns') or a tracking server ('http://host:5000')."
            )
        return
    if base not in _SERVER_SCHEMES:
        raise ConfigError(
            f"loggers.mlflow.tracking_uri='{uri}' has the scheme '{scheme}', which MLflow "
            f"does not store runs in. Valid: {_URI_FORMS}."
        )


class _Writer(Protocol):
    def log(self, metrics: dict[str, float], step: int) -> None: ...
    def close(self, status: str, model_path: Path | None) -> None: ...


class _Jsonl:
    def __init__(self, path: Path, args: JsonlLoggerArgs) -> None:
        self._file = path.open("a", encoding="utf-8")
        self._every = max(1, args.flush_logs_every_n_steps)
        self._rows = 0

    def log(self, metrics: dict[str, float], step: int) -> None:
        self._file.write(json.dumps({"step": step, **metrics}) + "\n")
        self._rows += 1
        if self._rows % self._every == 0:
            self._file.flush()

    def write(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()

    def close(self, status: str, model_path: Path | None) -> None:
        self._file.close()


class _TensorBoard:
    """TensorBoard events through lightning-fabric's logger. Importing TensorBoard takes
    about half a second, so the writer is created on a background thread while the first
    steps run; the first ``log`` waits for it."""

    def __init__(self, out: Path, args: TensorBoardLoggerArgs, hparams: dict[str, Any]) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lt-tensorboard")
        self._future = self._pool.submit(self._create, out, args, _flat(hparams))

    @staticmethod
    def _create(out: Path, args: TensorBoardLoggerArgs, hparams: dict[str, Any]) -> Any:
        from lightning_fabric.loggers import TensorBoardLogger

        tb = TensorBoardLogger(
            root_dir=out,
            name=args.name,
            version=args.version,
            default_hp_metric=args.default_hp_metric,
            prefix=args.prefix,
            sub_dir=args.sub_dir,
        )
        tb.log_hyperparams(hparams)
        return tb

    def log(self, metrics: dict[str, float], step: int) -> None:
        self._future.result().log_metrics(metrics, step=step)

    def close(self, status: str, model_path: Path | None) -> None:
        try:
            self._future.result().finalize(status)
        finally:
            self._pool.shutdown()


class _MLflow:
    def __init__(self, out: Path, args: MLFlowLoggerArgs, hparams: dict[str, Any]) -> None:
        self._args = args
        uri = mlflow_tracking_uri(args)
        check_mlflow_uri(uri)
        try:
            self._start(uri, hparams)
        except Exception as e:  # one line, not MLflow's traceback
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            raise ConfigError(
                f"MLflow could not start a run at tracking_uri='{uri}': {type(e).__name__}: "
                f"{first[:300]} Valid tracking URIs: {_URI_FORMS}."
            ) from e
        logger.info("Logging to MLflow run %s (%s).", self._run_id, uri)

    def _start(self, uri: str, hparams: dict[str, Any]) -> None:
        from mlflow.tracking import MlflowClient

        args = self._args
        self._client = MlflowClient(tracking_uri=uri)
        if args.run_id is not None:
            self._run_id = args.run_id
        else:
            experiment = self._client.get_experiment_by_name(args.experiment_name)
            experiment_id = (
                experiment.experiment_id
                if experiment is not None
                else self._client.create_experiment(
                    args.experiment_name, artifact_location=args.artifact_location
                )
            )
            tags = {k: str(v) for k, v in (args.tags or {}).items()}
            run = self._client.create_run(experiment_id, run_name=args.run_name, tags=tags)
            self._run_id = run.info.run_id
            from mlflow.entities import Param

            params = [Param(k, str(v)[:500]) for k, v in _flat(hparams).items()]
            for i in range(0, len(params), 100):
                self._client.log_batch(self._run_id, params=params[i : i + 100])

    def log(self, metrics: dict[str, float], step: int) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(self._args.prefix + k, v, now, step) for k, v in metrics.items()]
        self._client.log_batch(self._run_id, metrics=batch)

    def close(self, status: str, model_path: Path | None) -> None:
        if self._args.log_model and model_path is not None and model_path.is_file():
            self._client.log_artifact(self._run_id, str(model_path), "model")
        state = {"success": "FINISHED", "interrupted": "KILLED"}.get(status, "FAILED")
        self._client.set_terminated(self._run_id, status=state)


class _Wandb:
    def __init__(self, out: Path, args: WandbLoggerArgs, hparams: dict[str, Any]) -> None:
        import wandb

        self._args = args
        self._run = wandb.init(
            project=args.project,
            name=args.name,
            id=args.version,
            dir=str(out),
            mode="offline" if args.offline else None,
            anonymous="allow" if args.anonymous else None,
            config=hparams,
            resume="allow" if args.version else None,
            reinit=True,
        )

    def log(self, metrics: dict[str, float], step: int) -> None:
        self._run.log({self._args.prefix + k: v for k, v in metrics.items()}, step=step)

    def close(self, status: str, model_path: Path | None) -> None:
        if self._args.log_model and model_path is not None and model_path.is_file():
            import wandb

            artifact = wandb.Artifact(
                self._args.checkpoint_name or f"model-{self._run.id}", "model"
            )
            artifact.add_file(str(model_path))
            self._run.log_artifact(artifact)
        self._run.finish(exit_code=0 if status == "success" else 1)


class MetricLoggers:
    """The enabled writers; every call goes to each of them."""

    def __init__(
        self,
        args: LoggerArgs,
        out: Path,
        metrics_path: Path,
        hparams: dict[str, Any],
        started: list[_Writer] | None = None,
    ):
        """``started``: the writers of :meth:`start_remote`, started before the out folder
        was touched."""
        self.jsonl = _Jsonl(metrics_path, args.jsonl) if args.jsonl is not None else None
        writers: list[_Writer] = [self.jsonl] if self.jsonl is not None else []
        if args.tensorboard is not None:
            writers.append(_TensorBoard(out, args.tensorboard, hparams))
        writers += started if started is not None else self.start_remote(args, out, hparams)
        if args.wandb is not None:
            writers.append(_Wandb(out, args.wandb, hparams))
        self._writers = writers

    @staticmethod
    def start_remote(args: LoggerArgs, out: Path, hparams: dict[str, Any]) -> list[_Writer]:
        """Start the loggers that write nothing into the out folder (MLflow), so that one
        that cannot start (an unreachable server, a store that refuses) fails the run
        before the out folder is touched."""
        return [_MLflow(out, args.mlflow, hparams)] if args.mlflow is not None else []

    def log(self, metrics: dict[str, float], step: int) -> None:
        for writer in self._writers:
            writer.log(metrics, step)

    def close(self, status: str, model_path: Path | None = None) -> None:
        for writer in self._writers:
            try:
                writer.close(status, model_path)
            except Exception as e:  # a logger's service failing must not fail the run
                logger.warning("Closing the %s logger failed: %s", type(writer).__name__, e)
        self._writers = []


def _flat(values: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``, lists and None as strings."""
    flat: dict[str, Any] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flat(value, f"{name}."))
        elif isinstance(value, int | float | str | bool):
            flat[name] = value
        else:
            flat[name] = str(value)
    return flat
