"""The method registry: names to :class:`Method` classes, in the style of timm's registry.

Each method module registers its class with the :func:`register_method` decorator when
``lt_methods`` is imported; the tests are parametrized over :func:`list_methods`, so a new
method is tested by registering it.

Why SimCLR is :data:`DEFAULT_METHOD`: both built-in methods train from scratch without
pretrained weights or downloads, but SimCLR is the more forgiving one at small scale. It
needs two views per image and no teacher network (DINO runs 2 global and 6 local views
plus an EMA teacher, roughly twice the compute per image), and it has no temperature or
momentum schedules to tune, so short runs on a CPU or with small batches train reliably
and its loss is easy to read. DINO collapses more easily when its schedules or batch
statistics are off, which is harder to notice in a short run.
"""

from __future__ import annotations

from typing import TypeVar

from lt_core import ConfigError, closest_match_hint
from lt_methods._method import Method

__all__ = ["DEFAULT_METHOD", "OPTIMIZER_NAMES", "get_method", "list_methods", "register_method"]

#: The method used when none is given (see the module docstring for why).
DEFAULT_METHOD: str = "simclr"

M = TypeVar("M", bound=type[Method])

_METHODS: dict[str, type[Method]] = {}

_REQUIRED = (
    "name",
    "Args",
    "TransformArgs",
    "default_optimizer",
    "default_lr",
    "default_weight_decay",
)
#: Names of the optimizers a method may default to (and ``optim=`` accepts); lt_train builds
#: each of them.
OPTIMIZER_NAMES: tuple[str, ...] = ("sgd", "adamw", "lars")


def register_method(cls: M) -> M:
    """Register a :class:`Method` subclass under ``cls.name`` (lowercased); use as a decorator.

    Raises:
        ConfigError: A class attribute is missing or invalid, or another class is already
            registered under the same name.
    """
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise ConfigError(f"register_method expects a subclass of Method, got {cls!r}.")
    missing = [attr for attr in _REQUIRED if not hasattr(cls, attr)]
    if missing:
        raise ConfigError(f"{cls.__name__} must set the class attribute(s) {', '.join(missing)}.")
    if cls.default_optimizer not in OPTIMIZER_NAMES:
        raise ConfigError(
            f"{cls.__name__}.default_optimizer must be one of {', '.join(OPTIMIZER_NAMES)}, got "
            f"{cls.default_optimizer!r}."
        )
    key = cls.name.lower()
    existing = _METHODS.get(key)
    if existing is not None and existing is not cls:
        raise ConfigError(
            f"A method named '{key}' is already registered ({existing.__module__}."
            f"{existing.__qualname__})."
        )
    _METHODS[key] = cls
    return cls


def get_method(name: str) -> type[Method]:
    """Return the method class registered as ``name`` (case-insensitive).

    Raises:
        ConfigError: No method has this name; the message lists the valid names and the
            closest match.
    """
    if not isinstance(name, str):
        raise ConfigError(
            f"method must be a str, one of {', '.join(list_methods())}; got {name!r}."
        )
    cls = _METHODS.get(name.lower())
    if cls is None:
        valid = list_methods()
        raise ConfigError(
            f"Unknown method '{name}'.{closest_match_hint(name.lower(), valid)} "
            f"Valid methods: {', '.join(valid)}."
        )
    return cls


def list_methods() -> list[str]:
    """Names of all registered methods, sorted."""
    return sorted(_METHODS)
