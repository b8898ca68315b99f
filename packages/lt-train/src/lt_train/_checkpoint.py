"""The checkpoint format: everything a run needs to continue exactly where it stopped.

(What is saved is gathered in :mod:`lt_train._state`; when, and how many are kept, is
decided in :mod:`lt_train._checkpointer`.)

A checkpoint is a plain dict of tensors, numbers, strings, lists and dicts, loadable with
``torch.load(path, weights_only=True)``:

- ``"method"``: the method's ``state_dict`` (the wrapped model with its embedding layer,
  heads, an EMA teacher, the method's buffers such as DINO's center);
- ``"optimizer"``, ``"precision"`` (the grad scaler of 16-mixed, else empty);
- ``"step"``, ``"epoch"``, ``"step_in_epoch"`` (the data position: the sampler draws each
  epoch's order from the seed, so the step inside the epoch fixes which images come next),
  ``"max_steps"``, ``"skipped_images"``, ``"train_time_s"``;
- ``"rng"``: for every process, the torch, CUDA, Python and numpy RNG states;
- ``"model_prefix"``: the key prefix of ``wrapper.get_model()`` inside ``"method"``;
- ``"run"``: the options that shape the run (see :func:`run_fingerprint`), compared on
  resume so that a changed option cannot silently alter it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import random
from typing import Any

import torch

from lt_core import ConfigError, to_dict

logger = logging.getLogger(__name__)

__all__ = [
    "CHECKPOINT_FORMAT",
    "changed_options",
    "get_rng_state",
    "load_checkpoint",
    "run_fingerprint",
    "set_rng_state",
]

CHECKPOINT_FORMAT = 1

# Options that do not change what a run computes: they may differ on resume.
_FREE_OPTIONS = frozenset(
    {
        "out",
        "overwrite",
        "resume_interrupted",
        "checkpoint",
        "progress_bar",
        "num_workers",
        "log_every_n_steps",
        "loggers",
        "checkpoint_every_n_steps",
        "checkpoint_keep",
        "callbacks",
        "loader_args",
        "monitor_every_n_steps",  # the monitors and the kNN probe change no weight
        "monitor_args",
        "val_data",
        "val_args",
        "val_every_n_epochs",
        "data",  # compared by content (the image list), so a moved folder still resumes
    }
)


def get_rng_state() -> dict[str, Any]:
    """The RNG states of this process: torch, CUDA (if initialized), Python, numpy."""
    py_version, py_state, py_gauss = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "python": [py_version, list(py_state), py_gauss],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    with contextlib.suppress(ImportError):
        import numpy as np

        key, keys, pos, has_gauss, cached = np.random.get_state()  # type: ignore[misc]
        state["numpy"] = [
            str(key),
            torch.from_numpy(keys.astype(np.int64)),
            int(pos),
            int(has_gauss),
            float(cached),
        ]
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore the states saved by :func:`get_rng_state`."""
    torch.set_rng_state(state["torch"])
    version, py_state, gauss = state["python"]
    random.setstate((version, tuple(py_state), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    if "numpy" in state:
        with contextlib.suppress(ImportError):
            import numpy as np

            key, keys, pos, has_gauss, cached = state["numpy"]
            np.random.set_state((key, keys.numpy().astype(np.uint32), pos, has_gauss, cached))


def files_digest(files: Any) -> str:
    """A short digest of the image list, so a resumed run can tell its data changed."""
    digest = hashlib.sha1(usedforsecurity=False)
    for path in files:
        digest.update(os.fsencode(os.fspath(path)) + b"\0")
    return digest.hexdigest()[:16]


def run_fingerprint(config: Any, resolved: dict[str, Any]) -> dict[str, Any]:
    """The options that decide what a run computes, as plain JSON-like data."""
    values = {k: v for k, v in to_dict(config).items() if k not in _FREE_OPTIONS}
    model = config.model
    values["model"] = model if isinstance(model, str) else type(model).__qualname__
    values.update(resolved)
    return values


def changed_options(
    saved: dict[str, Any], current: dict[str, Any], defaults: dict[str, Any] | None = None
) -> list[str]:
    """Names of the options whose value differs, as ``name: saved -> current`` (a dict
    option such as ``transform_args`` is compared key by key: ``transform_args.x: ...``).

    An option missing from ``saved`` (added to lightly-train after that checkpoint was
    written) counts as changed only where ``current`` sets it to something other than its
    default in ``defaults``: the default keeps what the older version did. Inside a dict
    option, a key missing from ``saved`` counts as changed only where it is not ``None``
    (an option added later, switched off).
    """
    defaults = defaults or {}
    changes: list[str] = []
    for key in sorted(set(saved) | set(current)):
        if key not in saved and key in defaults:
            if _normalize(current.get(key)) != _normalize(defaults[key]):
                changes.append(f"{key}: {saved.get(key)!r} -> {current.get(key)!r}")
            continue
        changes += _differences(key, saved.get(key), current.get(key))
    return changes


def _differences(name: str, old: Any, new: Any) -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        changes: list[str] = []
        for key in sorted(set(old) | set(new), key=str):
            if key not in old and new[key] is None:
                continue
            changes += _differences(f"{name}.{key}", old.get(key), new.get(key))
        return changes
    if _normalize(old) != _normalize(new):
        return [f"{name}: {old!r} -> {new!r}"]
    return []


def _normalize(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_normalize(v) for v in value]
    if isinstance(value, dict):
        return {k: _normalize(v) for k, v in value.items()}
    return value


def load_checkpoint(path: str | os.PathLike[str], mmap: bool = False) -> dict[str, Any]:
    """Load a checkpoint (weights only, on the CPU) with a clear error if it is unusable."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except FileNotFoundError as e:
        raise ConfigError(f"Checkpoint '{path}' does not exist. Fix: pass an existing file.") from e
    except Exception as e:
        raise ConfigError(
            f"Cannot load the checkpoint '{path}': {type(e).__name__}: {e}. It may be "
            "truncated or not a lightly-train checkpoint. Fix: pass another checkpoint (older "
            "ones are kept with checkpoint_keep > 1)."
        ) from e
    if not isinstance(state, dict):
        raise ConfigError(f"'{path}' is not a lightly-train checkpoint or state_dict.")
    return state
