"""Checks of the command line that need no torch: option names, required options, the
choices of ``format``/``part`` and that a checkpoint file exists.

They run before torch, torchvision and lightning are imported (several seconds on a
small machine), so a typo is answered at once. This module imports the standard library
only; the lists below are the options of the Python functions, kept equal to them by the
tests (``packages/lightly-train/tests/test_cli_early.py``).
"""

from __future__ import annotations

import difflib
import os
from typing import Any

__all__ = ["EarlyError", "check"]

#: ``lightly_train.train``'s options (``TrainConfig``'s fields and the peer's names).
TRAIN_OPTIONS = (
    "out", "data", "model", "method", "method_args", "embed_dim", "epochs", "batch_size",
    "num_workers", "accelerator", "devices", "num_nodes", "strategy", "precision",
    "float32_matmul_precision", "seed", "optim", "optim_args", "transform_args",
    "loader_args", "model_args", "loggers", "callbacks", "log_every_n_steps",
    "channels_last", "compile", "overwrite", "progress_bar", "gradient_accumulation_steps",
    "epoch_size", "shuffle_buffer", "data_cache", "decode", "decode_size",
    "checkpoint_every_n_steps", "checkpoint_keep", "resume_interrupted", "checkpoint",
    "monitor_every_n_steps", "monitor_args", "val_data", "val_args", "val_every_n_epochs",
    "resume", "trainer_args", "activation_checkpoint_args",
)  # fmt: skip
EXPORT_OPTIONS = ("out", "checkpoint", "part", "format", "overwrite", "model")
EMBED_OPTIONS = (
    "out", "data", "checkpoint", "format", "image_size", "batch_size", "num_workers",
    "accelerator", "overwrite", "precision", "model",
)  # fmt: skip
REPORT_OPTIONS = ("out",)
#: A folder holding one of these is a run's out folder (lt_train._report.RUN_MARKERS).
RUN_MARKERS = ("metrics.jsonl", "run.json", "config.json", "train.log")
EXPORT_FORMATS = ("package_default", "torch_state_dict", "torch_model", "onnx")
EXPORT_PARTS = ("model", "embedding_model", "wrapped_model")
EMBED_FORMATS = ("torch", "csv", "lightly_csv", "parquet")

_REQUIRED = {
    "train": ("out", "data", "model"),
    "export": ("out", "checkpoint"),
    "embed": ("out", "data", "checkpoint"),
    "report": ("out",),
}
_EXAMPLES = {
    "train": "out=out/my_experiment data=my_data_dir model=torchvision/resnet18",
    "export": "out=model.pt checkpoint=out/my_experiment/checkpoints/last.ckpt",
    "embed": "out=embeddings.csv data=my_data_dir "
    "checkpoint=out/my_experiment/checkpoints/last.ckpt format=csv",
    "report": "out=out/my_experiment",
}


class EarlyError(ValueError):
    """A usage error found before the heavy imports; the command line prints it and
    exits with 2, like a ``ConfigError``."""


def _hint(value: str, choices: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(value, choices, n=1)
    return f" Did you mean '{close[0]}'?" if close else ""


def check(command: str, options: dict[str, Any]) -> None:
    """Raise :class:`EarlyError` for what is wrong with ``options`` of ``command``
    (``train``/``pretrain``, ``export``, ``embed``, ``report``) that is clear without
    torch; the functions check the rest."""
    kind = "train" if command in ("train", "pretrain") else command
    valid = {
        "train": TRAIN_OPTIONS,
        "export": EXPORT_OPTIONS,
        "embed": EMBED_OPTIONS,
        "report": REPORT_OPTIONS,
    }.get(kind)
    if valid is None:
        return
    for key in options:
        if key not in valid:
            raise EarlyError(
                f"Unknown option '{key}'{'' if kind == 'train' else ' of ' + command}."
                f"{_hint(key, valid)} "
                f"'lightly-train {command} help' lists every option."
            )
    missing = [key for key in _REQUIRED[kind] if key not in options]
    if missing:
        raise EarlyError(
            f"{command} needs {', '.join(k + '=...' for k in missing)}, e.g. lightly-train "
            f"{command} {_EXAMPLES[kind]}. 'lightly-train {command} help' lists every option."
        )
    choices = {"export": {"format": EXPORT_FORMATS, "part": EXPORT_PARTS}}.get(
        kind, {"format": EMBED_FORMATS} if kind == "embed" else {}
    )
    for name, allowed in choices.items():
        value = options.get(name)
        if value is not None and value not in allowed:
            raise EarlyError(
                f"Unknown {name} '{value}' of {command}.{_hint(str(value), allowed)} Valid "
                f"values: {', '.join(allowed)}."
            )
    if kind == "report":
        _check_run_folder(options["out"])
    checkpoint = options.get("checkpoint")
    if isinstance(checkpoint, str) and checkpoint and not os.path.exists(checkpoint):
        raise EarlyError(f"Checkpoint '{checkpoint}' does not exist. Fix: pass an existing file.")


def _check_run_folder(out: Any) -> None:
    """The report's folder exists and holds a run (the same rule as lt_train's)."""
    if not isinstance(out, str | int) or isinstance(out, bool):
        raise EarlyError(f"out must be a folder path, got {out!r}. Fix: out=out/my_experiment.")
    out = str(out)
    if not os.path.isdir(out):
        what = "is a file, not a folder" if os.path.exists(out) else "does not exist"
        raise EarlyError(
            f"The out folder '{out}' {what}. Fix: pass the out folder of a run, the folder "
            "given as out= to train (e.g. lightly-train report out=out/my_experiment)."
        )
    if not any(os.path.isfile(os.path.join(out, name)) for name in RUN_MARKERS):
        raise EarlyError(
            f"The folder '{out}' is not a run's out folder: it has none of "
            f"{', '.join(RUN_MARKERS)}. Fix: pass the folder given as out= to train."
        )
