"""``data_cache``: whether and where the decoded images of a run are kept after epoch 1."""

from __future__ import annotations

import logging

import torch

from lt_core import ConfigError
from lt_data._cache import ImageCache, available_host_memory

logger = logging.getLogger(__name__)

__all__ = ["DEVICE_FRACTION", "RAM_FRACTION", "make_cache", "resolve_cache"]

#: ``data_cache="auto"`` caches on the GPU when the cache takes at most this share of the
#: GPU memory that is free before training (the rest is for the model's activations).
DEVICE_FRACTION = 0.25
#: ... and in host memory when the caches of all processes of the machine take at most this
#: share of the available host memory (the loader workers and the OS need the rest).
RAM_FRACTION = 0.5
_EXPLICIT_FRACTION = 0.9  # an explicit request may use up to this share


def _gib(n: float) -> str:
    return f"{n / 2**30:.2f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def resolve_cache(
    requested: str,
    *,
    device: torch.device,
    nbytes: int,
    local_processes: int,
    epochs: int,
    quota_stream: bool,
    resumed: str | None = None,
) -> str:
    """The cache to use, ``"none"``, ``"ram"`` or ``"device"``, logged with the reason.

    Args:
        requested: The ``data_cache`` option.
        device: The training device of this process.
        nbytes: The size of this process's cache (its share of the decoded images).
        local_processes: Training processes on this machine (they share its host memory).
        epochs: Epochs of the run (one epoch has nothing to reuse).
        quota_stream: The data is a stream read in quotas of ``epoch_size`` (each epoch is
            meant to bring new samples).
        resumed: The cache the interrupted run used (``"auto"`` keeps it, so the resumed
            run draws the same batches).

    Raises:
        ConfigError: ``"ram"`` or ``"device"`` was asked for and does not fit.
    """
    on_gpu = device.type == "cuda"
    host = available_host_memory()
    need_host = nbytes * local_processes
    if requested == "auto" and resumed is not None:
        logger.info("Data cache: %s, as in the interrupted run.", resumed)
        return resumed
    if requested == "none":
        return "none"
    if requested == "device" and on_gpu:
        free = torch.cuda.mem_get_info(device)[0]
        if nbytes > _EXPLICIT_FRACTION * free:
            raise ConfigError(
                f"data_cache='device' needs {_gib(nbytes)} of GPU memory per process for the "
                f"decoded images, but only {_gib(free)} is free on {device}. Fix: "
                "data_cache='ram' or 'none', or a smaller decode_size."
            )
        logger.info(
            "Data cache: device (%s of decoded images per process, %.0f%% of the free GPU "
            "memory); epochs after the first read no files.",
            _gib(nbytes),
            100 * nbytes / free,
        )
        return "device"
    if requested in ("ram", "device"):  # "device" on the CPU is host memory
        if host is not None and need_host > _EXPLICIT_FRACTION * host:
            raise ConfigError(
                f"data_cache='{requested}' needs {_gib(need_host)} of host memory for the "
                f"decoded images ({local_processes} process(es) x {_gib(nbytes)}), but only "
                f"{_gib(host)} is available. Fix: data_cache='none', or a smaller decode_size."
            )
        logger.info(
            "Data cache: %s (%s of decoded images per process in host memory); epochs after "
            "the first read no files.",
            requested,
            _gib(nbytes),
        )
        return requested
    # auto
    why_not = ""
    if epochs <= 1:
        why_not = "the run has one epoch"
    elif quota_stream:
        why_not = "epoch_size reads new samples of the stream every epoch"
    if why_not:
        logger.info("Data cache: none (%s).", why_not)
        return "none"
    if on_gpu:
        free = torch.cuda.mem_get_info(device)[0]
        if nbytes <= DEVICE_FRACTION * free:
            logger.info(
                "Data cache: device (auto: %s of decoded images per process, %.0f%% of the "
                "free GPU memory; limit %.0f%%); epochs after the first read no files.",
                _gib(nbytes),
                100 * nbytes / free,
                100 * DEVICE_FRACTION,
            )
            return "device"
    if host is not None and need_host <= RAM_FRACTION * host:
        logger.info(
            "Data cache: ram (auto: %s of decoded images for %d process(es), %.0f%% of the "
            "available host memory; limit %.0f%%); epochs after the first read no files.",
            _gib(need_host),
            local_processes,
            100 * need_host / host,
            100 * RAM_FRACTION,
        )
        return "ram"
    logger.info(
        "Data cache: none (auto: the decoded images, %s, do not fit %.0f%% of the available "
        "host memory, %s). Every epoch reads and decodes the files.",
        _gib(need_host),
        100 * RAM_FRACTION,
        _gib(host) if host is not None else "unknown",
    )
    return "none"


def make_cache(
    mode: str, capacity: int, image_shape: tuple[int, int, int], device: torch.device
) -> ImageCache | None:
    """The cache of a resolved ``mode``: ``"device"`` on the training device; ``"ram"``
    in host memory (pageable: page-locking tens of GiB would slow the start and starve
    the OS)."""
    if mode == "none":
        return None
    if mode == "device":
        return ImageCache(capacity, image_shape, device=device)
    return ImageCache(capacity, image_shape, device="cpu")
