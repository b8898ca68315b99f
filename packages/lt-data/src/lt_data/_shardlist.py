"""Tell WebDataset shard sources from image folders, and expand and check shard patterns."""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Sequence
from urllib.parse import urlparse
from urllib.request import url2pathname

from lt_core import DataError

__all__ = [
    "IMAGE_MEMBER_SUFFIXES",
    "SHARD_EXTENSIONS",
    "count_samples",
    "is_webdataset_source",
    "list_shards",
]

SHARD_EXTENSIONS = (".tar", ".tar.gz", ".tgz")
"""File extensions of WebDataset shards (matched in any letter case)."""

IMAGE_MEMBER_SUFFIXES = ("jpg", "jpeg", "png", "webp", "ppm", "bmp", "tif", "tiff", "pgm")
"""Member suffixes (lowercase, no dot) that hold a shard sample's image, in order of
preference: a sample's image is its ``jpg`` member, else ``jpeg``, ...; a longer suffix
ending in one of them (``seg.png``) counts too (see :class:`lt_data.WebImageDataset`)."""

_STREAMS = ("http://", "https://", "pipe:")
_BRACED_TAR = re.compile(r"[.{,](tar|tgz)(\.gz)?[,}]")  # "x.{tar,tgz}", "{a.tar,b.tar}"

Shards = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]


def _entries(data: object) -> list[str] | None:
    if isinstance(data, str | os.PathLike):
        return [os.fspath(data)]
    if isinstance(data, list | tuple) and all(isinstance(d, str | os.PathLike) for d in data):
        return [os.fspath(d) for d in data]
    return None


def _is_shard_url(url: str) -> bool:
    lower = url.lower()
    if lower.startswith(_STREAMS):
        return True
    if "{" in url:
        return lower.endswith(SHARD_EXTENSIONS) or bool(_BRACED_TAR.search(lower))
    return lower.endswith(SHARD_EXTENSIONS) and not os.path.isdir(url)


def is_webdataset_source(data: object) -> bool:
    """Whether ``data`` names WebDataset tar shards rather than image files and folders.

    True for a string or path, or a non-empty list of them, whose every entry ends in
    ``.tar``, ``.tar.gz`` or ``.tgz`` (a local folder with such a name does not count), is a
    brace pattern over such files (``"shards/train-{000000..000127}.tar"``), or starts with
    ``http://``, ``https://`` or ``pipe:``. Nothing is opened; local paths need not exist.

    Example:
        >>> is_webdataset_source("shards/train-{000000..000127}.tar")
        True
        >>> is_webdataset_source(["images/", "more_images/"])
        False
    """
    entries = _entries(data)
    return entries is not None and len(entries) > 0 and all(map(_is_shard_url, entries))


def local_path(url: str) -> str | None:
    """The local file of ``url`` (a plain path or a ``file:`` URL), or None for streams."""
    scheme = urlparse(url).scheme
    if scheme == "":
        return os.path.expanduser(url)
    if scheme == "file":
        return url2pathname(urlparse(url).path)
    if len(scheme) == 1:  # a Windows drive letter
        return url
    return None


def list_shards(urls: Shards, *, check: bool = True) -> list[str]:
    """Expand a shard pattern or list into the list of shard URLs, checking local shards.

    Args:
        urls: A brace pattern (``"shards/train-{000000..000127}.tar"``; several patterns
            can be joined with ``::``), a local wildcard pattern (``"shards/*.tar"``, in
            name order), a single shard, or a list of shards or patterns.
            Entries can be local paths, ``file:``, ``http(s)://`` or ``pipe:`` URLs, or
            anything else that ``webdataset.gopen`` opens.
        check: Check that every local shard is an existing file. URLs and pipes are not
            checked (that would mean opening them): an unreachable one is reported as a
            skipped shard while reading.

    Returns:
        The shard URLs in order; ``len()`` is the shard count.

    Raises:
        DataError: No shards, missing local shards, a wildcard pattern that matches no
            file (with ``check``), or a local folder instead of shards.
    """
    from webdataset.shardlists import expand_urls  # type: ignore[import-untyped]

    entries = _entries(urls)
    if entries is None:
        raise DataError(
            f"Shards must be a pattern, a path or a list of them, got {type(urls).__name__}: "
            f"{urls!r}. Fix: pass for example 'shards/train-{{000000..000127}}.tar'."
        )
    shards = [
        shard
        for entry in entries
        for braced in expand_urls(entry)
        for shard in _glob(braced, urls, check)
    ]
    if not shards:
        raise DataError(
            "No shards given: the list is empty. Fix: pass a shard pattern such as "
            "'shards/train-{000000..000127}.tar' or a list of .tar files."
        )
    if check:
        _check_local(shards, urls)
    return shards


def _glob(shard: str, urls: Shards, check: bool) -> list[str]:
    """A plain local path with ``*`` or ``?`` (``"shards/*.tar"``) as the files it matches,
    in name order; other shards (URLs, ``file:`` ones included: ``?`` starts a query
    there) as they are."""
    path = local_path(shard)
    if path is None or urlparse(shard).scheme == "file":
        return [shard]
    if not any(c in path for c in "*?") or os.path.exists(path):
        return [shard]
    matches = sorted(glob.glob(path))
    if not matches and not check:
        return [shard]
    if not matches:
        raise DataError(
            f"The pattern '{shard}' of {urls!r} matches no file. Fix: check the folder and "
            "the pattern (for example 'shards/*.tar'; relative paths are relative to the "
            f"current working directory, {os.getcwd()})."
        )
    return matches


def _check_local(shards: list[str], urls: Shards) -> None:
    missing: list[str] = []
    for shard in shards:
        path = local_path(shard)
        if path is None or os.path.isfile(path):
            continue
        if os.path.isdir(path):
            raise DataError(
                f"The shard '{shard}' of {urls!r} is a folder. Fix: pass the .tar shards (a "
                "pattern such as 'shards/train-{000000..000127}.tar' or a list of files); for "
                "a folder of images use lt_data.list_image_files and lt_data.ImageDataset."
            )
        missing.append(shard)
    if missing:
        examples = ", ".join(f"'{m}'" for m in missing[:3])
        raise DataError(
            f"{len(missing)} of the {len(shards)} shard(s) of {urls!r} do not exist: "
            f"{examples}{', ...' if len(missing) > 3 else ''}. Fix: check the path and the "
            "brace range (e.g. 'train-{000000..000127}.tar' for 128 shards numbered from 0); "
            f"relative paths are relative to the current working directory ({os.getcwd()}). "
            "Write shards with lt_data.make_shards."
        )


def count_samples(shards: list[str], *, images_only: bool = False) -> int | None:
    """The number of samples in local shards, from their tar headers (the image data is
    skipped, not read); ``None`` if a shard is remote (pass the count yourself then).

    A sample is a key (the member name up to its first dot) as WebDataset groups them.
    With ``images_only``, only the samples with an image member count (a suffix such as
    ``jpg`` or ``seg.png``, the members :class:`lt_data.WebImageDataset` decodes): the
    images a pass over the shards yields, less the ones that fail to decode. An unreadable
    or truncated shard counts the samples before the damage.
    """
    import tarfile

    total = 0
    for shard in shards:
        path = local_path(shard)
        if path is None:
            return None
        keys: set[str] = set()
        try:
            with tarfile.open(path, "r:*") as tar:  # seeks past the data of each member
                for member in tar:
                    if member.isfile():
                        folder, name = os.path.split(member.name)
                        key, _, suffix = name.partition(".")
                        if not images_only or is_image_suffix(suffix):
                            keys.add(os.path.join(folder, key))
        except (OSError, tarfile.TarError):
            pass
        total += len(keys)
    return total


def is_image_suffix(suffix: str) -> bool:
    """Whether a sample's member with this suffix (the member name after the key's dot)
    can hold its image: ``jpg``, ``JPG``, ``seg.png``, not ``cls`` (see
    :func:`lt_data._webdataset.find_image_member`)."""
    return suffix.rsplit(".", 1)[-1].lower() in IMAGE_MEMBER_SUFFIXES
