"""The error hierarchy shared by every lightly-train package.

All errors raised on purpose by lightly-train derive from :class:`LightlyTrainError`, so
callers can catch them in one place. Each concrete error also derives from the matching
builtin (``TypeError`` or ``ValueError``) so existing ``except ValueError`` code keeps working.
"""

from __future__ import annotations


class LightlyTrainError(Exception):
    """Base class of all errors raised on purpose by lightly-train."""


class WrapperError(LightlyTrainError):
    """A model wrapper does not follow the wrapper protocol."""


class WrapperTypeError(WrapperError, TypeError):
    """A wrapper, or a value returned by one of its methods, has the wrong type."""


class WrapperValueError(WrapperError, ValueError):
    """A value returned by a wrapper method has the right type but a wrong shape or value."""


class ConfigError(LightlyTrainError, ValueError):
    """An invalid configuration value: unknown key, wrong type or out-of-range value."""


class ConfigTypeError(LightlyTrainError, TypeError):
    """A configuration value has the wrong type."""


class DataError(LightlyTrainError, ValueError):
    """The training data cannot be used: missing folder, no images, too few images."""


class TrainingInterrupted(LightlyTrainError):
    """A signal (Ctrl-C, SIGTERM) stopped a run after it wrote a checkpoint.

    Attributes:
        signum: The signal number.
        out: The out folder of the run; continue it with ``resume_interrupted=True``.
    """

    def __init__(self, message: str, signum: int, out: str) -> None:
        super().__init__(message)
        self.signum = signum
        self.out = out


class LossNotFiniteError(LightlyTrainError, ArithmeticError):
    """The training loss became NaN or infinite; the last checkpoint holds good weights."""
