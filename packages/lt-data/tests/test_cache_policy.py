"""data_cache: what "auto" picks and why, and the errors of a cache that does not fit."""

from __future__ import annotations

import logging

import pytest
import torch

from lt_core import ConfigError
from lt_data import _cache_policy as _data_cache
from lt_data._cache_policy import make_cache, resolve_cache

CPU = torch.device("cpu")
GIB = 2**30


@pytest.fixture
def host_gib(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Pretend the machine has this much available host memory (GiB)."""
    value = [16.0]
    monkeypatch.setattr(_data_cache, "available_host_memory", lambda: int(value[0] * GIB))
    return value


def _resolve(requested: str, nbytes: float, **kwargs: object) -> str:
    options: dict[str, object] = {
        "device": CPU,
        "nbytes": int(nbytes),
        "local_processes": 1,
        "epochs": 10,
        "quota_stream": False,
    }
    options.update(kwargs)
    return resolve_cache(requested, **options)  # type: ignore[arg-type]


def test_auto_caches_what_fits_half_the_host_memory(
    host_gib: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="lt_data"):
        assert _resolve("auto", 7.9 * GIB) == "ram"
    assert "Data cache: ram (auto: 7.90 GiB" in caplog.text and "limit 50%" in caplog.text
    assert _resolve("auto", 8.1 * GIB) == "none"
    # Four processes on the machine share it: each may take an eighth.
    assert _resolve("auto", 1.9 * GIB, local_processes=4) == "ram"
    assert _resolve("auto", 2.1 * GIB, local_processes=4) == "none"


def test_auto_skips_runs_with_nothing_to_reuse(
    host_gib: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="lt_data"):
        assert _resolve("auto", 1e6, epochs=1) == "none"
        assert _resolve("auto", 1e6, quota_stream=True) == "none"
    assert "the run has one epoch" in caplog.text
    assert "epoch_size reads new samples" in caplog.text


def test_explicit_requests_and_the_error_when_they_do_not_fit(host_gib: list[float]) -> None:
    assert _resolve("none", 1e6) == "none"
    assert _resolve("ram", 14 * GIB, epochs=1) == "ram"
    assert _resolve("device", 1e6) == "device"  # on the CPU: host memory
    with pytest.raises(
        ConfigError,
        match=r"needs 40.00 GiB .* only 16.00 GiB is available.*"
        r"data_cache='none'",
    ):
        _resolve("ram", 10 * GIB, local_processes=4)


def test_a_resumed_run_keeps_its_cache(host_gib: list[float]) -> None:
    assert _resolve("auto", 1e6, resumed="none") == "none"
    assert _resolve("auto", 1e6, epochs=1, resumed="ram") == "ram"
    assert _resolve("none", 1e6, resumed="ram") == "none"  # an explicit choice wins


def test_make_cache() -> None:
    assert make_cache("none", 8, (3, 4, 4), CPU) is None
    cache = make_cache("ram", 8, (3, 4, 4), CPU)
    assert cache is not None and cache.images.shape == (8, 3, 4, 4)
    assert cache.images.device == CPU
