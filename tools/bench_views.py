#!/usr/bin/env python3
"""Host time per call and top-level op count of the view transform (``lt_data``).

Prints, for the SimCLR and DINO recipes of ``lt_methods`` (default transform args), the
median wall time of one call on the CPU and the number of top-level operators it dispatches,
with the CPU kernels and with the kernels used on an accelerator (profiler events of the
``aten::`` / ``torchvision::`` namespaces that are not nested in another operator; a GPU
kernel launch each, roughly). With ``--old PATH``, a copy of an
earlier ``_views.py`` (for example the kornia pipeline, ``git show
860997a:packages/lt-data/src/lt_data/_views.py > /tmp/old_views.py``) is measured too.

Usage (from the repository root)::

    uv run python tools/bench_views.py [--old /tmp/old_views.py] [--repeats 5]
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile

import lt_methods
from lt_data._views import build_view_transform
from lt_train._speed._host_malloc import keep_freed_memory, keep_freed_memory_apply

# (name, method, batch size, input side, transform args): CIFAR-like and ImageNet-like
# batches (DINO at 32x32: local views of 14 px, as the trainer resolves them).
CASES = [
    ("simclr B=64 32x32", "simclr", 64, 32, {"image_size": (32, 32)}),
    ("simclr B=256 32x32", "simclr", 256, 32, {"image_size": (32, 32)}),
    ("dino   B=256 32x32", "dino", 256, 32, {"image_size": (32, 32)}),
    ("simclr B=32 224x224", "simclr", 32, 224, {}),
    ("dino   B=32 224x224", "dino", 32, 224, {}),
]


def top_level_ops(fn: Callable[[], Any]) -> int:
    """Operator events not nested in another operator event (see the module docstring)."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    count = 0
    for event in prof.events():
        if "::" not in event.name:
            continue
        parent = event.cpu_parent
        while parent is not None and "::" not in parent.name:
            parent = parent.cpu_parent
        count += parent is None
    return count


def seconds_per_call(fn: Callable[[], Any], repeats: int) -> float:
    fn()  # warm-up: lazy imports, constant tables
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def load_builder(path: str) -> Callable[..., Any]:
    spec = importlib.util.spec_from_file_location("old_views", Path(path))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_view_transform  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--old", help="path of an earlier _views.py to compare with")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    builders = {"new": build_view_transform}
    if args.old:
        builders = {"old": load_builder(args.old), **builders}
    # As the trainer on the CPU: without it, every call page-faults its large tensors.
    kept = keep_freed_memory_apply(torch.device("cpu")) and keep_freed_memory()
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, malloc keeps freed memory: {kept}"
    )
    print(
        f"{'case':22} {'impl':4} {'ms/call':>9} {'ops/call':>9} {'ops (accelerator kernels)':>26}"
    )
    for label, method, batch, side, targs in CASES:
        cls = lt_methods.get_method(method)
        recipe = cls.view_recipe(cls.TransformArgs(**targs))
        g = torch.Generator().manual_seed(0)
        images = torch.randint(0, 256, (batch, 3, side, side), dtype=torch.uint8, generator=g)
        for impl, build in builders.items():
            transform = build(recipe)
            call = functools.partial(transform, images)
            with torch.no_grad():
                ms = 1000 * seconds_per_call(call, args.repeats)
                ops = top_level_ops(call)
                launches = "-"
                if hasattr(transform, "_cpu_kernels"):  # the kernels used on a GPU
                    transform._cpu_kernels = False
                    call()
                    launches = str(top_level_ops(call))
            print(f"{label:22} {impl:4} {ms:9.1f} {ops:9d} {launches:>26}")


if __name__ == "__main__":
    main()
