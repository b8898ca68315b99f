"""Helpers that write small test images with PIL."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

# Real CIFAR-10 JPEGs shipped with the repository (docs/quickstart_data).
CIFAR = Path(__file__).resolve().parents[3] / "docs" / "quickstart_data"


@pytest.fixture(autouse=True, scope="session")
def _one_torch_thread() -> Iterator[None]:
    """The test tensors are tiny: one intra-op thread avoids waiting on a second thread
    that a busy machine has descheduled (which made the view tests 5-10x slower)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def write_image() -> Callable[..., Path]:
    """``write_image(path, mode="RGB", size=(w, h), color=..., **save_kwargs)`` writes an
    image (random RGB noise when ``color`` is None) and returns its path."""

    def write(
        path: Path,
        mode: str = "RGB",
        size: tuple[int, int] = (32, 32),
        color: Any = None,
        **save_kwargs: Any,
    ) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        if color is None and mode == "RGB":
            img = Image.frombytes("RGB", size, os.urandom(size[0] * size[1] * 3))
        else:
            img = Image.new(mode, size, color if color is not None else 0)
        img.save(path, **save_kwargs)
        return path

    return write


@pytest.fixture
def real_jpegs(tmp_path: Path, write_image: Callable[..., Path]) -> list[Path]:
    """A few real 32x32 CIFAR-10 JPEGs copied to tmp_path/real (random PNGs if the
    repository's sample images are not available)."""
    out = tmp_path / "real"
    out.mkdir()
    sources = sorted(CIFAR.glob("*/*.jpg"))[::50][:6] if CIFAR.is_dir() else []
    files = []
    for i, src in enumerate(sources):
        dst = out / f"{src.parent.name}_{i}.jpg"
        dst.write_bytes(src.read_bytes())
        files.append(dst)
    for i in range(len(files), 6):
        files.append(write_image(out / f"random_{i}.png"))
    return files


@pytest.fixture
def cifar_jpegs() -> list[Path]:
    """All CIFAR-10 JPEGs of docs/quickstart_data, sorted (skips the test without them)."""
    files = sorted(CIFAR.glob("*/*.jpg")) if CIFAR.is_dir() else []
    if len(files) < 50:
        pytest.skip("docs/quickstart_data is not available")
    return files
