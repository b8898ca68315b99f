"""Find the image files of a dataset: folders (walked recursively), files, or lists of both."""

from __future__ import annotations

import heapq
import os
from collections.abc import Iterator, Sequence
from itertools import pairwise

from lt_core import DataError
from lt_data._filelist import FileList, concat_file_lists
from lt_data._scan import scan_images

__all__ = ["IMAGE_EXTENSIONS", "list_image_files"]

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"}
)
"""Lowercase file extensions, with the leading dot, of the images that are read. The
extension of a file is matched in any letter case (``.JPG`` is an image)."""

_SUPPORTED = ", ".join(sorted(IMAGE_EXTENSIONS))
_SUFFIXES = frozenset(os.fsencode(e[1:]) for e in IMAGE_EXTENSIONS)
_SEP = os.sep.encode()
_SHARD_HINT = (
    " For WebDataset tar shards use lt_data.WebImageDataset (lt_data.is_webdataset_source "
    "tells them apart)."
)


def list_image_files(
    data: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
) -> FileList:
    """List the image files of a dataset.

    Args:
        data: A folder, a single image file, or a list of folders and image files. Folders
            are walked recursively and symbolic links are followed (a folder reachable
            through several links, or a link cycle, is listed once). Inside folders,
            hidden files and folders (name starting with ``.``) and files without an image
            extension (see :data:`IMAGE_EXTENSIONS`) are skipped; unreadable subfolders,
            broken symbolic links and links the OS refuses to follow are logged as
            warnings and skipped.

    Returns:
        The absolute paths of the image files (symbolic links are not resolved) as a
        compact :class:`FileList` of ``str``, each path once even if it is reachable
        through several entries of ``data``. The order is path-component order: paths
        are compared folder by folder, names by their bytes in the file system encoding
        (code point order for UTF-8 names), which equals
        ``sorted(paths, key=lambda p: pathlib.Path(p).parts)``. Folders are read in
        parallel (a thread pool) and each folder is sorted on its own, so a million
        files take seconds and ~50 MB.

    Raises:
        DataError: A path that does not exist, a folder without images, an explicitly
            listed file without an image extension, or an empty list.
    """
    entries: Sequence[str | os.PathLike[str]] = (
        [data] if isinstance(data, str | os.PathLike) else data
    )
    if len(entries) == 0:
        raise DataError(
            "No data given: the list of folders and image files is empty. Fix: pass a folder "
            "of images, an image file or a non-empty list of them."
        )
    lists: dict[str, FileList] = {}
    for entry in entries:
        path = _check_entry(entry)
        if path not in lists:
            lists[path] = _list_entry(entry, path)
    return _merge(list(lists.values()))


def _order_key(path: bytes | bytearray) -> bytes | bytearray:
    """Bytes whose plain order is the path-component order of ``path``."""
    return path.replace(_SEP, b"\0")


def _merge(lists: list[FileList]) -> FileList:
    """Merge sorted lists into one sorted list without duplicates."""
    if len(lists) == 1:
        return lists[0]
    lists.sort(key=lambda f: _order_key(f._raw_at(0)))
    if all(
        _order_key(a._raw_at(len(a) - 1)) < _order_key(b._raw_at(0)) for a, b in pairwise(lists)
    ):
        return concat_file_lists(lists)  # disjoint ranges, the usual list of folders
    merged = heapq.merge(*(f._iter_raw() for f in lists), key=_order_key)
    return FileList(_unique(merged))


def _unique(paths: Iterator[bytes | bytearray]) -> Iterator[bytes | bytearray]:
    last = None
    for path in paths:
        if path != last:
            yield path
            last = path


def _is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _looks_like_shards(entry: str) -> bool:
    return entry.lower().endswith((".tar", ".tar.gz", ".tgz")) or (
        "{" in entry and ".tar" in entry.lower()
    )


def _check_entry(entry: str | os.PathLike[str]) -> str:
    """The absolute path of an existing entry of ``data``, or raise DataError."""
    if not isinstance(entry, str | os.PathLike):
        raise DataError(
            f"Data entries must be paths (str or pathlib.Path), got {type(entry).__name__}: "
            f"{entry!r}. Fix: pass folder or image file paths."
        )
    path = os.path.abspath(os.path.expanduser(os.fspath(entry)))
    if not os.path.exists(path):
        broken = " (a broken symbolic link)" if os.path.islink(path) else ""
        hint = _SHARD_HINT if _looks_like_shards(os.fspath(entry)) else ""
        raise DataError(
            f"Data path '{entry}' does not exist{broken}. Fix: pass an existing folder or "
            "image file; relative paths are relative to the current working directory "
            f"({os.getcwd()}).{hint}"
        )
    return path


def _list_entry(entry: str | os.PathLike[str], path: str) -> FileList:
    """The image files of one checked entry of ``data`` (absolute ``path``)."""
    if not os.path.isdir(path):
        if not _is_image_name(path):
            hint = _SHARD_HINT if _looks_like_shards(path) else ""
            raise DataError(
                f"'{entry}' is not a supported image file (extension "
                f"'{os.path.splitext(path)[1]}'). Supported extensions, in any letter case: "
                f"{_SUPPORTED}. Fix: convert the file or remove it from the data.{hint}"
            )
        return FileList([path])
    try:
        result = scan_images(path, _SUFFIXES)
    except OSError as e:
        raise DataError(
            f"Cannot read the data folder '{path}': {e}. Fix: check its permissions."
        ) from e
    if len(result.files) == 0:
        if not result.num_others:
            problem = "is empty (hidden files and folders are skipped)"
        else:
            exts = sorted(result.other_exts)
            problem = (
                f"contains no images: its {result.num_others} file(s) have the extension(s) "
                f"{', '.join(exts[:10])}"
            )
        raise DataError(
            f"The folder '{entry}' {problem}. Images are searched recursively and must have "
            f"one of the extensions, in any letter case: {_SUPPORTED}. Fix: point to the "
            "folder that holds the images or add images to it."
        )
    return result.files
