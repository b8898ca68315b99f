"""Write a folder of images into WebDataset tar shards, keeping the original bytes."""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from lt_core import ConfigError, DataError
from lt_data._decode import NamedBytesIO
from lt_data._files import list_image_files
from lt_data._shardlist import SHARD_EXTENSIONS

__all__ = ["ShardStats", "make_shards"]

logger = logging.getLogger(__name__)

_PROGRESS_EVERY_S = 10.0
_INT_FIELD = re.compile(r"%(0?\d*)d")
_EXT_FIELD = "__ext__"  # where _read_sample notes the image's member name (not written)


@dataclass(frozen=True, kw_only=True)
class ShardStats:
    """What :func:`make_shards` wrote."""

    shards: list[str]
    """The shard files, in order."""
    pattern: str | None
    """A brace pattern over :attr:`shards` for :class:`lt_data.WebImageDataset`
    (``"out/shard-{000000..000002}.tar"``), or None if ``pattern`` has no ``%d`` field."""
    num_images: int
    """The images written."""
    num_bytes: int
    """The image bytes written (without the tar headers)."""
    skipped: list[tuple[str, str]] = field(default_factory=list)
    """``(path, error)`` of each listed file that was not written (unreadable or not an
    image)."""


def make_shards(
    data: str | os.PathLike[str] | list[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    max_count: int = 10_000,
    max_size: float = 3e9,
    pattern: str = "shard-%06d.tar",
    progress: bool = True,
) -> ShardStats:
    """Write the images of ``data`` into WebDataset tar shards in the new folder ``out``.

    Each image becomes one sample: its key (``__key__``) is its path relative to the data
    folder (the common parent folder for a list) without the extension, with ``/`` between
    folders, and its only member holds the file's original bytes under the lowercase
    extension (``cat/img_001.jpg`` -> member ``cat/img_001.jpg``; ``IMG.JPG`` -> ``IMG.jpg``).
    Nothing is re-encoded. WebDataset splits a member name at the first dot of its last
    part, so dots and ``%`` in a file name are written as ``%2E`` and ``%25``
    (``a.b.jpg`` -> key ``a%2Eb``); two files that differ only in the extension
    (``a.jpg``, ``a.png``) keep distinct keys (``a``, ``a%2Epng``). The shards are
    byte-for-byte reproducible (files in :func:`lt_data.list_image_files` order, fixed
    timestamps, PAX tar format for long and non-ASCII names).

    Every file is checked with PIL's ``verify`` (header and structure, without decoding
    the pixels); files that fail are not written and are listed in the result and logged at
    the end. A truncated JPEG can pass this check; :class:`lt_data.WebImageDataset` then
    skips it while reading, like :class:`lt_data.ImageDataset` skips a bad file.

    Args:
        data: A folder of images, an image file, or a list of them (as for
            :func:`lt_data.list_image_files`).
        out: A new or empty folder for the shards; created if missing.
        max_count: Images per shard at most. Use at least as many shards as DataLoader
            workers times ranks, so every reader gets shards.
        max_size: Bytes per shard (about; a shard is closed once it reaches this size).
        pattern: Shard file names: a ``%``-format of the shard number ending in ``.tar``
            (``.tar.gz``/``.tgz`` compresses, which rarely pays for JPEGs).
        progress: Print a progress line to stderr every 10 seconds and a summary at the
            end.

    Returns:
        The shards written, their brace pattern, counts and skipped files.

    Raises:
        DataError: ``data`` has no images (see :func:`lt_data.list_image_files`), none of
            them could be read, or ``out`` is a file or a folder that is not empty.
        ConfigError: A bad ``max_count``, ``max_size`` or ``pattern``.
    """
    _check_options(max_count, max_size, pattern)
    files = list_image_files(data)
    out_dir = os.path.abspath(os.path.expanduser(os.fspath(out)))
    _check_out(out, out_dir)
    root = _key_root(data)
    writer: Any = None
    shards: list[str] = []
    skipped: list[tuple[str, str]] = []
    seen: set[str] = set()
    num_images = num_bytes = 0
    start = last_report = time.monotonic()
    try:
        for i, path in enumerate(files):
            sample = _read_sample(path, root, seen, skipped)
            if sample is None:
                continue
            if writer is None:
                writer = _open_writer(out_dir, pattern, max_count, max_size, shards.append)
            writer.write(sample)
            num_images += 1
            num_bytes += len(sample[sample[_EXT_FIELD]])
            if progress and time.monotonic() - last_report >= _PROGRESS_EVERY_S:
                last_report = time.monotonic()
                _report(i + 1, len(files), num_bytes, len(shards) + 1, last_report - start)
    finally:
        if writer is not None:
            writer.close()
    for path, error in skipped:
        logger.warning("make_shards skipped '%s': %s", path, error)
    if num_images == 0:
        raise DataError(
            f"None of the {len(files)} image file(s) of {data!r} could be read, for example "
            f"'{skipped[0][0]}': {skipped[0][1]}. Fix: check the files; nothing was written."
        )
    if progress:
        _report(len(files), len(files), num_bytes, len(shards), time.monotonic() - start)
        if skipped:
            print(f"make_shards: skipped {len(skipped)} unreadable file(s).", file=sys.stderr)
    return ShardStats(
        shards=shards,
        pattern=_brace_pattern(out_dir, pattern, len(shards)),
        num_images=num_images,
        num_bytes=num_bytes,
        skipped=skipped,
    )


def _check_options(max_count: int, max_size: float, pattern: str) -> None:
    if not isinstance(max_count, int) or isinstance(max_count, bool) or max_count < 1:
        raise ConfigError(f"max_count must be a positive int, got {max_count!r}.")
    if not isinstance(max_size, int | float) or not max_size > 0:
        raise ConfigError(f"max_size must be a positive number of bytes, got {max_size!r}.")
    try:
        distinct = pattern % 0 != pattern % 1
    except (TypeError, ValueError):
        distinct = False
    if not distinct or "/" in pattern or os.sep in pattern:
        raise ConfigError(
            f"pattern must be a file name with one %-field for the shard number, got "
            f"{pattern!r}. Fix: pass for example pattern='train-%06d.tar'."
        )
    if not (pattern % 0).lower().endswith(SHARD_EXTENSIONS):
        raise ConfigError(
            f"pattern must end with one of {', '.join(SHARD_EXTENSIONS)} so the shards are "
            f"recognized, got {pattern!r}. Fix: pass for example pattern='train-%06d.tar'."
        )


def _check_out(out: str | os.PathLike[str], out_dir: str) -> None:
    if os.path.isdir(out_dir):
        entries = os.listdir(out_dir)
        if entries:
            raise DataError(
                f"The out folder '{out}' is not empty ({len(entries)} entries, e.g. "
                f"'{sorted(entries)[0]}'). make_shards never overwrites shards. Fix: pass a "
                "new or empty folder, or remove the old shards first."
            )
    elif os.path.exists(out_dir):
        raise DataError(f"The out path '{out}' is a file. Fix: pass a new or empty folder.")


def _key_root(data: str | os.PathLike[str] | list[str | os.PathLike[str]]) -> str:
    """The folder that keys are relative to: the data folder, or the common parent."""
    entries = [data] if isinstance(data, str | os.PathLike) else list(data)
    paths = [os.path.abspath(os.path.expanduser(os.fspath(e))) for e in entries]
    folders = [p if os.path.isdir(p) else os.path.dirname(p) for p in paths]
    return os.path.commonpath(folders)


def _key(path: str, root: str, ext: str, seen: set[str]) -> str:
    rel = os.path.relpath(path, root).replace(os.sep, "/")
    head, _, name = rel.rpartition("/")
    stem = name[: len(name) - len(ext)]
    for candidate in (stem, name):  # a.jpg and a.png: keys "a" and "a%2Epng"
        escaped = candidate.replace("%", "%25").replace(".", "%2E")
        key = f"{head}/{escaped}" if head else escaped
        if key not in seen:
            break
    n = 1
    unique = key
    while unique in seen:
        n += 1
        unique = f"{key}~{n}"
    seen.add(unique)
    return unique


def _read_sample(
    path: str, root: str, seen: set[str], skipped: list[tuple[str, str]]
) -> dict[str, Any] | None:
    """The sample of one image file, or None (and an entry in ``skipped``)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
        with Image.open(NamedBytesIO(data, path)) as img:
            img.verify()
    except Exception as e:
        skipped.append((path, f"{type(e).__name__}: {e}"))
        return None
    ext = os.path.splitext(path)[1]
    member = ext[1:].lower()
    return {"__key__": _key(path, root, ext, seen), member: data, _EXT_FIELD: member}


def _open_writer(out_dir: str, pattern: str, max_count: int, max_size: float, post: Any) -> Any:
    import webdataset  # type: ignore[import-untyped]

    os.makedirs(out_dir, exist_ok=True)
    return webdataset.ShardWriter(
        os.path.join(out_dir.replace("%", "%%"), pattern),
        maxcount=max_count,
        maxsize=max_size,
        post=post,
        verbose=0,
        encoder=False,  # keep the original bytes
        keep_meta=False,  # __ext__ is not written
        mtime=0.0,
        format="PAX_FORMAT",
    )


def _report(done: int, total: int, num_bytes: int, num_shards: int, seconds: float) -> None:
    print(
        f"make_shards: {done:,}/{total:,} files, {num_shards} shard(s), "
        f"{num_bytes / 1e9:.2f} GB, {seconds:.0f} s",
        file=sys.stderr,
        flush=True,
    )


def _brace_pattern(out_dir: str, pattern: str, count: int) -> str | None:
    """``out/shard-{000000..000002}.tar`` for 3 shards of ``shard-%06d.tar``."""
    fields = _INT_FIELD.findall(pattern)
    if count == 1:
        return os.path.join(out_dir, pattern % 0)
    if len(fields) != 1 or pattern.count("%") != 1 or "{" in out_dir or "}" in out_dir:
        return None
    spec = f"%{fields[0]}d"
    braces = "{" + spec % 0 + ".." + spec % (count - 1) + "}"
    return os.path.join(out_dir, _INT_FIELD.sub(lambda _: braces, pattern))
