"""Files that are either complete or absent: write to a temporary file in the destination
folder, fsync, rename. A kill at any moment leaves the previous file (or none), never a
truncated one; the temporary file is removed on failure and swept up by the next run if the
process was killed."""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import torch

__all__ = [
    "TEMP_MARKER",
    "atomic_torch_save",
    "atomic_write",
    "atomic_write_text",
    "fsync_dir",
    "remove_temp_files",
]

#: Part of the name of every temporary file: ``.<name>.tmp-<pid>-<random>``.
TEMP_MARKER = ".tmp-"


def fsync_dir(folder: Path) -> None:
    """Make a rename inside ``folder`` durable (no-op where directories cannot be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


@contextlib.contextmanager
def _temp_file(path: Path) -> Iterator[tuple[IO[bytes], Path]]:
    tmp = path.parent / f".{path.name}{TEMP_MARKER}{os.getpid()}-{secrets.token_hex(4)}"
    try:
        with tmp.open("xb") as f:
            yield f, tmp
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], Any]) -> None:
    """Call ``write(file)`` on a temporary file next to ``path`` and rename it to ``path``.

    The temporary file lives in the destination folder, so the rename never crosses a
    filesystem (``TMPDIR`` plays no part) and replaces ``path`` in one step.
    """
    path = Path(path)
    with _temp_file(path) as (f, _):
        write(f)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    data = text.encode("utf-8")
    atomic_write(path, lambda f: f.write(data))


def atomic_torch_save(obj: Any, path: str | os.PathLike[str]) -> None:
    """``torch.save(obj, path)``, atomically (streamed to the temporary file, no copy in
    memory)."""
    atomic_write(path, lambda f: torch.save(obj, f))


def remove_temp_files(*folders: Path) -> list[Path]:
    """Delete temporary files that a killed process left in ``folders``; return them."""
    removed: list[Path] = []
    for folder in folders:
        if not folder.is_dir():
            continue
        for entry in folder.iterdir():
            if entry.name.startswith(".") and TEMP_MARKER in entry.name and entry.is_file():
                with contextlib.suppress(OSError):
                    entry.unlink()
                    removed.append(entry)
    return removed
