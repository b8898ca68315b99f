"""The ``export`` and ``embed`` commands of the ``lightly-train`` command line.

``lightly-train export out=model.pt checkpoint=out/my_experiment/checkpoints/last.ckpt``
and ``lightly-train embed out=embeddings.csv data=images checkpoint=... format=csv``: the
options arrive parsed from ``key=value`` (:func:`lightly_train._cli.parse_key_values`) and
are checked here before the Python function runs.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from lt_core import ConfigError, ConfigTypeError, closest_match_hint

__all__ = ["embed_command", "export_command", "report_command"]

# Options that name files or models: strings on the command line.
_PATH_OPTIONS = ("out", "checkpoint", "model")


def export_command(options: dict[str, Any]) -> int:
    """Run ``lightly-train export key=value ...``; print what was written; return 0."""
    from lightly_train._export import export

    values = _check("export", export, options)
    path = export(**values)
    part = values.get("part", "model")
    format = values.get("format", "package_default")
    print(f"Exported {part} ({format}) to {path}")
    return 0


def embed_command(options: dict[str, Any]) -> int:
    """Run ``lightly-train embed key=value ...``; print what was written; return 0."""
    from lightly_train._embed import embed

    values = _check("embed", embed, options)
    path = embed(**values)
    print(f"Wrote the embeddings ({values.get('format', 'torch')}) to {path}")
    return 0


def report_command(options: dict[str, Any]) -> int:
    """Run ``lightly-train report out=...``; print where the report is; return 0."""
    from lightly_train._report import report

    # The early checks (lightly_train._early) took care of the option names and the folder.
    path = report(_as_path("out", options["out"], allow_list=False))
    print(f"Wrote the run report to {path}; open it in a browser: {path.resolve().as_uri()}")
    return 0


def _check(command: str, function: Callable[..., Any], options: dict[str, Any]) -> dict[str, Any]:
    """The options of ``function`` in ``options``: no unknown key, every required one,
    path options as strings."""
    parameters = {
        name: p
        for name, p in inspect.signature(function).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }
    for key in options:
        if key not in parameters:
            raise ConfigError(
                f"Unknown option '{key}' of {command}.{closest_match_hint(key, list(parameters))}"
                f" Valid options: {', '.join(parameters)}."
            )
    missing = [
        name
        for name, p in parameters.items()
        if p.default is inspect.Parameter.empty and name not in options
    ]
    if missing:
        raise ConfigError(
            f"{command} needs {', '.join(f'{name}=...' for name in missing)}, e.g. "
            f"{_EXAMPLES[command]}"
        )
    values = dict(options)
    for name in (*_PATH_OPTIONS, "data"):
        if name in values:
            values[name] = _as_path(name, values[name], allow_list=name == "data")
    return values


def _as_path(name: str, value: Any, allow_list: bool) -> Any:
    if allow_list and isinstance(value, list):
        return [_as_path(name, v, allow_list=False) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # out=2024 was parsed as a number
    if not isinstance(value, str):
        raise ConfigTypeError(
            f"{name} must be a path or name, got {type(value).__name__}: {value!r}. Fix: "
            f"quote it as a JSON string, e.g. {name}='\"{value}\"'."
        )
    return value


_EXAMPLES = {
    "export": "lightly-train export out=model.pt "
    "checkpoint=out/my_experiment/checkpoints/last.ckpt part=model format=torch_state_dict",
    "embed": "lightly-train embed out=embeddings.csv data=my_data_dir "
    "checkpoint=out/my_experiment/checkpoints/last.ckpt format=csv",
}
