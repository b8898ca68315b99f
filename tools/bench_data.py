#!/usr/bin/env python3
"""Images per second of the data path alone (no model): decoding plus a method's views.

For each method (``simclr``, ``dino``; the views of ``lt_methods`` at ``--image-size``, DINO's
local views at the size our trainer resolves ``local_view.view_size="auto"`` to), these rows
are timed, each for ``--epochs-timed`` epochs after one warm-up epoch:

- ``folder``: :class:`lt_data.ImageDataset` over the image files, a ``DataLoader`` with
  :func:`lt_data.collate_images` (shuffled, persistent workers, prefetch as in the trainer)
  and :func:`lt_data.build_view_transform` applied to each batch on ``--device``.
- ``shards``: the same images written once into WebDataset shards with
  :func:`lt_data.make_shards` (a temporary folder), read with
  :class:`lt_data.WebImageDataset` (shuffle buffer 1000, ``set_epoch`` each epoch, workers
  restarted each epoch as the trainer does for streams) and the same loader and views.
- ``cache``: an :class:`lt_data.ImageCache` filled during the warm-up epoch of ``folder``,
  then ``cache.batches(...)`` straight into the view transform: no loader, no decoding.
- ``peer``: lightly-train 0.18.0's own pipeline (its ``ImageDataset`` over a memory-mapped
  file list, its albumentations ``SimCLRTransform`` / ``DINOTransform`` run per image in
  the DataLoader workers, its ``get_dataloader``) in a child process run with the peer's
  interpreter (``--peer-python``); the child only imports and calls the peer's code.

images/s counts source images (not views) per second of the timed epochs; every loader drops
its last partial batch. The line ``cache / folder at SxS`` is the speed-up of the RAM cache
(the project's target: >= 5x at 32x32 on a 2-core CPU). With ``--listing`` the listing
benchmark ``tools/bench_listing.py`` (1M files, slow) runs too.

Usage (from the repository root)::

    .venv/bin/python tools/bench_data.py                       # 5000 CIFAR-10 images, 32x32
    .venv/bin/python tools/bench_data.py --limit 2000 --rows folder,cache --methods simclr
    .venv/bin/python tools/bench_data.py --device cuda --workers 8 --image-size 64

The peer row needs a separate environment::

    uv venv -p 3.11 /work/peer-venv && VIRTUAL_ENV=/work/peer-venv uv pip install lightly-train==0.18.0
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import DataLoader

import lt_core
import lt_data
import lt_methods
from lt_train._speed._host_malloc import keep_freed_memory, keep_freed_memory_apply

ROWS = ("folder", "shards", "cache", "peer")
METHODS = ("simclr", "dino")
DEFAULT_DATA = "/work/shared/data/cifar10-train"
DEFAULT_PEER_PYTHON = "/work/peer-venv/bin/python"
PEER_SETUP = (
    "uv venv -p 3.11 /work/peer-venv && "
    "VIRTUAL_ENV=/work/peer-venv uv pip install lightly-train==0.18.0"
)
REPO_ROOT = Path(__file__).resolve().parent.parent

# The child run by the peer's interpreter: it only imports and calls lightly_train 0.18.0.
PEER_CHILD = textwrap.dedent(
    """
    import json, sys, time
    from pathlib import Path

    import torch
    from lightly_train._commands import common_helpers, train_helpers

    cfg = json.loads(Path(sys.argv[1]).read_text())
    files = Path(cfg["file_list"]).read_text().splitlines()
    torch.manual_seed(cfg["seed"])
    if cfg["threads"]:
        torch.set_num_threads(cfg["threads"])
    overrides = {"image_size": (cfg["image_size"], cfg["image_size"])}
    if cfg["local_size"] is not None:
        overrides["local_view"] = {"view_size": (cfg["local_size"], cfg["local_size"])}
    # What lightly_train.train does: resolve the method's transform args, build its transform.
    transform_args = train_helpers.get_transform_args(cfg["method"], overrides)
    transform = train_helpers.get_transform(cfg["method"], transform_args)
    notes = [f"{type(transform).__name__}({type(transform_args).__name__})"]
    tmp = Path(cfg["tmp_dir"])
    try:  # its dataset path: ImageDataset over a memory-mapped list of the files
        dataset = common_helpers.get_dataset(
            data=files,
            transform=transform,
            num_channels=3,
            mmap_filepath=tmp / f"peer_{cfg['method']}.mmap",
            out_dir=tmp,
            resume_interrupted=False,
            overwrite=False,
        )
        notes.append(f"common_helpers.get_dataset -> {type(dataset).__name__}")
    except Exception as e:  # fall back to the class itself over a plain list
        from lightly_train._data.image_dataset import ImageDataset

        dataset = ImageDataset(None, files, transform, num_channels=3)
        notes.append(f"ImageDataset over a list (get_dataset failed: {type(e).__name__}: {e})")
    workers = cfg["workers"]
    loader_args = {"persistent_workers": True} if workers > 0 else {}
    if workers > 0:
        loader_args["prefetch_factor"] = cfg["prefetch_factor"]
    # Its DataLoader: shuffle=True, drop_last=True, default collate, + our loader_args.
    loader = train_helpers.get_dataloader(dataset, cfg["batch_size"], workers, loader_args)
    device = torch.device(cfg["device"])
    num_views = 0

    def epoch():
        global num_views
        images = 0
        for batch in loader:
            views = [v.to(device, non_blocking=True) for v in batch["views"]]
            num_views = len(views)
            images += len(views[0])
        if device.type == "cuda":
            torch.cuda.synchronize()
        return images

    epoch()  # warm-up: starts the workers
    images, seconds, best = 0, 0.0, 0.0
    for _ in range(cfg["epochs_timed"]):
        start = time.perf_counter()
        n = epoch()
        elapsed = time.perf_counter() - start
        images, seconds, best = images + n, seconds + elapsed, max(best, n / elapsed)
    import lightly_train

    print(json.dumps({
        "images": images, "seconds": seconds, "views": num_views, "notes": notes, "best": best,
        "version": lightly_train.__version__, "torch": torch.__version__,
    }))
    """
)


@dataclass
class Result:
    """One timed row."""

    method: str
    row: str
    images: int = 0
    seconds: float = 0.0
    views: int = 0
    note: str = ""
    skipped: str | None = None
    best: float = 0.0
    """images/s of the fastest timed epoch."""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float | None:
        if self.skipped is not None or self.seconds <= 0:
            return None
        return self.images / self.seconds


def usable_cores() -> int:
    """The cores this process may use (affinity, cgroups), else ``os.cpu_count()``."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def default_workers() -> int:
    """The usable cores minus one for the main process, at least 1."""
    return max(1, usable_cores() - 1)


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return cpu_name()


def pick_files(data: str, limit: int) -> list[str]:
    """``limit`` files spread evenly over the sorted listing (all classes of CIFAR-10)."""
    files = lt_data.list_image_files(data)
    n = len(files)
    if limit <= 0 or limit >= n:
        return [files[i] for i in range(n)]
    return [files[i * n // limit] for i in range(limit)]


def build_recipe(method: str, size: int) -> tuple[list[lt_core.ViewConfig], int | None]:
    """The method's view recipe at ``size`` (defaults otherwise) and DINO's local view side."""
    cls = lt_methods.get_method(method)
    args = lt_core.from_dict(cls.TransformArgs, {"image_size": [size, size]}, "transform_args")
    recipe = cls.view_recipe(args)
    local_size = args.local_size() if hasattr(args, "local_size") else None
    local = None
    if local_size is not None:
        if local_size[0] != local_size[1]:
            raise SystemExit(f"Non-square DINO local views {local_size} are not supported here.")
        local = int(local_size[0])
    return recipe, local


def recipe_text(recipe: list[lt_core.ViewConfig]) -> str:
    return " + ".join(f"{c.num_views}x{c.size[0]}x{c.size[1]}" for c in recipe)


def loader_options(workers: int, persistent: bool) -> dict[str, Any]:
    """Persistent workers and prefetch as ``lt_train`` sets them (at least 8 batches)."""
    if workers == 0:
        return {}
    return {"persistent_workers": persistent, "prefetch_factor": max(2, -(-8 // workers))}


def time_epochs(
    batches: Callable[[int], Iterable[Tensor]],
    transform: torch.nn.Module,
    device: torch.device,
    epochs_timed: int,
    warmup: Callable[[Tensor], None] | None = None,
) -> tuple[int, float, int, float]:
    """Run one warm-up epoch (``warmup`` sees its uint8 batches) and ``epochs_timed`` timed
    ones; returns the images and seconds of the timed epochs, the views per image and the
    images/s of the fastest timed epoch."""
    num_views = 0

    def epoch(index: int, hook: Callable[[Tensor], None] | None) -> int:
        nonlocal num_views
        images = 0
        for batch in batches(index):
            if hook is not None:
                hook(batch)
            views = transform(batch.to(device, non_blocking=True))
            num_views = len(views)
            images += len(batch)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return images

    epoch(0, warmup)
    images, seconds, best = 0, 0.0, 0.0
    for e in range(1, epochs_timed + 1):
        start = time.perf_counter()
        n = epoch(e, None)
        elapsed = time.perf_counter() - start
        images, seconds, best = images + n, seconds + elapsed, max(best, n / elapsed)
    return images, seconds, num_views, best


def images_of(loader: DataLoader[Any]) -> Iterator[Tensor]:
    for batch in loader:
        if len(batch["images"]):
            yield batch["images"]


def make_loader(dataset: Any, args: argparse.Namespace, persistent: bool) -> DataLoader[Any]:
    shuffle = isinstance(dataset, lt_data.ImageDataset)
    return DataLoader(
        dataset,
        batch_size=args.batch_size,
        shuffle=shuffle,
        drop_last=True,
        num_workers=args.workers,
        collate_fn=lt_data.collate_images,
        pin_memory=args.device.type == "cuda",
        generator=torch.Generator().manual_seed(args.seed) if shuffle else None,
        **loader_options(args.workers, persistent),
    )


def set_threads(args: argparse.Namespace, loader: bool) -> None:
    """``--threads -1`` (default) gives the views the cores the workers leave free while a
    loader runs (no oversubscription) and all cores to the cache row, which has no
    workers (the trainer keeps torch's default, all cores, in both cases)."""
    if args.threads == -1 and args.device.type == "cpu":
        cores = usable_cores()
        torch.set_num_threads(max(1, cores - args.workers) if loader else cores)


def run_ours(
    method: str,
    files: list[str],
    shards: list[str] | None,
    args: argparse.Namespace,
) -> list[Result]:
    """The ``folder``, ``cache`` and ``shards`` rows of one method."""
    size = (args.image_size, args.image_size)
    recipe, _ = build_recipe(method, args.image_size)
    transform = build_view_transform_on(recipe, args.device)
    results: list[Result] = []
    rows = args.rows
    torch.manual_seed(args.seed)

    cache: lt_data.ImageCache | None = None
    set_threads(args, loader=True)
    if "folder" in rows or "cache" in rows:
        dataset = lt_data.ImageDataset(files, size)
        loader = make_loader(dataset, args, persistent=True)
        if "cache" in rows:
            cache = lt_data.ImageCache(len(dataset), (3, *size), device=args.device)
        images, seconds, views, best = time_epochs(
            lambda _: images_of(loader),
            transform,
            args.device,
            args.epochs_timed,
            warmup=cache.add if cache is not None else None,
        )
        del loader  # stops the persistent workers
        if "folder" in rows:
            results.append(Result(method, "folder", images, seconds, views, best=best))
    if cache is not None:
        set_threads(args, loader=False)
        cache.seal()
        n_batches = max(1, cache.count // args.batch_size)
        images, seconds, views, best = time_epochs(
            lambda e: cache.batches(args.batch_size, n_batches, seed=e + args.seed),
            transform,
            args.device,
            args.epochs_timed,
        )
        note = f"{cache.count} cached, {cache.images.nbytes / 2**20:.0f} MiB on {args.device}"
        results.append(Result(method, "cache", images, seconds, views, note, best=best))
    if "shards" in rows and shards is not None:
        set_threads(args, loader=True)
        stream = lt_data.WebImageDataset(
            shards, size, shuffle_buffer=1000, seed=args.seed, rank=0, world_size=1
        )
        # Workers restart each epoch to see set_epoch, as the trainer does for streams.
        loader = make_loader(stream, args, persistent=False)

        def stream_epoch(epoch: int) -> Iterator[Tensor]:
            stream.set_epoch(epoch)
            return images_of(loader)

        images, seconds, views, best = time_epochs(
            stream_epoch, transform, args.device, args.epochs_timed
        )
        note = f"{len(shards)} shards"
        results.append(Result(method, "shards", images, seconds, views, note, best=best))
    return results


def build_view_transform_on(
    recipe: list[lt_core.ViewConfig], device: torch.device
) -> torch.nn.Module:
    return lt_data.build_view_transform(recipe).to(device)


def write_shards(files: list[str], out: Path, workers: int) -> tuple[list[str], float]:
    """Shards of the files, four per DataLoader worker; returns them and the seconds taken."""
    per_shard = max(1, math.ceil(len(files) / (4 * max(1, workers))))
    start = time.perf_counter()
    stats = lt_data.make_shards(files, out, max_count=per_shard, progress=False)
    return stats.shards, time.perf_counter() - start


def run_peer(method: str, files_path: Path, tmp: Path, args: argparse.Namespace) -> Result:
    """The ``peer`` row: lightly-train's own data path in a child process."""
    python = Path(args.peer_python)
    if not python.exists():
        return Result(
            method,
            "peer",
            skipped=f"{python} does not exist; create it with: {PEER_SETUP}",
        )
    _, local = build_recipe(method, args.image_size)
    config = {
        "method": method,
        "file_list": str(files_path),
        "tmp_dir": str(tmp),
        "image_size": args.image_size,
        "local_size": local,
        "batch_size": args.batch_size,
        "workers": args.workers,
        "prefetch_factor": max(2, -(-8 // args.workers)) if args.workers else None,
        "epochs_timed": args.epochs_timed,
        "seed": args.seed,
        "threads": max(args.threads, 0),  # the peer: its own default
        "device": str(args.device),
    }
    child = tmp / "peer_child.py"
    child.write_text(PEER_CHILD)
    config_path = tmp / f"peer_{method}.json"
    config_path.write_text(json.dumps(config))
    proc = subprocess.run(
        [str(python), str(child), str(config_path)],
        cwd=tmp,  # not inside the peer's package folder (its types.py shadows the stdlib's)
        capture_output=True,
        text=True,
        timeout=args.peer_timeout,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        return Result(method, "peer", skipped="child failed: " + " | ".join(tail))
    out = json.loads(lines[-1])
    notes = list(out["notes"])
    if local is not None:
        notes.append(f"local_view.view_size=({local}, {local}) (peer default 96)")
    return Result(
        method,
        "peer",
        out["images"],
        out["seconds"],
        out["views"],
        "; ".join(notes),
        best=out["best"],
        extra={"version": out["version"], "torch": out["torch"]},
    )


def print_table(results: list[Result], size: int) -> None:
    print()
    print(f"{'method':<8} {'row':<8} {'images/s':>10} {'x folder':>9} {'views':>6}  notes")
    folder = {r.method: r.rate for r in results if r.row == "folder"}
    for r in results:
        if r.rate is None:
            print(f"{r.method:<8} {r.row:<8} {'-':>10} {'-':>9} {'-':>6}  skipped: {r.skipped}")
            continue
        base = folder.get(r.method)
        ratio = f"{r.rate / base:.2f}x" if base else "-"
        note = f"{r.images} images in {r.seconds:.2f} s"
        if r.best and abs(r.best - r.rate) > 0.01 * r.rate:
            note += f" (best epoch {r.best:,.0f}/s)"
        note += f"; {r.note}" if r.note else ""
        print(f"{r.method:<8} {r.row:<8} {r.rate:>10,.0f} {ratio:>9} {r.views:>6}  {note}")
    print()
    for method in dict.fromkeys(r.method for r in results):
        cache = next((r.rate for r in results if r.method == method and r.row == "cache"), None)
        base = folder.get(method)
        if cache and base:
            print(f"cache / folder at {size}x{size}: {cache / base:.1f}x ({method})")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data", default=DEFAULT_DATA, help="folder of images")
    parser.add_argument("--limit", type=int, default=5000, help="images used (0: all)")
    parser.add_argument("--image-size", type=int, default=32, help="decoded and view side")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated")
    parser.add_argument("--rows", default=",".join(ROWS), help="comma-separated: " + ",".join(ROWS))
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument(
        "--workers", type=int, default=None, help="DataLoader workers (default: cores - 1, >= 1)"
    )
    parser.add_argument("--device", default="cpu", help="where the views are made")
    parser.add_argument("--epochs-timed", type=int, default=1, help="after one warm-up epoch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads",
        type=int,
        default=-1,
        help="torch intra-op threads of the main process: -1 the cores the workers leave free "
        "while a loader runs and all cores for the cache row, 0 torch's default",
    )
    parser.add_argument("--peer-python", default=DEFAULT_PEER_PYTHON)
    parser.add_argument("--peer-timeout", type=float, default=900.0, help="seconds per method")
    parser.add_argument("--tmp-dir", default=None, help="where the shards are written")
    parser.add_argument(
        "--listing", action="store_true", help="also run tools/bench_listing.py (1M files)"
    )
    args = parser.parse_args(argv)
    args.rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    for row in args.rows:
        if row not in ROWS:
            parser.error(f"unknown row {row!r}; choose from {', '.join(ROWS)}")
    for method in args.methods:
        if method not in lt_methods.list_methods():
            parser.error(f"unknown method {method!r}; choose from {lt_methods.list_methods()}")
    if args.workers is None:
        args.workers = default_workers()
    if args.workers < 0 or args.batch_size < 1 or args.epochs_timed < 1 or args.image_size < 1:
        parser.error("--workers >= 0, --batch-size, --epochs-timed and --image-size >= 1")
    args.device = torch.device(args.device)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    size = args.image_size
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    print(
        f"machine: {usable_cores()} usable CPU(s) "
        f"(os.cpu_count()={os.cpu_count()}), {cpu_name()}; Python {sys.version.split()[0]}, "
        f"torch {torch.__version__} ({torch.get_num_threads()} intra-op threads); "
        f"device {args.device} = {device_name(args.device)}; load average {load_average()}"
    )
    if (
        args.threads >= 0
        and args.device.type == "cpu"
        and torch.get_num_threads() + args.workers > usable_cores()
    ):
        print(
            f"note: {torch.get_num_threads()} intra-op threads making the views + "
            f"{args.workers} worker(s) > {usable_cores()} cores; on a busy machine "
            "--threads 1 can be much faster (the cache row has no workers)"
        )
    if keep_freed_memory_apply(args.device):  # as the trainer does on the CPU
        print(f"glibc malloc keeps freed memory (trainer default): {keep_freed_memory()}")
    files = pick_files(args.data, args.limit)
    print(
        f"data: {len(files)} images of {args.data}, decoded to {size}x{size}; batch "
        f"{args.batch_size}, {args.workers} worker(s), {args.epochs_timed} timed epoch(s) "
        "after 1 warm-up epoch"
    )
    for method in args.methods:
        recipe, _ = build_recipe(method, size)
        print(f"views {method}: {recipe_text(recipe)}")

    results: list[Result] = []
    with tempfile.TemporaryDirectory(dir=args.tmp_dir, prefix="bench_data_") as tmp_name:
        tmp = Path(tmp_name)
        shards = None
        if "shards" in args.rows:
            shards, seconds = write_shards(files, tmp / "shards", args.workers)
            print(f"make_shards: {len(shards)} shard(s) in {seconds:.1f} s")
        files_path = tmp / "files.txt"
        files_path.write_text("\n".join(files) + "\n")
        for method in args.methods:
            start = time.perf_counter()
            mine = run_ours(method, files, shards, args)
            order = {row: i for i, row in enumerate(ROWS)}
            results.extend(sorted(mine, key=lambda r: order[r.row]))
            print(f"{method}: our rows took {time.perf_counter() - start:.0f} s", flush=True)
            if "peer" in args.rows:
                start = time.perf_counter()
                results.append(run_peer(method, files_path, tmp, args))
                print(f"{method}: peer row took {time.perf_counter() - start:.0f} s", flush=True)
    peer = next((r for r in results if r.row == "peer" and r.rate is not None), None)
    if peer is not None:
        print(
            f"peer: lightly-train {peer.extra['version']}, torch {peer.extra['torch']} "
            f"({args.peer_python}); views made per image in its DataLoader workers, with "
            "persistent_workers and the same prefetch passed as loader_args"
        )
    print_table(results, size)
    print(f"load average at the end: {load_average()} (other processes skew the figures)")

    listing = [sys.executable, str(REPO_ROOT / "tools" / "bench_listing.py")]
    if args.listing:
        print("\nlisting (tools/bench_listing.py):", flush=True)
        subprocess.run(listing, check=True)
    else:
        print(f"\nlisting figures (slow, creates 1M files): {' '.join(listing)}")


if __name__ == "__main__":
    main()
