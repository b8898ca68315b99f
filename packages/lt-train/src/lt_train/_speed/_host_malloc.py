"""glibc's ``malloc`` during and after training: keep freed host memory in the process
while a CPU run trains, hand it back when ``train`` returns (glibc only, no-ops elsewhere).

glibc's ``malloc`` serves every block above its mmap threshold (128 KiB at first, raised up
to 32 MiB as such blocks are freed) with a fresh ``mmap`` and gives it back to the kernel on
``free``; it also trims the top of its heap back to the kernel once more than twice that
threshold is free there. A CPU training step allocates and frees the same large tensors
(activations, gradients, the views: 6 MiB each for 512 views of 32x32) again and again, so
every step touches fresh pages: on 2 cores a ResNet-18 step on 128 images of 32x32 took
17,000-24,000 page faults and 52-70 ms of kernel time, and a SimCLR view call on 256 images
4,500-8,500 faults.

:func:`keep_freed_memory` raises both thresholds with ``mallopt``: blocks up to
:data:`MMAP_THRESHOLD` come from the heap, and up to :data:`TRIM_THRESHOLD` of free heap is
kept for the next step. The process's peak memory is what the step needs either way (the
same to 2% in the measurement above); what changes is that memory freed during the run
stays with the process until ``train`` returns and trims the heap (:func:`trim_heap`).
The setting is process-wide and stays for the process's lifetime (DataLoader workers forked
after it inherit it). ``LIGHTLY_TRAIN_HOST_MALLOC=0`` in the environment leaves ``malloc``
as it is.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
from typing import Any

import torch

logger = logging.getLogger(__name__)

MMAP_THRESHOLD = 256 * 2**20  # blocks up to this size come from the heap, not from mmap
TRIM_THRESHOLD = 2**30  # free memory kept at the top of the heap
_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameter numbers (malloc.h)
_M_MMAP_THRESHOLD = -3
_ENV = "LIGHTLY_TRAIN_HOST_MALLOC"


def is_glibc() -> bool:
    """Whether this process runs on Linux with glibc (whose ``mallopt`` is used here)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        return os.confstr("CS_GNU_LIBC_VERSION") is not None
    except (ValueError, OSError):  # the name is unknown to a libc other than glibc
        return False


def keep_freed_memory_apply(device: torch.device) -> bool:
    """Whether a run on ``device`` calls :func:`keep_freed_memory`: on the CPU, on Linux
    with glibc, unless the environment variable ``LIGHTLY_TRAIN_HOST_MALLOC=0``."""
    return device.type == "cpu" and os.environ.get(_ENV, "1").strip() != "0" and is_glibc()


def keep_freed_memory() -> bool:
    """Raise glibc's mmap and trim thresholds (see the module docstring); returns whether
    glibc took both settings (``False`` off glibc or when ``mallopt`` refuses one)."""
    mallopt = _glibc_function("mallopt")
    if mallopt is None:
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    ok = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
    if not ok:
        logger.debug("glibc refused the malloc thresholds; malloc is left as it was.")
    return ok


def trim_heap() -> None:
    """Give the heap that the run freed (its optimizer state, activations, batches) back to
    the operating system: glibc keeps freed memory in its arenas (up to
    :data:`TRIM_THRESHOLD` after :func:`keep_freed_memory`), so a process that goes on after
    ``train`` (a notebook, a fine-tuning script) would hold it for nothing. Only with glibc;
    elsewhere a no-op."""
    trim = _glibc_function("malloc_trim")
    if trim is not None:
        trim(0)


def _glibc_function(name: str) -> Any:
    """The C function ``name`` of this process's glibc, or ``None`` off glibc."""
    if not is_glibc():
        return None
    try:
        return getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None
