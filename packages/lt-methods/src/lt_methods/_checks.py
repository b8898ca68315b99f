"""Small helpers shared by the method configs: value checks and view-size rules.

Every check raises :class:`lt_core.ConfigError` naming the option, the valid range and
the value that was given, so a bad ``method_args`` or ``transform_args`` entry fails before
any work starts.
"""

from __future__ import annotations

from lt_core import ConfigError, check_callable

__all__ = [
    "check_callable",
    "check_int",
    "check_lr_scaling",
    "check_positive",
    "check_prob",
    "check_range",
    "check_size",
    "not_supported",
    "scale_size",
]


def check_prob(name: str, value: float) -> None:
    """``value`` must be a probability in ``[0, 1]``."""
    if not 0.0 <= value <= 1.0:
        raise ConfigError(f"{name} must be a probability in [0, 1], got {value!r}.")


def check_positive(name: str, value: float) -> None:
    """``value`` must be ``> 0``."""
    if not value > 0:
        raise ConfigError(f"{name} must be > 0, got {value!r}.")


def check_int(name: str, value: int, minimum: int) -> None:
    """``value`` must be an int ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an int >= {minimum}, got {value!r}.")


def check_range(name: str, value: float, low: float, high: float) -> None:
    """``value`` must lie in ``[low, high]``."""
    if not low <= value <= high:
        raise ConfigError(f"{name} must be in [{low}, {high}], got {value!r}.")


def check_size(name: str, size: tuple[int, int]) -> None:
    """``size`` must be ``(height, width)`` with two positive ints."""
    if (
        len(size) != 2
        or any(isinstance(s, bool) or not isinstance(s, int) for s in size)
        or min(size) < 1
    ):
        raise ConfigError(f"{name} must be (height, width) with ints >= 1, got {size!r}.")


def not_supported(name: str, value: object, reason: str) -> ConfigError:
    """The error for an option we accept by name (LightlyTrain's) but cannot honor yet."""
    return ConfigError(f"{name}={value!r} is not supported yet: {reason}")


def check_lr_scaling(lr_scale_method: str, reference_batch_size: int) -> None:
    """``lr_scale_method`` is ``"linear"`` or ``"sqrt"``; ``reference_batch_size`` >= 1.

    The trainer scales ``optim_args.lr`` (given for ``reference_batch_size`` images) to
    the effective batch with this rule (``lt_train._optim.scaled_lr``).
    """
    check_int("method_args.reference_batch_size", reference_batch_size, 1)
    if lr_scale_method not in ("linear", "sqrt"):
        raise ConfigError(
            f"method_args.lr_scale_method must be 'linear' or 'sqrt', got {lr_scale_method!r}."
        )


def scale_size(image_size: tuple[int, int], numerator: int, denominator: int) -> tuple[int, int]:
    """Scale each side of ``image_size`` by ``numerator / denominator``, at least 8 pixels.

    The DINO recipe's 96-pixel local crops of 224-pixel images become
    ``scale_size(image_size, 96, 224)``: 14 pixels for a 32-pixel image.
    """
    h, w = image_size
    return (max(8, round(h * numerator / denominator)), max(8, round(w * numerator / denominator)))
