"""Files that are either complete or absent: write to a temporary file in the destination
folder, fsync, rename. A kill at any moment leaves the previous file (or none), never a
truncated one; the temporary file is removed on failure and swept up by the next run if the
process was killed."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import torch

logger = logging.getLogger(__name__)

__all__ = [
    "TEMP_MARKER",
    "DiskFullError",
    "atomic_torch_save",
    "atomic_write",
    "atomic_write_text",
    "check_free_space",
    "fsync_dir",
    "remove_temp_files",
    "torch_save_size",
]

#: Free bytes below which a failed write counts as a full disk (torch's zip writer reports
#: a full disk as a RuntimeError, "unexpected pos ..." or "file write failed").
_FULL_BELOW = 4 * 2**20

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


class DiskFullError(OSError):
    """The filesystem of a file being written is full (``errno.ENOSPC``); the file was not
    written and its temporary file is removed. ``str()`` is one line that names the
    filesystem, the file, the bytes needed and free."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.ENOSPC, message)
        self.message = message

    def __str__(self) -> str:
        return self.message

    def with_note(self, note: str) -> DiskFullError:
        """The same error with ``note`` appended (e.g. which earlier file is kept)."""
        error = DiskFullError(f"{self.message}; {note}")
        error.__cause__ = self.__cause__
        return error


def _mount_point(folder: Path) -> Path:
    path = folder.resolve()
    while not os.path.ismount(path) and path.parent != path:
        path = path.parent
    return path


def _fs_name(folder: Path) -> str:
    """``"<mount point> (<fs type>)"`` of ``folder`` (the type where /proc/mounts says)."""
    mount = _mount_point(folder)
    kind = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/mounts").read_text().splitlines():
            fields = line.split()
            if len(fields) > 2 and fields[1] == str(mount):
                kind = fields[2]
    return f"{mount} ({kind})" if kind else str(mount)


def _mb(size: int) -> str:
    return f"{size / 1e6:.0f} MB" if size >= 10e6 else f"{size / 1e6:.2f} MB"


def _free(folder: Path) -> int | None:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def _disk_full_message(path: Path, needed: int | None, free: int | None) -> str:
    sizes = []
    if needed:
        sizes.append(f"{_mb(needed)} needed")
    if free is not None:
        sizes.append(f"{_mb(free)} free")
    detail = f": {', '.join(sizes)}" if sizes else ""
    return f"No space left on {_fs_name(path.parent)} while writing {path}{detail}"


def _is_disk_full(error: BaseException, folder: Path, written: int) -> bool:
    """Whether ``error`` comes from a full disk: an ``ENOSPC``/``EDQUOT`` anywhere in its
    chain, or torch's writer failing while the filesystem has (almost) no room left."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        seen = seen.__cause__ or seen.__context__
    if isinstance(error, RuntimeError):
        free = _free(folder)
        return free is not None and free < max(_FULL_BELOW, written // 100)
    return False


def _interrupt_in(error: BaseException) -> KeyboardInterrupt | None:
    """A KeyboardInterrupt that ``error`` masks (torch's zip writer raises a RuntimeError
    when it is closed after an interrupted write)."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, KeyboardInterrupt):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


@contextlib.contextmanager
def _temp_file(path: Path, needed: int | None = None) -> Iterator[tuple[IO[bytes], Path]]:
    tmp = path.parent / f".{path.name}{TEMP_MARKER}{os.getpid()}-{secrets.token_hex(4)}"
    try:
        with tmp.open("xb") as f:
            yield f, tmp
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        written = 0
        with contextlib.suppress(OSError):
            written = tmp.stat().st_size
        full = isinstance(e, OSError | RuntimeError) and _is_disk_full(e, path.parent, written)
        with contextlib.suppress(OSError):
            tmp.unlink()
        interrupt = _interrupt_in(e)
        if interrupt is not None and interrupt is not e:
            raise interrupt from None
        if full and not isinstance(e, DiskFullError):
            message = _disk_full_message(path, needed or written or None, _free(path.parent))
            raise DiskFullError(message) from e
        raise
    fsync_dir(path.parent)


def atomic_write(
    path: str | os.PathLike[str],
    write: Callable[[IO[bytes]], Any],
    needed: int | None = None,
) -> None:
    """Call ``write(file)`` on a temporary file next to ``path`` and rename it to ``path``.

    The temporary file lives in the destination folder, so the rename never crosses a
    filesystem (``TMPDIR`` plays no part) and replaces ``path`` in one step. A full disk
    raises :class:`DiskFullError` (``needed``, the expected size, goes into its message).
    """
    path = Path(path)
    with _temp_file(path, needed) as (f, _):
        write(f)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    data = text.encode("utf-8")
    atomic_write(path, lambda f: f.write(data))


def atomic_torch_save(obj: Any, path: str | os.PathLike[str], needed: int | None = None) -> None:
    """``torch.save(obj, path)``, atomically (streamed to the temporary file, no copy in
    memory)."""
    atomic_write(path, lambda f: torch.save(obj, f), needed or torch_save_size(obj))


def torch_save_size(obj: Any) -> int:
    """About the bytes ``torch.save(obj)`` writes: its tensors' bytes (the rest is small)."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(torch_save_size(v) for v in obj.values())
    if isinstance(obj, list | tuple):
        return sum(torch_save_size(v) for v in obj)
    return 0


def check_free_space(folder: Path, needed: int, what: str | None) -> bool:
    """Whether ``folder``'s filesystem has ``needed`` bytes free (``shutil.disk_usage``:
    one system call); if not, warn that ``what`` will not fit (unless ``None``). A warning
    only: some network and FUSE filesystems report no or wrong free space."""
    free = _free(folder)
    if free is None or free >= needed:
        return True
    if what is None:
        return False
    logger.warning(
        "Low disk space: %s needs about %s, but %s has %s free. Free some space, or the "
        "write will fail (the previous file is kept).",
        what,
        _mb(needed),
        _fs_name(folder),
        _mb(free),
    )
    return False


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
