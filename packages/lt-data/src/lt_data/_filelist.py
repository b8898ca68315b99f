"""A compact, immutable list of file paths: one bytes buffer and an array of end offsets."""

from __future__ import annotations

import os
import sys
from array import array
from collections.abc import Iterable, Iterator, Sequence
from itertools import accumulate, chain, islice
from typing import Any, overload

__all__ = ["FileList"]

_ENCODING, _ERRORS = sys.getfilesystemencoding(), sys.getfilesystemencodeerrors()


def _encode(path: str | bytes | bytearray | os.PathLike[str]) -> bytes:
    return bytes(path) if isinstance(path, bytearray) else os.fsencode(path)


def _decode(path: bytes | bytearray) -> str:
    """:func:`os.fsdecode` that also takes a ``bytearray``."""
    return str(path, _ENCODING, _ERRORS)


class FileList(Sequence[str]):
    """An immutable sequence of file paths (``str``) that holds no Python object per path.

    The paths are stored encoded (:func:`os.fsencode`) back to back in one ``bytes``
    buffer, with an ``array("q")`` of end offsets: about ``len(path) + 8`` bytes per file
    instead of ~150 for a ``pathlib.Path`` in a list. Items are decoded on access. Forked
    DataLoader workers share the two buffers without copying them (reference counting
    never touches the paths), and pickling (spawned workers) copies two flat buffers.

    :func:`lt_data.list_image_files` returns a ``FileList``; :class:`lt_data.ImageDataset`
    uses it without copying.

    Args:
        paths: The paths (``str``, ``bytes`` or ``os.PathLike``), kept in order.

    Example:
        >>> files = FileList(["/data/a.jpg", "/data/b.png"])
        >>> len(files), files[1], files[-1:] == ["/data/b.png"]
        (2, '/data/b.png', True)
    """

    __slots__ = ("_buffer", "_ends")

    _buffer: bytes | bytearray  # never modified
    _ends: array[int]

    def __init__(self, paths: Iterable[str | bytes | bytearray | os.PathLike[str]] = ()) -> None:
        if isinstance(paths, FileList):
            self._buffer, self._ends = paths._buffer, paths._ends
            return
        encoded = [_encode(p) for p in paths]
        self._buffer = b"".join(encoded)
        self._ends = array("q", accumulate(map(len, encoded)))

    @classmethod
    def _from_buffer(cls, buffer: bytes | bytearray, ends: array[int]) -> FileList:
        """Wrap a buffer and its end offsets (``ends[-1] == len(buffer)``) without copying."""
        files = cls.__new__(cls)
        files._buffer, files._ends = buffer, ends
        return files

    def __len__(self) -> int:
        return len(self._ends)

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> FileList: ...

    def __getitem__(self, index: int | slice) -> str | FileList:
        if isinstance(index, slice):
            return self._slice(index)
        n = len(self._ends)
        if not -n <= index < n:
            raise IndexError(f"Index {index} is out of range for {n} files.")
        if index < 0:
            index += n
        return _decode(self._raw_at(index))

    def _raw_at(self, index: int) -> bytes | bytearray:
        """The encoded path ``index``, for ``0 <= index < len(self)``."""
        start = self._ends[index - 1] if index > 0 else 0
        return self._buffer[start : self._ends[index]]

    def _slice(self, index: slice) -> FileList:
        start, stop, step = index.indices(len(self._ends))
        if step != 1:
            return FileList([self._raw_at(i) for i in range(start, stop, step)])
        if start >= stop:
            return FileList()
        begin = self._ends[start - 1] if start > 0 else 0
        ends = array("q", map((-begin).__add__, self._ends[start:stop]))
        return FileList._from_buffer(self._buffer[begin : self._ends[stop - 1]], ends)

    def __iter__(self) -> Iterator[str]:
        return map(_decode, self._iter_raw())

    def _iter_raw(self) -> Iterator[bytes | bytearray]:
        buffer, start = self._buffer, 0
        for end in self._ends:
            yield buffer[start:end]
            start = end

    def index(self, value: Any, start: int = 0, stop: int | None = None) -> int:
        """The first index of the path ``value`` (``str``, ``bytes`` or ``os.PathLike``,
        compared as given: no normalization) at or after ``start`` and before ``stop``."""
        try:
            target = _encode(value)
        except TypeError:
            raise ValueError(f"{value!r} is not a path.") from None
        start, stop, _ = slice(start, stop).indices(len(self))
        for i in range(start, stop):
            if self._raw_at(i) == target:
                return i
        raise ValueError(f"{value!r} is not in the file list.")

    def __contains__(self, value: object) -> bool:
        try:
            self.index(value)
        except ValueError:
            return False
        return True

    @property
    def nbytes(self) -> int:
        """The memory held by the paths and offsets, in bytes."""
        return len(self._buffer) + self._ends.itemsize * len(self._ends)

    def __reduce__(self) -> tuple[Any, ...]:
        return (FileList._from_buffer, (self._buffer, self._ends))

    def __eq__(self, other: object) -> bool:
        """Equal to another ``FileList`` or list/tuple with the same paths in order
        (``str``, ``bytes`` or ``os.PathLike`` items, e.g. ``pathlib.Path``)."""
        if isinstance(other, FileList):
            return self._ends == other._ends and self._buffer == other._buffer
        if isinstance(other, list | tuple):
            try:
                return len(other) == len(self) and all(
                    a == _encode(b) for a, b in zip(self._iter_raw(), other)
                )
            except TypeError:
                return False
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        n = len(self)
        if n <= 4:
            return f"FileList({list(self)!r})"
        head = ", ".join(repr(p) for p in islice(self, 2))
        return f"FileList([{head}, ..., {self[-1]!r}]) ({n:,} files)"


def concat_file_lists(lists: Sequence[FileList]) -> FileList:
    """The paths of ``lists`` one after the other (no sorting, no de-duplication)."""
    if len(lists) == 1:
        return lists[0]
    offsets = accumulate((len(f._buffer) for f in lists[:-1]), initial=0)
    ends = array("q", chain.from_iterable(map(o.__add__, f._ends) for o, f in zip(offsets, lists)))
    return FileList._from_buffer(b"".join(f._buffer for f in lists), ends)
