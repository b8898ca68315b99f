"""Find the image files of a dataset: folders (walked recursively), files, or lists of both."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from lt_core import DataError

__all__ = ["IMAGE_EXTENSIONS", "list_image_files"]

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS: frozenset[str] = frozenset(
    {".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp"}
)
"""Lowercase file extensions, with the leading dot, of the images that are read. The
extension of a file is matched in any letter case (``.JPG`` is an image)."""

_SUPPORTED = ", ".join(sorted(IMAGE_EXTENSIONS))


def list_image_files(data: str | os.PathLike[str] | Sequence[str | os.PathLike[str]]) -> list[Path]:
    """List the image files of a dataset.

    Args:
        data: A folder, a single image file, or a list of folders and image files. Folders
            are walked recursively and symbolic links are followed (a link cycle is visited
            once). Inside folders, hidden files and folders (name starting with ``.``) and
            files without an image extension (see :data:`IMAGE_EXTENSIONS`) are skipped.

    Returns:
        The absolute paths of the image files (symbolic links are not resolved), sorted,
        each path once even if it is reachable through several entries of ``data``.

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
    files: set[str] = set()
    for entry in entries:
        files.update(_list_entry(entry))
    return sorted((Path(f) for f in files), key=lambda p: p.parts)


def _is_image_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS


def _list_entry(entry: str | os.PathLike[str]) -> list[str]:
    """The image files of one entry of ``data``, as absolute path strings."""
    if not isinstance(entry, str | os.PathLike):
        raise DataError(
            f"Data entries must be paths (str or pathlib.Path), got {type(entry).__name__}: "
            f"{entry!r}. Fix: pass folder or image file paths."
        )
    path = os.path.abspath(os.path.expanduser(os.fspath(entry)))
    if not os.path.exists(path):
        broken = " (a broken symbolic link)" if os.path.islink(path) else ""
        raise DataError(
            f"Data path '{entry}' does not exist{broken}. Fix: pass an existing folder or "
            "image file; relative paths are relative to the current working directory "
            f"({os.getcwd()})."
        )
    if not os.path.isdir(path):
        if not _is_image_name(path):
            raise DataError(
                f"'{entry}' is not a supported image file (extension "
                f"'{os.path.splitext(path)[1]}'). Supported extensions, in any letter case: "
                f"{_SUPPORTED}. Fix: convert the file or remove it from the data."
            )
        return [path]
    images: list[str] = []
    others: list[str] = []
    for file in _walk(path):
        (images if _is_image_name(file) else others).append(file)
    if not images:
        if not others:
            problem = "is empty (hidden files and folders are skipped)"
        else:
            exts = sorted({os.path.splitext(f)[1] or "(no extension)" for f in others})
            problem = (
                f"contains no images: its {len(others)} file(s) have the extension(s) "
                f"{', '.join(exts[:10])}"
            )
        raise DataError(
            f"The folder '{entry}' {problem}. Images are searched recursively and must have "
            f"one of the extensions, in any letter case: {_SUPPORTED}. Fix: point to the "
            "folder that holds the images or add images to it."
        )
    return images


def _walk(root: str) -> Iterator[str]:
    """Yield the non-hidden files below ``root``, following symbolic links.

    Each directory is entered once, identified by its device and inode, so link cycles and
    links to folders already walked do not repeat files or hang.
    """
    visited: set[tuple[int, int]] = set()
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            st = os.stat(folder)
            key = (st.st_dev, st.st_ino)
            if key in visited:
                continue
            visited.add(key)
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError as e:
            if folder == root:
                raise DataError(
                    f"Cannot read the data folder '{root}': {e}. Fix: check its permissions."
                ) from e
            logger.warning("Skipping the unreadable folder '%s': %s", folder, e)
            continue
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                if entry.is_dir():  # follows symbolic links
                    stack.append(entry.path)
                elif entry.is_file():
                    yield entry.path
            except OSError as e:  # e.g. a link loop that the OS refuses to follow
                logger.warning("Skipping '%s': %s", entry.path, e)
