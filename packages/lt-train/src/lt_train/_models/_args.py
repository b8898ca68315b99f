"""``model_args`` checked against the constructor before a model is built, and a
constructor's error turned into one :class:`~lt_core.ConfigError` that names the model,
its arguments and the frames of the code that raised."""

from __future__ import annotations

import inspect
import traceback
from collections.abc import Callable
from types import TracebackType
from typing import Any

from lt_core import ConfigError, closest_match_hint

__all__ = ["accepted_args", "build_with_args"]


def accepted_args(*targets: Callable[..., Any]) -> list[str] | None:
    """The keyword arguments that ``targets`` accept together (a torchvision builder
    passes its ``**kwargs`` on to the model class); ``None`` when the last one takes any
    keyword (``**kwargs``), so no name can be ruled out. Arguments without a default of a
    class that is not the first target are left out: the builder passes them itself
    (ResNet's ``block`` and ``layers``)."""
    names: list[str] = []
    for i, target in enumerate(targets):
        try:
            parameters = inspect.signature(target).parameters.values()
        except (TypeError, ValueError):
            return None
        open_kwargs = False
        for p in parameters:
            if p.kind is p.VAR_KEYWORD:
                open_kwargs = True
            elif p.kind in (p.VAR_POSITIONAL, p.POSITIONAL_ONLY) or p.name == "self":
                continue
            elif i == 0 or p.default is not p.empty:
                names.append(p.name)
        if open_kwargs and i == len(targets) - 1:
            return None
    return list(dict.fromkeys(names))


def build_with_args(
    model: str,
    build: Callable[..., Any],
    model_args: dict[str, Any],
    accepted: list[str] | None,
    defaults: dict[str, Any] | None = None,
) -> Any:
    """``build(**model_args)``, with an unknown argument rejected before the call and an
    error of the call raised as a ConfigError (the original is its ``__cause__``).

    The error names the constructor's frames where it raised, so an error in the user's
    own class points at the user's line, as a traceback would, in a message the command
    line prints in full (it prints no traceback of a ConfigError). ``defaults`` are passed
    too unless ``model_args`` sets them (torchvision's ``weights=None``)."""
    if accepted is not None:
        unknown = [k for k in model_args if k not in accepted]
        if unknown:
            raise ConfigError(
                f"model_args of model='{model}' has unknown argument(s) "
                f"{', '.join(repr(k) for k in unknown)}."
                f"{closest_match_hint(unknown[0], accepted)} Accepted model_args: "
                f"{', '.join(accepted) or '(none)'}."
            )
    try:
        return build(**{**(defaults or {}), **model_args})
    except Exception as e:
        where = _frames_after_ours(e.__traceback__)
        known = f" Accepted model_args: {', '.join(accepted)}." if accepted else ""
        raise ConfigError(
            f"model='{model}' could not be built with model_args={model_args}: "
            f"{type(e).__name__}: {str(e).rstrip('.')}.{known}{where}"
        ) from e


def _frames_after_ours(tb: TracebackType | None) -> str:
    """The last frames of ``tb`` below this module (the constructor's own code), as in a
    traceback, or ``""``."""
    frames = [f for f in traceback.extract_tb(tb) if f.filename != __file__]
    if not frames:
        return ""
    lines = "".join(traceback.format_list(frames[-3:])).rstrip()
    return f"\nRaised at (most recent call last):\n{lines}"
