"""The ``loggers`` and ``callbacks`` options: dicts of name -> options (or ``None`` to turn
one off), with lightly-train 0.18.0's names and meanings. Its names that would do nothing
here (``model_checkpoint.mode``, ``tensorboard.log_graph``...) are not fields: the facade
(``lightly_train._peer``) drops or rejects them before these dataclasses are built."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

from lt_core import ConfigError

__all__ = [
    "CallbackArgs",
    "EarlyStoppingArgs",
    "JsonlLoggerArgs",
    "LoggerArgs",
    "MLFlowLoggerArgs",
    "ModelCheckpointArgs",
    "ModelExportArgs",
    "TensorBoardLoggerArgs",
    "WandbLoggerArgs",
]


@dataclass(kw_only=True)
class JsonlLoggerArgs:
    """``metrics.jsonl``: one JSON object per logged step.

    Attributes:
        flush_logs_every_n_steps: Flush the file every this many rows; 1 (the default)
            writes each row through at once, so a killed run loses none.
    """

    flush_logs_every_n_steps: int = 1

    def __post_init__(self) -> None:
        if self.flush_logs_every_n_steps < 1:
            raise ConfigError(
                "loggers.jsonl.flush_logs_every_n_steps must be >= 1, got "
                f"{self.flush_logs_every_n_steps}."
            )


@dataclass(kw_only=True)
class TensorBoardLoggerArgs:
    """TensorBoard event files under ``<out>/<name>/<version>``."""

    name: str = "tensorboard"
    version: str = ""
    default_hp_metric: bool = True
    prefix: str = ""
    sub_dir: str | None = None


@dataclass(kw_only=True)
class MLFlowLoggerArgs:
    """An MLflow run (``pip install "lightly-train[mlflow]"``)."""

    experiment_name: str = "lightly-train"
    run_name: str | None = None
    tracking_uri: str | None = None
    tags: dict[str, Any] | None = None
    log_model: bool | str = False
    prefix: str = ""
    artifact_location: str | None = None
    run_id: str | None = None


@dataclass(kw_only=True)
class WandbLoggerArgs:
    """A Weights & Biases run (``pip install "lightly-train[wandb]"``)."""

    name: str | None = None
    version: str | None = None
    offline: bool = False
    anonymous: bool | None = None
    project: str | None = None
    log_model: bool | str = False
    prefix: str = ""
    checkpoint_name: str | None = None


@dataclass(kw_only=True)
class LoggerArgs:
    """Which metric writers run; ``None`` turns one off. jsonl and TensorBoard are on by
    default, MLflow and W&B when given options (``{"wandb": {"project": "x"}}``)."""

    jsonl: JsonlLoggerArgs | None = field(default_factory=JsonlLoggerArgs)
    tensorboard: TensorBoardLoggerArgs | None = field(default_factory=TensorBoardLoggerArgs)
    mlflow: MLFlowLoggerArgs | None = None
    wandb: WandbLoggerArgs | None = None

    @classmethod
    def from_names(cls, names: list[str]) -> LoggerArgs:
        """Our list form: ``["jsonl", "tensorboard"]`` enables exactly these."""
        valid = ("jsonl", "tensorboard", "mlflow", "wandb")
        unknown = [n for n in names if n not in valid]
        if unknown:
            raise ConfigError(f"Unknown logger(s) {unknown}; valid loggers: {', '.join(valid)}.")
        return cls(
            jsonl=JsonlLoggerArgs() if "jsonl" in names else None,
            tensorboard=TensorBoardLoggerArgs() if "tensorboard" in names else None,
            mlflow=MLFlowLoggerArgs() if "mlflow" in names else None,
            wandb=WandbLoggerArgs() if "wandb" in names else None,
        )


@dataclass(kw_only=True)
class ModelCheckpointArgs:
    """When and where checkpoints are written (``checkpoints/last.ckpt`` always).

    Attributes:
        dirpath: Folder of the checkpoints; default ``<out>/checkpoints``.
        filename: Name of the kept checkpoints (``save_top_k > 1``), a format string of
            ``epoch`` and ``step``; default ``"epoch={epoch}-step={step}"``.
        every_n_train_steps: Also write one every this many steps (our default 1000).
        every_n_epochs: Write one at the end of every this many epochs (default 1).
        train_time_interval: Also write one when this much time (a ``timedelta`` or
            seconds) passed since the last.
        save_top_k: How many checkpoints to keep, the newest; ``-1`` keeps all.
        save_weights_only: Leave out the optimizer and training state (smaller files that
            cannot be resumed, only used with ``checkpoint=``).
        verbose: Log every checkpoint written.
    """

    dirpath: str | None = None
    filename: str | None = None
    every_n_train_steps: int | None = 1000
    every_n_epochs: int | None = 1
    train_time_interval: Any = None
    save_top_k: int = 1
    save_weights_only: bool = False
    verbose: bool = False

    def __post_init__(self) -> None:
        for name in ("every_n_train_steps", "every_n_epochs"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"callbacks.model_checkpoint.{name} must be >= 1 or None.")
        if self.save_top_k == 0 or self.save_top_k < -1:
            raise ConfigError("callbacks.model_checkpoint.save_top_k must be >= 1 or -1 (all).")
        # Kept as seconds, so that config.json can hold it.
        if isinstance(self.train_time_interval, datetime.timedelta):
            self.train_time_interval = self.train_time_interval.total_seconds()
        interval = self.train_time_interval
        if interval is not None and (
            isinstance(interval, bool) or not isinstance(interval, int | float) or interval <= 0
        ):
            raise ConfigError(
                "callbacks.model_checkpoint.train_time_interval must be a datetime.timedelta "
                f"or seconds > 0, got {interval!r}."
            )


@dataclass(kw_only=True)
class EarlyStoppingArgs:
    """Stop when the epoch's mean training loss has not improved for ``patience`` epochs;
    with ``check_finite`` stop at once on a NaN or infinite loss; with
    ``stop_on_collapse`` stop right after the health monitors flag a collapse of the
    embeddings (``monitor_args.collapse``; the peer's spelling ``monitor="collapse"``
    sets it)."""

    patience: int = 10**12
    check_finite: bool = True
    stop_on_collapse: bool = False

    def __post_init__(self) -> None:
        if self.patience < 1:
            raise ConfigError("callbacks.early_stopping.patience must be >= 1.")


@dataclass(kw_only=True)
class ModelExportArgs:
    """Write ``exported_models/exported_last.pt`` every ``every_n_epochs`` epochs (and at
    the end)."""

    every_n_epochs: int = 1

    def __post_init__(self) -> None:
        if self.every_n_epochs < 1:
            raise ConfigError(
                f"callbacks.model_export.every_n_epochs must be >= 1, got {self.every_n_epochs}."
            )


@dataclass(kw_only=True)
class CallbackArgs:
    """Callbacks of a run; ``None`` turns one off."""

    learning_rate_monitor: dict[str, Any] | None = field(default_factory=dict)
    device_stats_monitor: dict[str, Any] | None = None
    early_stopping: EarlyStoppingArgs | None = field(default_factory=EarlyStoppingArgs)
    model_export: ModelExportArgs | None = field(default_factory=ModelExportArgs)
    model_checkpoint: ModelCheckpointArgs | None = field(default_factory=ModelCheckpointArgs)

    def __post_init__(self) -> None:
        for name in ("learning_rate_monitor", "device_stats_monitor"):
            if getattr(self, name):
                raise ConfigError(f"callbacks.{name} takes no options; pass {{}} or None.")
        if self.model_checkpoint is None:
            raise ConfigError(
                "callbacks.model_checkpoint cannot be None: runs always write "
                "checkpoints/last.ckpt so that they can be resumed. Fix: set "
                "model_checkpoint.every_n_train_steps=None to checkpoint at epoch ends only."
            )
