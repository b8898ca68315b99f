"""The option names of LightlyTrain 0.18 (the peer) that the trainer's options lack.

Users switch from the peer with its options unchanged, so ``lightly_train.train`` (and the
command line, which calls it) passes the user's raw options through :func:`translate`
before :class:`lt_train.TrainConfig` sees them. Each name in :data:`PEER_NAMES` is either
translated to our option (``resume`` -> ``resume_interrupted``) or accepted only with the
values that do what we do anyway (``callbacks.model_checkpoint.mode`` without a
``monitor``) and rejected otherwise with a one-line error that names the option and the
fix. Nothing is accepted and then ignored, and the trainer's option dataclasses hold only
options that do something.

docs/migrating.md carries :func:`markdown_table` verbatim (a test compares them); print it
with ``python -c "from lightly_train._peer import markdown_table; print(markdown_table())"``.

The peer's ``method_args`` and ``transform_args`` names are checked by the methods' own
option dataclasses (``lt_methods``), see docs/migrating.md.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from lt_core import ConfigError, ConfigTypeError, closest_match_hint

__all__ = ["PEER_NAMES", "TOP_LEVEL", "PeerName", "markdown_table", "translate"]

# (value, the dict that held it, the top-level options) -> None; raises when the value
# cannot be honoured and writes the translation into the dict.
_Apply = Callable[[Any, dict[str, Any], dict[str, Any]], None]


@dataclass(frozen=True)
class PeerName:
    """One option name of the peer that the trainer does not have.

    Attributes:
        key: Dotted name, e.g. ``"callbacks.model_checkpoint.mode"``.
        becomes: The option it is translated to, or ``None`` when it is dropped because
            the accepted values change nothing here.
        accepts: The values that work, as the docs show them.
        note: What the trainer does instead, and the fix for the other values.
        apply: Checks the value and writes the translation.
    """

    key: str
    becomes: str | None
    accepts: str
    note: str
    apply: _Apply


def _type_error(key: str, expected: str, value: Any) -> ConfigTypeError:
    return ConfigTypeError(
        f"{key} must be of type {expected}, got {type(value).__name__}: {value!r}."
    )


def _bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _type_error(key, "bool", value)
    return value


def _resume(value: Any, group: dict[str, Any], options: dict[str, Any]) -> None:
    if value is None:
        return
    if not _bool("resume", value):
        if group.get("resume_interrupted") is True:
            raise ConfigError(
                "resume=False and resume_interrupted=True contradict each other; resume is "
                "the old name of resume_interrupted. Pass resume_interrupted only."
            )
        return
    if group.get("resume_interrupted") in (None, False):
        group["resume_interrupted"] = True


def _trainer_args(value: Any, group: dict[str, Any], options: dict[str, Any]) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        raise _type_error("trainer_args", "dict", value)
    if value:
        raise ConfigError(
            f"trainer_args ({', '.join(map(str, value))}) are options of Lightning's "
            "Trainer, which this trainer does not use (it runs on lightning-fabric). Fix: "
            "use the top-level options: precision, devices, num_nodes, strategy, "
            "gradient_accumulation_steps, optim_args.gradient_clip_norm, callbacks."
        )


_ACTIVATION_KEYS = ("enabled", "every_n_blocks")


def _activation_checkpoint_args(value: Any, group: dict[str, Any], options: Any) -> None:
    name = "activation_checkpoint_args"
    if value is None:
        return
    if not isinstance(value, dict):
        raise _type_error(name, "dict", value)
    for key in value:
        if key not in _ACTIVATION_KEYS:
            raise ConfigError(
                f"Unknown key '{name}.{key}'.{closest_match_hint(str(key), _ACTIVATION_KEYS)} "
                f"Valid keys of {name}: {', '.join(_ACTIVATION_KEYS)}."
            )
    every = value.get("every_n_blocks", 1)
    if isinstance(every, bool) or not isinstance(every, int) or every < 1:
        raise ConfigError(f"{name}.every_n_blocks must be an int >= 1, got {every!r}.")
    if _bool(f"{name}.enabled", value.get("enabled", False)):
        raise ConfigError(
            "activation_checkpoint_args.enabled=True is not supported yet (lightly-train "
            "0.18.0 offers it for ViT backbones only). Fix: leave it off, or lower "
            "batch_size and raise gradient_accumulation_steps to save memory."
        )


_MC = "callbacks.model_checkpoint"


def _save_last(value: Any, group: dict[str, Any], options: dict[str, Any]) -> None:
    if not _bool(f"{_MC}.save_last", value):
        raise ConfigError(
            f"{_MC}.save_last must be True: checkpoints/last.ckpt is what resume_interrupted "
            "continues from. Fix: leave save_last unset."
        )


def _monitor(value: Any, group: dict[str, Any], options: dict[str, Any]) -> None:
    if value is not None:
        raise ConfigError(
            f"{_MC}.monitor is not supported: checkpoints are kept by recency (save_top_k "
            "newest). Fix: leave monitor unset."
        )


def _mode(value: Any, group: dict[str, Any], options: dict[str, Any]) -> None:
    if value not in ("min", "max"):
        raise ConfigError(
            f"{_MC}.mode must be 'min' or 'max', got {value!r}; without a monitor it selects "
            "nothing. Fix: leave mode unset."
        )


def _auto_insert_metric_name(value: Any, group: dict[str, Any], options: Any) -> None:
    insert = _bool(f"{_MC}.auto_insert_metric_name", value)
    filename = group.get("filename")
    if insert and filename is not None:
        raise ConfigError(
            f"{_MC}.auto_insert_metric_name=True with a filename is not supported: the "
            "filename is formatted as given. Fix: write the names into it, e.g. "
            "filename='epoch={epoch}-step={step}', and leave auto_insert_metric_name unset."
        )
    if not insert and filename is None:
        raise ConfigError(
            f"{_MC}.auto_insert_metric_name=False needs a filename here (the default "
            "'epoch={epoch}-step={step}' has the names). Fix: set filename='{epoch}-{step}'."
        )


def _save_on_train_epoch_end(value: Any, group: dict[str, Any], options: Any) -> None:
    if value is not None and not _bool(f"{_MC}.save_on_train_epoch_end", value):
        raise ConfigError(
            f"{_MC}.save_on_train_epoch_end=False is not supported: there is no validation "
            "loop, checkpoints are written at the end of training epochs. Fix: leave it unset."
        )


def _enable_version_counter(value: Any, group: dict[str, Any], options: Any) -> None:
    if _bool(f"{_MC}.enable_version_counter", value):
        raise ConfigError(
            f"{_MC}.enable_version_counter=True is not supported: a checkpoint replaces the "
            "file of the same name. Fix: leave it unset; the default filename has the step."
        )


def _early_stopping_monitor(value: Any, group: dict[str, Any], options: Any) -> None:
    if value == "collapse":
        group["stop_on_collapse"] = True
        return
    if value not in ("train_loss", "loss"):
        raise ConfigError(
            f"callbacks.early_stopping.monitor must be 'train_loss' or 'collapse', got "
            f"{value!r}. Fix: leave it unset (the epoch's mean training loss), or 'collapse' "
            "to stop when the health monitors flag a collapse."
        )


def _log_graph(value: Any, group: dict[str, Any], options: dict[str, Any]) -> None:
    if _bool("loggers.tensorboard.log_graph", value):
        raise ConfigError(
            "loggers.tensorboard.log_graph=True is not supported: the model graph is not "
            "logged. Fix: leave log_graph False."
        )


#: Every peer name :func:`translate` handles, in the order it handles them.
PEER_NAMES: tuple[PeerName, ...] = (
    PeerName(
        "resume",
        "resume_interrupted",
        "`True`, `False`, `None`",
        "The peer's old name; `resume=False` with `resume_interrupted=True` fails.",
        _resume,
    ),
    PeerName(
        "trainer_args",
        None,
        "`None`, `{}`",
        "This trainer runs on lightning-fabric, not Lightning's Trainer: a non-empty dict "
        "fails and names the top-level options to use instead.",
        _trainer_args,
    ),
    PeerName(
        "activation_checkpoint_args",
        None,
        "`None`, `enabled: False` (with any `every_n_blocks`)",
        "Activation checkpointing is not supported yet (the peer offers it for ViTs only): "
        "`enabled=True` fails.",
        _activation_checkpoint_args,
    ),
    PeerName(
        f"{_MC}.save_last",
        None,
        "`True`",
        "`checkpoints/last.ckpt` is always written: resuming reads it.",
        _save_last,
    ),
    PeerName(
        f"{_MC}.monitor",
        None,
        "`None`",
        "Checkpoints are kept newest first (`save_top_k`), not by a metric.",
        _monitor,
    ),
    PeerName(
        f"{_MC}.mode",
        None,
        '`"min"`, `"max"`',
        "Selects nothing without a `monitor`, in the peer too.",
        _mode,
    ),
    PeerName(
        f"{_MC}.auto_insert_metric_name",
        None,
        "`True` without `filename`, `False` with one",
        "Our `filename` is formatted as given; the default `epoch={epoch}-step={step}` has "
        "the names, as the peer's default with `True`.",
        _auto_insert_metric_name,
    ),
    PeerName(
        f"{_MC}.save_on_train_epoch_end",
        None,
        "`None`, `True`",
        "There is no validation loop: epoch checkpoints are written at the end of training epochs.",
        _save_on_train_epoch_end,
    ),
    PeerName(
        f"{_MC}.enable_version_counter",
        None,
        "`False`",
        "A checkpoint replaces the file of the same name.",
        _enable_version_counter,
    ),
    PeerName(
        "callbacks.early_stopping.monitor",
        None,
        '`"train_loss"`, `"loss"`, `"collapse"`',
        "The epoch's mean training loss is the only loss metric; the value collapse becomes "
        "`stop_on_collapse=True` (stop when the health monitors flag a collapse).",
        _early_stopping_monitor,
    ),
    PeerName(
        "loggers.tensorboard.log_graph",
        None,
        "`False`",
        "The model graph is not logged.",
        _log_graph,
    ),
)

#: The peer's top-level options that ``TrainConfig`` lacks: ``train`` takes them too.
TOP_LEVEL: tuple[str, ...] = tuple(p.key for p in PEER_NAMES if "." not in p.key)


def translate(options: dict[str, Any]) -> dict[str, Any]:
    """The options with the peer's names of :data:`PEER_NAMES` translated to ours or
    dropped; ``options`` is not changed.

    Raises:
        ConfigError: A peer name with a value that cannot be honoured, naming the fix.
        ConfigTypeError: A peer name with a value of the wrong type.
    """
    result: dict[str, Any] = _copy_dicts(options)
    for peer in PEER_NAMES:
        *path, last = peer.key.split(".")
        group: Any = result
        for part in path:
            group = group.get(part) if isinstance(group, dict) else None
        if isinstance(group, dict) and last in group:
            peer.apply(group.pop(last), group, result)
    _peer_method(result)
    return result


#: The peer's distillation versions: our ``method="distillation"`` with this ``mode``
#: (v1: the queue target on pooled embeddings; v2: a regression of the feature maps; v3,
#: the peer's ``"distillation"``: a global and a local term).
PEER_METHODS: dict[str, str] = {
    "distillationv1": "pooled",
    "distillationv2": "dense",
    "distillationv3": "both",
}


def _peer_method(options: dict[str, Any]) -> None:
    """``method="distillationv1"`` etc. become ``method="distillation"`` with the
    version's ``method_args.mode`` (unless the options set a mode)."""
    method = options.get("method")
    mode = PEER_METHODS.get(method.lower()) if isinstance(method, str) else None
    if mode is None:
        return
    args = options.get("method_args")
    if args is None:
        args = options["method_args"] = {}
    if isinstance(args, dict):
        args.setdefault("mode", mode)
    options["method"] = "distillation"


def _copy_dicts(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy_dicts(v) for k, v in value.items()}
    return value


def markdown_table() -> str:
    """The docs table of :data:`PEER_NAMES` (docs/migrating.md has it verbatim)."""
    rows = ["| peer option | accepted values | here |", "|---|---|---|"]
    for peer in PEER_NAMES:
        becomes = f"Becomes `{peer.becomes}`. " if peer.becomes else "Dropped; other values fail. "
        rows.append(f"| `{peer.key}` | {peer.accepts} | {becomes}{peer.note} |")
    return "\n".join(rows)
