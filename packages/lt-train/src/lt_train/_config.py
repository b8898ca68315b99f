"""The training configuration: every option of ``train()``, checked before any work."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Literal

from lt_core import ConfigError, closest_match_hint
from lt_methods import OPTIMIZER_NAMES
from lt_train._monitor._args import MonitorArgs, ValArgs
from lt_train._run_args import CallbackArgs, LoggerArgs

__all__ = ["OptimArgs", "TrainConfig"]

_DDP_UNUSED = ("ddp_find_unused_parameters_true", "ddp_find_unused_parameters_false")
# DataLoader arguments the trainer owns (loader_args cannot set them).
_LOADER_OWNED = frozenset(
    {
        "dataset",
        "sampler",
        "batch_sampler",
        "shuffle",
        "collate_fn",
        "generator",
        "worker_init_fn",
        "batch_size",
        "num_workers",
        "drop_last",
    }
)
Precision = Literal["auto", "32-true", "bf16-mixed", "16-mixed"]


@dataclass(kw_only=True)
class OptimArgs:
    """Optimizer and schedule options (``optim_args``).

    Attributes:
        lr: Learning rate for ``method_args.reference_batch_size`` images (256 by
            default); the trainer scales it to the effective batch (``batch_size *
            gradient_accumulation_steps``) by ``method_args.lr_scale_method`` (linearly by
            default). ``None`` takes the method's default.
        weight_decay: Weight decay of weights (biases and norm parameters get none).
            ``None`` takes the method's default.
        momentum: Momentum of SGD and LARS.
        betas: Adam betas of AdamW.
        warmup_epochs: Epochs of linear learning-rate warm-up from 0. ``None`` takes
            ``min(10, 10% of the run)``.
        min_lr_ratio: Final learning rate of the cosine decay, relative to the peak.
        gradient_clip_norm: Clip the global gradient norm to this value; ``None`` does not
            clip.
        trust_coefficient: LARS only: the trust coefficient eta, which sets each layer's
            update to about ``lr * eta`` times the norm of its weights. The default 0.02
            is the value of solo-learn's CIFAR recipes for batches of a few hundred;
            LARS's paper and lightly use 0.001, sized for batches in the thousands, which
            barely moves the weights at smaller batches.
    """

    lr: float | None = None
    weight_decay: float | None = None
    momentum: float = 0.9
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_epochs: float | None = None
    min_lr_ratio: float = 0.0
    gradient_clip_norm: float | None = None
    trust_coefficient: float = 0.02

    def __post_init__(self) -> None:
        if self.lr is not None and self.lr <= 0:
            raise ConfigError(f"optim_args.lr must be > 0, got {self.lr}.")
        if self.weight_decay is not None and self.weight_decay < 0:
            raise ConfigError(f"optim_args.weight_decay must be >= 0, got {self.weight_decay}.")
        if self.warmup_epochs is not None and self.warmup_epochs < 0:
            raise ConfigError(f"optim_args.warmup_epochs must be >= 0, got {self.warmup_epochs}.")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise ConfigError(
                f"optim_args.min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}."
            )
        if self.trust_coefficient <= 0:
            raise ConfigError(
                f"optim_args.trust_coefficient must be > 0, got {self.trust_coefficient}."
            )
        if self.gradient_clip_norm is not None and self.gradient_clip_norm <= 0:
            raise ConfigError(
                f"optim_args.gradient_clip_norm must be > 0 or None, got {self.gradient_clip_norm}."
            )


@dataclass(kw_only=True)
class TrainConfig:
    """All options of a pretraining run. See ``lightly_train.train`` for each one.

    ``model`` is a model wrapper (an ``nn.Module`` with the four wrapper methods) or a model
    name such as ``"torchvision/resnet18"``. ``method_args`` and ``transform_args`` are
    dicts checked against the chosen method's option dataclasses. After construction
    ``loggers`` is a :class:`LoggerArgs` and ``callbacks`` a :class:`CallbackArgs`, whatever
    form they were given in.
    """

    out: str
    data: str | list[str]
    model: Any
    method: str | None = None
    method_args: dict[str, Any] = field(default_factory=dict)
    embed_dim: int | None = None
    epochs: int | Literal["auto"] = "auto"
    batch_size: int = 128
    num_workers: int | Literal["auto"] = "auto"
    accelerator: Literal["auto", "cpu", "cuda", "gpu", "mps"] = "auto"
    devices: int | list[int] | str = "auto"
    num_nodes: int = 1
    strategy: str = "auto"
    precision: Precision = "auto"
    float32_matmul_precision: Literal["auto", "highest", "high", "medium"] = "auto"
    seed: int = 0
    optim: str = "auto"
    optim_args: OptimArgs = field(default_factory=OptimArgs)
    transform_args: dict[str, Any] = field(default_factory=dict)
    loader_args: dict[str, Any] | None = None
    model_args: dict[str, Any] | None = None
    loggers: LoggerArgs | list[str] | None = None
    callbacks: CallbackArgs | None = None
    log_every_n_steps: int = 10
    channels_last: bool = True
    compile: bool = False
    overwrite: bool = False
    progress_bar: bool = True
    gradient_accumulation_steps: int = 1
    epoch_size: int | None = None
    shuffle_buffer: int = 1000
    data_cache: Literal["auto", "none", "ram", "device"] = "auto"
    decode: Literal["auto", "cpu", "gpu"] = "auto"
    decode_size: int | Literal["auto"] = "auto"
    checkpoint_every_n_steps: int | None = None
    checkpoint_keep: int | None = None
    resume_interrupted: bool = False
    checkpoint: str | None = None
    monitor_every_n_steps: int | Literal["auto"] = "auto"
    monitor_args: MonitorArgs = field(default_factory=MonitorArgs)
    val_data: str | None = None
    val_args: ValArgs = field(default_factory=ValArgs)
    val_every_n_epochs: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.out, os.PathLike):
            self.out = os.fspath(self.out)
        if isinstance(self.val_data, os.PathLike):
            self.val_data = os.fspath(self.val_data)
        if isinstance(self.checkpoint, os.PathLike):
            self.checkpoint = os.fspath(self.checkpoint)
        if self.epochs != "auto" and self.epochs < 1:
            raise ConfigError(
                f"epochs must be >= 1 or 'auto', got {self.epochs}: a run of 0 epochs would "
                "export the untrained weights as if pretrained. Fix: epochs=1 or more."
            )
        for name in (
            "batch_size",
            "num_nodes",
            "log_every_n_steps",
            "gradient_accumulation_steps",
            "val_every_n_epochs",
        ):
            value = getattr(self, name)
            if value < 1:
                raise ConfigError(f"{name} must be >= 1, got {value}.")
        self._resolve_aliases()
        self._check_loader_args()
        if isinstance(self.num_workers, int) and self.num_workers < 0:
            raise ConfigError(f"num_workers must be >= 0 or 'auto', got {self.num_workers}.")
        if isinstance(self.devices, int) and self.devices < 1:
            raise ConfigError(f"devices must be >= 1 or 'auto', got {self.devices}.")
        if self.embed_dim is not None and self.embed_dim < 1:
            raise ConfigError(f"embed_dim must be None or >= 1, got {self.embed_dim}.")
        if self.epoch_size is not None and self.epoch_size < 1:
            raise ConfigError(f"epoch_size must be >= 1 or None, got {self.epoch_size}.")
        if self.shuffle_buffer < 0:
            raise ConfigError(
                f"shuffle_buffer must be >= 0 (0 keeps the shard order), got {self.shuffle_buffer}."
            )
        if isinstance(self.monitor_every_n_steps, int) and self.monitor_every_n_steps < 1:
            raise ConfigError(
                f"monitor_every_n_steps must be >= 1 or 'auto', got {self.monitor_every_n_steps}. "
                "Fix: to turn the monitors off, pass monitor_args={'enabled': False}."
            )
        if self.val_data is not None and not os.path.exists(self.val_data):
            raise ConfigError(
                f"val_data '{self.val_data}' does not exist. Fix: pass a folder with one "
                "subfolder of images per class, or a CSV file of path,label rows, or leave "
                "val_data unset."
            )
        if isinstance(self.decode_size, int) and self.decode_size < 1:
            raise ConfigError(f"decode_size must be >= 1 or 'auto', got {self.decode_size}.")
        optims = ("auto", *OPTIMIZER_NAMES)
        if self.optim not in optims:
            raise ConfigError(
                f"Unknown optim '{self.optim}'.{closest_match_hint(self.optim, optims)} Valid "
                f"values: {', '.join(optims)}."
            )
        if self.resume_interrupted and self.checkpoint is not None:
            raise ConfigError(
                "resume_interrupted=True and checkpoint= cannot be combined: "
                "resume_interrupted continues the killed run in `out` exactly where it stopped "
                "(weights, optimizer, schedule, data position), while checkpoint= starts a new "
                "run from saved weights only. Pass one of them."
            )
        if self.resume_interrupted and self.overwrite:
            raise ConfigError(
                "resume_interrupted=True and overwrite=True cannot be combined: overwrite "
                "would replace the run that resume_interrupted continues. Pass one of them."
            )
        if isinstance(self.devices, str) and self.devices != "auto":
            try:
                [int(d) for d in self.devices.split(",") if d.strip()]
            except ValueError:
                raise ConfigError(
                    f"devices must be an int, a list of device indices, 'auto' or a string like "
                    f"'0,1', got {self.devices!r}."
                ) from None
        strategies = ("auto", "ddp", "ddp_spawn", *_DDP_UNUSED)
        if self.strategy not in strategies:
            raise ConfigError(
                f"Unknown strategy '{self.strategy}'.{closest_match_hint(self.strategy, strategies)}"
                f" Valid values: {', '.join(strategies)}."
            )

    def _resolve_aliases(self) -> None:
        """Bring the accepted spellings of an option to one form (the peer's names are
        translated before, by ``lightly_train._peer``)."""
        if self.loggers is None:
            self.loggers = LoggerArgs()
        elif isinstance(self.loggers, list):
            self.loggers = LoggerArgs.from_names(self.loggers)
        if self.callbacks is None:
            self.callbacks = CallbackArgs()
        mc = self.callbacks.model_checkpoint
        assert mc is not None
        for name, field_name, value in (
            ("checkpoint_every_n_steps", "every_n_train_steps", self.checkpoint_every_n_steps),
            ("checkpoint_keep", "save_top_k", self.checkpoint_keep),
        ):
            if value is None:
                continue
            if value < 1:
                raise ConfigError(f"{name} must be >= 1 or None, got {value}.")
            setattr(mc, field_name, value)
            setattr(self, name, None)

    def _check_loader_args(self) -> None:
        if self.loader_args:
            blocked = sorted(set(self.loader_args) & _LOADER_OWNED)
            if blocked:
                raise ConfigError(
                    f"loader_args cannot set {', '.join(blocked)}: the trainer sets them (its "
                    "sampler resumes runs exactly, its collate function skips bad images, "
                    "batch_size (global) and num_workers are top-level options). Fix: drop "
                    "these keys."
                )
