"""Time lt_data.list_image_files on large folders of empty .jpg files.

Creates 100k, 300k and 1M empty files (1,000 per subfolder) in one temporary folder that
grows from size to size (creating them is not measured), and lists each size in a fresh
subprocess. Prints the seconds and the extra peak memory of the listing: the process's peak
RSS (ru_maxrss) after listing minus after ``import lt_data``. The file system cache is warm
(the files were just created).

    uv run python tools/bench_listing.py                  # 100k, 300k, 1M
    uv run python tools/bench_listing.py --sizes 10000 --repeat 3 --dir /mnt/nfs/tmp
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PER_FOLDER = 1000

_CHILD = """
import json, resource, sys, time
import lt_data
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
files = lt_data.list_image_files(sys.argv[1])
seconds = time.perf_counter() - start
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"files": len(files), "seconds": seconds, "extra_mb": (after - before) / 1024,
                  "list_mb": files.nbytes / 2**20}))
"""


def grow(root: Path, count: int) -> None:
    """Add empty files under ``root`` until it holds ``count`` (1,000 per subfolder)."""
    have = sum(1 for _ in root.glob("*/*.jpg"))
    for i in range(have, count):
        folder = root / f"d{i // PER_FOLDER:05d}"
        if i % PER_FOLDER == 0:
            folder.mkdir(exist_ok=True)
        os.close(os.open(folder / f"img_{i:07d}.jpg", os.O_CREAT | os.O_WRONLY, 0o644))


def measure(root: Path) -> dict[str, float]:
    """List ``root`` in a fresh interpreter and return its figures."""
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(root)], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    parser.add_argument("--repeat", type=int, default=1, help="listings per size (best kept)")
    parser.add_argument("--dir", default=None, help="where to create the temporary folder")
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    print(f"{'files':>10} {'seconds':>8} {'extra peak MB':>14} {'FileList MB':>12}")
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="bench_listing_") as tmp:
        root = Path(tmp) / "images"
        root.mkdir()
        for size in sorted(args.sizes):
            start = time.perf_counter()
            grow(root, size)
            created = time.perf_counter() - start
            runs = [measure(root) for _ in range(args.repeat)]
            best = min(runs, key=lambda r: r["seconds"])
            assert best["files"] == size, best
            print(
                f"{size:>10,} {best['seconds']:>8.2f} {best['extra_mb']:>14.1f} "
                f"{best['list_mb']:>12.1f}   (creating the files took {created:.0f} s)",
                flush=True,
            )


if __name__ == "__main__":
    main()
