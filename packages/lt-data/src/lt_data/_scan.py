"""Walk a folder tree with a thread pool and list its image files in path-component order.

Two phases keep the result deterministic although folders are scanned in any order:

1. Scan: every folder reachable from the root (following symbolic links) is read once,
   identified by its device and inode, in a thread pool (``os.scandir`` releases the GIL
   while it reads the directory, which pays most on network and cold file systems). A
   folder's image names are sorted and packed into one ``bytes`` run per gap between
   subfolders, so no Python object per file survives the scan of its folder.
2. Assemble: a depth-first walk in name order writes ``folder path + name`` into one
   buffer. A folder reachable through several paths (links) is listed under the first
   path in that order only.
"""

from __future__ import annotations

import logging
import os
import queue
from array import array
from bisect import bisect_left
from collections.abc import Collection, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import accumulate, islice

from lt_data._filelist import FileList

__all__ = ["ScanResult", "scan_images"]

logger = logging.getLogger(__name__)

_SEP = os.sep.encode()
_RUN_SEP = b"\0"  # cannot occur in a file name


@dataclass(slots=True)
class _Subdir:
    name: bytes
    key: tuple[int, int]  # (st_dev, st_ino) of the folder the entry leads to


@dataclass(slots=True)
class _Folder:
    # Runs of image names joined by _RUN_SEP and subfolders, all in name order.
    items: list[bytes | _Subdir] = field(default_factory=list)
    num_others: int = 0
    other_exts: set[str] = field(default_factory=set)


@dataclass(slots=True)
class ScanResult:
    files: FileList
    """The image files, absolute, in path-component order."""
    num_others: int
    """The number of non-hidden files without an image extension."""
    other_exts: set[str]
    """Their extensions (``"(no extension)"`` for none)."""


def scan_images(root: str, suffixes: Collection[bytes], workers: int | None = None) -> ScanResult:
    """List the non-hidden image files below the absolute folder path ``root``.

    Args:
        root: An absolute folder path.
        suffixes: Lowercase image extensions without the dot, as bytes (``b"jpg"``).
        workers: Threads that scan folders; default ``min(8, 4 * os.cpu_count())``.

    Raises:
        OSError: ``root`` itself cannot be read (unreadable subfolders are logged and
            skipped).
    """
    root_b = os.fsencode(root)
    st = os.stat(root_b)
    root_key = (st.st_dev, st.st_ino)
    folders = {root_key: _scan(root_b, suffixes)}
    if any(isinstance(item, _Subdir) for item in folders[root_key].items):
        workers = workers or min(8, 4 * (os.cpu_count() or 1))
        _scan_tree(root_b, folders, suffixes, workers)
    num_others = sum(f.num_others for f in folders.values())
    other_exts: set[str] = set().union(*(f.other_exts for f in folders.values()))
    return ScanResult(_assemble(root_b, root_key, folders), num_others, other_exts)


def _join(folder: bytes, name: bytes) -> bytes:
    return folder + name if folder.endswith(_SEP) else folder + _SEP + name


def _scan(folder: bytes, suffixes: Collection[bytes]) -> _Folder:
    """Read one folder: sorted image names in runs between subfolders; count the rest."""
    result = _Folder()
    images: list[bytes] = []
    subdirs: list[_Subdir] = []
    with os.scandir(folder) as entries:
        for entry in entries:
            name = entry.name
            if name[:1] == b".":
                continue
            try:
                if entry.is_dir():  # follows symbolic links
                    st = entry.stat()
                    subdirs.append(_Subdir(name, (st.st_dev, st.st_ino)))
                elif entry.is_file():
                    dot = name.rfind(b".")
                    if dot > 0 and name[dot + 1 :].lower() in suffixes:
                        images.append(name)
                    else:
                        result.num_others += 1
                        result.other_exts.add(
                            os.path.splitext(os.fsdecode(name))[1] or "(no extension)"
                        )
                elif entry.is_symlink():
                    logger.warning(
                        "Skipping broken symbolic link '%s' -> '%s' (its target does not exist).",
                        os.fsdecode(entry.path),
                        os.fsdecode(os.readlink(entry.path)),
                    )
            except OSError as e:  # e.g. a link loop that the OS refuses to follow
                logger.warning("Skipping '%s': %s", os.fsdecode(entry.path), e)
    images.sort()
    subdirs.sort(key=lambda s: s.name)
    start = 0
    for sub in subdirs:
        cut = bisect_left(images, sub.name, lo=start)
        if cut > start:
            result.items.append(_RUN_SEP.join(images[start:cut]))
        result.items.append(sub)
        start = cut
    if start < len(images):
        result.items.append(_RUN_SEP.join(images[start:]))
    return result


def _scan_tree(
    root: bytes,
    folders: dict[tuple[int, int], _Folder],
    suffixes: Collection[bytes],
    workers: int,
) -> None:
    """Scan every folder reachable from the (already scanned) root, each inode once."""
    done: queue.SimpleQueue[tuple[tuple[int, int], bytes, _Folder | BaseException]]
    done = queue.SimpleQueue()

    def task(key: tuple[int, int], path: bytes) -> None:
        try:
            done.put((key, path, _scan(path, suffixes)))
        except BaseException as e:  # reported by the main thread
            done.put((key, path, e))

    claimed = set(folders)
    outstanding = 0
    pool = ThreadPoolExecutor(workers, thread_name_prefix="lt_data-scan")

    def submit_children(path: bytes, folder: _Folder) -> None:
        nonlocal outstanding
        for item in folder.items:
            if isinstance(item, _Subdir) and item.key not in claimed:
                claimed.add(item.key)
                pool.submit(task, item.key, _join(path, item.name))
                outstanding += 1

    try:
        (root_key,) = folders
        submit_children(root, folders[root_key])
        while outstanding:
            key, path, result = done.get()
            outstanding -= 1
            if isinstance(result, OSError):
                logger.warning("Skipping the unreadable folder '%s': %s", os.fsdecode(path), result)
                result = _Folder()
            elif isinstance(result, BaseException):
                raise result
            folders[key] = result
            submit_children(path, result)
    finally:  # on an error or Ctrl-C, drop the folders not scanned yet
        pool.shutdown(wait=True, cancel_futures=True)


def _assemble(
    root: bytes, root_key: tuple[int, int], folders: dict[tuple[int, int], _Folder]
) -> FileList:
    """Concatenate the folders depth-first in name order (= path-component order).

    The paths are written straight into a buffer of the final size, so the peak memory is
    the list itself plus the packed names of the scan, not twice the list.
    """
    plan: list[tuple[bytes, bytes]] = []  # (folder prefix, run of names), in output order
    total = 0
    emitted = {root_key}
    stack: list[tuple[Iterator[bytes | _Subdir], bytes]] = [
        (iter(folders[root_key].items), _join(root, b""))
    ]
    while stack:
        items, prefix = stack[-1]
        for item in items:
            if isinstance(item, bytes):
                plan.append((prefix, item))
                count = item.count(_RUN_SEP) + 1
                total += len(item) - (count - 1) + count * len(prefix)
            elif item.key not in emitted and item.key in folders:
                emitted.add(item.key)
                stack.append((iter(folders[item.key].items), _join(prefix, item.name) + _SEP))
                break
        else:
            stack.pop()
    folders.clear()  # the plan holds the runs that are still needed
    buffer = bytearray(total)
    ends = array("q")
    end = 0
    for i, (prefix, run) in enumerate(plan):
        plan[i] = (b"", b"")  # free the run once it is copied
        names = run.split(_RUN_SEP)
        del run
        lengths = map(len(prefix).__add__, map(len, names))
        ends.extend(islice(accumulate(lengths, initial=end), 1, None))
        names.insert(0, b"")
        buffer[end : ends[-1]] = prefix.join(names)  # prefix + name, for each name
        end = ends[-1]
    return FileList._from_buffer(buffer, ends)
