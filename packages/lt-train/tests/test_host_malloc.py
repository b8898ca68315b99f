"""Freed host memory kept in the process during CPU training (``_host_malloc``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from _tiny import tiny_config, write_images

from lt_train import _train, _trainer, train
from lt_train._speed import _host_malloc
from lt_train._speed._host_malloc import is_glibc, keep_freed_memory_apply

needs_glibc = pytest.mark.skipif(not is_glibc(), reason="mallopt is glibc's")

# Page faults of 3 rounds of allocating, touching and freeing two 40 MiB tensors (above
# glibc's largest automatic mmap threshold, 32 MiB), before and after keep_freed_memory().
_FAULTS = textwrap.dedent(
    """
    import importlib.util, json, resource, sys, torch

    # The module alone, without lt_train's package imports (lightning: seconds).
    spec = importlib.util.spec_from_file_location("_host_malloc", sys.argv[1])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def faults():
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(3):
            tensors = [torch.ones(10 * 2**20) for _ in range(2)]
            del tensors
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

    default = faults()
    applied = module.keep_freed_memory()
    for _ in range(4):  # the heap grows to its working size in the first 1-3 rounds
        faults()
    print(json.dumps({"default": default, "applied": applied, "kept": faults()}))
    """
)


@needs_glibc
def test_freed_blocks_are_reused_without_page_faults() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    done = subprocess.run(
        [sys.executable, "-c", _FAULTS, _host_malloc.__file__],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["applied"]
    # 6 x 40 MiB of fresh pages is 60,000 faults of 4 KiB (fewer with huge pages).
    assert result["default"] > 1000, result
    assert result["kept"] < result["default"] / 20, result


def test_where_it_applies(monkeypatch: pytest.MonkeyPatch) -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert keep_freed_memory_apply(cpu) == is_glibc()
    assert not keep_freed_memory_apply(cuda)
    monkeypatch.setenv("LIGHTLY_TRAIN_HOST_MALLOC", "0")
    assert not keep_freed_memory_apply(cpu)


@needs_glibc
@pytest.mark.parametrize("setting", ["1", "0"])
def test_a_cpu_run_applies_it_unless_turned_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setting: str
) -> None:
    calls: list[bool] = []
    trims: list[bool] = []
    monkeypatch.setattr(_trainer, "keep_freed_memory", lambda: calls.append(True) or True)
    monkeypatch.setattr(_train, "trim_heap", lambda: trims.append(True))
    monkeypatch.setenv("LIGHTLY_TRAIN_HOST_MALLOC", setting)
    train(tiny_config(tmp_path / "out", write_images(tmp_path / "images", 8)))
    assert calls == ([True] if setting == "1" else [])
    assert trims == [True]  # the freed heap goes back when train() returns, either way
