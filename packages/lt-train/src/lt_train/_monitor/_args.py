"""The options of the health monitors (``monitor_args``) and of the kNN probe
(``val_args``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from lt_core import ConfigError

__all__ = ["CollapseArgs", "MonitorArgs", "ValArgs"]


@dataclass(kw_only=True)
class CollapseArgs:
    """When the monitors call the embeddings collapsed (``monitor_args.collapse``).

    A check counts as collapsed when RankMe is under ``min_rank`` or ``std_ratio`` (the
    embedding std relative to its first value) is under ``std_fraction``; the run is
    flagged once ``patience`` checks in a row count (a warning in train.log and the
    progress bar, a ``collapse`` event in metrics.jsonl, and a stop when
    ``callbacks.early_stopping.stop_on_collapse`` is on).

    Attributes:
        min_rank: RankMe under this is collapsed (1 is all embeddings on one line).
        std_fraction: ``std_ratio`` under this is collapsed.
        patience: Collapsed checks in a row before the run is flagged.
    """

    min_rank: float = 2.0
    std_fraction: float = 0.1
    patience: int = 2

    def __post_init__(self) -> None:
        if self.min_rank < 0:
            raise ConfigError(f"monitor_args.collapse.min_rank must be >= 0, got {self.min_rank}.")
        if not 0.0 <= self.std_fraction <= 1.0:
            raise ConfigError(
                f"monitor_args.collapse.std_fraction must be in [0, 1], got {self.std_fraction}."
            )
        if self.patience < 1:
            raise ConfigError(f"monitor_args.collapse.patience must be >= 1, got {self.patience}.")


@dataclass(kw_only=True)
class MonitorArgs:
    """The label-free health monitors (``monitor_args``); their cadence is the top-level
    ``monitor_every_n_steps``.

    Attributes:
        enabled: Run the monitors (on by default).
        sample_size: Images of the fixed monitor sample. ``"auto"``: the embedding
            dimension, within 256 to 2048, at most the dataset. RankMe cannot exceed the
            sample size, so a sample smaller than the embedding dimension bounds it.
        batch_size: Images per forward pass of a check; ``None`` takes the training
            batch of one process.
        budget: The share of the wall time ``monitor_every_n_steps="auto"`` may spend on
            checks (the check at step 0 included, the one at the end not).
        collapse: When the embeddings count as collapsed (:class:`CollapseArgs`).
    """

    enabled: bool = True
    sample_size: int | Literal["auto"] = "auto"
    batch_size: int | None = None
    budget: float = 0.015
    collapse: CollapseArgs = field(default_factory=CollapseArgs)

    def __post_init__(self) -> None:
        if isinstance(self.sample_size, int) and self.sample_size < 2:
            raise ConfigError(
                f"monitor_args.sample_size must be >= 2 or 'auto', got {self.sample_size}."
            )
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(f"monitor_args.batch_size must be >= 1, got {self.batch_size}.")
        if not 0.0 < self.budget <= 1.0:
            raise ConfigError(f"monitor_args.budget must be in (0, 1], got {self.budget}.")


@dataclass(kw_only=True)
class ValArgs:
    """The online kNN probe on ``val_data`` (``val_args``); its cadence is the top-level
    ``val_every_n_epochs``.

    Attributes:
        k: Neighbours that vote.
        temperature: Vote weights are ``exp(cosine similarity / temperature)``.
        bank_size: At most this many labeled images form the bank.
        query_size: At most this many other labeled images are classified.
        batch_size: Images per forward pass; ``None`` takes the training batch of one
            process.
        seed: Seed of the fixed bank/query split (its own generator).
    """

    k: int = 20
    temperature: float = 0.1
    bank_size: int = 5000
    query_size: int = 1000
    batch_size: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("k", "bank_size", "query_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"val_args.{name} must be >= 1, got {getattr(self, name)}.")
        if self.temperature <= 0:
            raise ConfigError(f"val_args.temperature must be > 0, got {self.temperature}.")
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(f"val_args.batch_size must be >= 1, got {self.batch_size}.")
