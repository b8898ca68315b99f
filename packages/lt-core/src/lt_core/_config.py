"""Build keyword-only config dataclasses from plain dicts, with clear errors.

Every user-facing option group (``method_args``, ``transform_args``, ``optim_args``...) is a
dataclass. :func:`from_dict` fills one from a nested dict (from Python or the CLI), and
rejects unknown keys (naming the valid keys and the closest match) and wrong types (naming
the key and the expected type) before any work starts.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import difflib
import re
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from lt_core._errors import ConfigError, ConfigTypeError

__all__ = ["check_callable", "closest_match_hint", "describe_callable", "from_dict", "to_dict"]

T = TypeVar("T")


def closest_match_hint(key: str, valid: Sequence[str]) -> str:
    """Return ``" Did you mean 'x'?"`` for the closest valid key, or ``""``."""
    match = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.6)
    return f" Did you mean '{match[0]}'?" if match else ""


def from_dict(cls: type[T], values: Mapping[str, Any] | T | None, name: str) -> T:
    """Build dataclass ``cls`` from ``values``, checking keys and types.

    Args:
        cls: A dataclass type whose fields all have defaults or are given in ``values``.
        values: A mapping of field names to values (nested mappings for nested
            dataclasses), an instance of ``cls`` (returned unchanged), or ``None``
            (all defaults).
        name: The dotted name of this option group in error messages, e.g. ``"optim_args"``;
            ``""`` for top-level options.

    Raises:
        ConfigError: An unknown key (with the valid keys and the closest match) or a
            missing required key.
        ConfigTypeError: A value of the wrong type.
    """
    if values is None:
        values = {}
    if isinstance(values, cls):
        return values
    if not isinstance(values, Mapping):
        raise ConfigTypeError(f"{name} must be a dict, got {type(values).__name__}: {values!r}.")
    assert dataclasses.is_dataclass(cls)
    prefix = f"{name}." if name else ""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key not in fields:
            raise ConfigError(
                f"Unknown key '{prefix}{key}'.{closest_match_hint(str(key), list(fields))} "
                f"Valid keys{' of ' + name if name else ''}: {', '.join(fields)}."
            )
        kwargs[key] = _convert(value, hints[key], f"{prefix}{key}")
    missing = [
        f
        for f, fld in fields.items()
        if f not in kwargs
        and fld.default is dataclasses.MISSING
        and fld.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"Missing required key(s) {', '.join(prefix + m for m in missing)}.")
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as e:
        if isinstance(e, ConfigError | ConfigTypeError):
            raise
        raise ConfigError(f"Invalid {name or 'options'}: {e}") from e


def to_dict(obj: Any) -> Any:
    """Turn a (nested) config dataclass into plain dicts, lists and scalars.

    Dataclasses and mappings become dicts, tuples and lists become lists, and a callable
    object (a function, an ``nn.Module`` such as an augmentation pipeline) becomes the
    readable string of :func:`describe_callable`, so the result can be written as JSON and
    compared between runs. Other values are returned unchanged.
    """
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, Mapping):
        return {k: to_dict(v) for k, v in obj.items()}
    if isinstance(obj, tuple | list):
        return [to_dict(v) for v in obj]
    if callable(obj):
        return describe_callable(obj)
    return obj


_ADDRESS = re.compile(r" (?:at|object at) 0x[0-9a-fA-F]+")


def describe_callable(obj: Any) -> str:
    """A readable string for a callable option that stays the same from run to run.

    Functions and classes give their qualified name (``"my_module.my_augment"``); other
    objects (an ``nn.Module`` pipeline, a ``functools.partial``) their ``repr`` without
    memory addresses, e.g. ``"RandomRotation(degrees=30.0, p=0.5, ...)"``: a module's repr
    lists its submodules and settings, so two runs with the same pipeline give the same
    string.
    """
    if isinstance(obj, type | types.FunctionType | types.BuiltinFunctionType):
        return f"{obj.__module__}.{obj.__qualname__}"
    return _ADDRESS.sub("", repr(obj))


def check_callable(name: str, value: Any) -> None:
    """``value`` must be a callable object (``None`` is checked by the caller).

    Raises:
        ConfigTypeError: ``value`` is not callable; for a string (from the command line or
            a config file) the message says to pass the object from Python instead.
    """
    if callable(value):
        return
    fix = (
        "Fix: pass the object itself from Python, e.g. lightly_train.train(..., "
        "transform_args={'augment': pipeline}); the command line and config files cannot "
        "give Python objects."
    )
    raise ConfigTypeError(
        f"{name} must be a callable (a function or an nn.Module, e.g. a kornia.augmentation "
        f"pipeline), got {type(value).__name__}: {value!r}. {fix}"
    )


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _type_name(tp: Any) -> str:
    """``int``, ``int or 'auto'``, ``list[int]``: types as a user reads them."""
    if isinstance(tp, type):
        return tp.__name__
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp) if a is not type(None))
    if origin is typing.Literal:
        return " or ".join(repr(a) for a in typing.get_args(tp))
    return str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against type ``tp``; apply lossless conversions (int to float,
    list to tuple, dict to dataclass)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors: list[tuple[Any, Exception]] = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, key)
            except (ConfigError, ConfigTypeError) as e:
                errors.append((arg, e))
        if len(errors) == 1:
            raise errors[0][1]
        # A dict given for an option group: the group's own error (e.g. an unknown key
        # with the closest match) says more than "wrong type".
        shaped = [e for arg, e in errors if isinstance(value, Mapping) and _is_dataclass_type(arg)]
        if len(shaped) == 1:
            raise shaped[0]
        raise ConfigTypeError(
            f"{key} must be of type {_type_name(tp)}, got {type(value).__name__}: {value!r}."
        )
    if origin is typing.Literal:
        if value in args:
            return value
        hint = closest_match_hint(str(value), [str(a) for a in args])
        raise ConfigError(
            f"{key} must be one of {', '.join(repr(a) for a in args)}, got {value!r}.{hint}"
        )
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        return from_dict(tp, value, key)
    if origin is collections.abc.Callable:
        check_callable(key, value)
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigTypeError(f"{key} must be a list or tuple {_type_name(tp)}, got {value!r}.")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], f"{key}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigTypeError(
                f"{key} must have {len(args)} elements ({_type_name(tp)}), got {value!r}."
            )
        return tuple(_convert(v, a, f"{key}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if origin in (list, Sequence):
        if not isinstance(value, list | tuple):
            raise ConfigTypeError(f"{key} must be a list, got {value!r}.")
        return (
            [_convert(v, args[0], f"{key}[{i}]") for i, v in enumerate(value)]
            if args
            else list(value)
        )
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigTypeError(f"{key} must be a dict, got {value!r}.")
        return dict(value)
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is str:
        if isinstance(value, str):
            return value
    elif isinstance(tp, type):
        if isinstance(value, tp):
            return value
    else:
        return value
    raise ConfigTypeError(
        f"{key} must be of type {_type_name(tp)}, got {type(value).__name__}: {value!r}."
    )
