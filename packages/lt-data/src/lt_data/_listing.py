"""What a ``data`` option names, listed before any heavy work: image files or WebDataset
shards.

:func:`list_data` is the one place that tells the two apart. Everything after it works
through the :class:`DataListing` interface: how many images an epoch has, how long an
epoch is, a probe of the image sizes, and :meth:`DataListing.open`, which makes the
:class:`~lt_data.ImageSource` a training process reads.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from torch.utils.data import Dataset

from lt_core import ConfigError, DataError
from lt_data._dataset import ImageDataset
from lt_data._files import list_image_files
from lt_data._resolution import probe_short_side
from lt_data._shardlist import (
    IMAGE_MEMBER_SUFFIXES,
    count_samples,
    is_webdataset_source,
    list_shards,
)
from lt_data._source import FileSource, ImageSource, ShardSource, SourceOptions, stream_steps
from lt_data._webdataset import WebImageDataset

logger = logging.getLogger(__name__)

__all__ = ["DataListing", "auto_num_workers", "list_data"]

Data = str | os.PathLike[str] | Sequence[str | os.PathLike[str]]


class DataListing(Protocol):
    """The images of a ``data`` option (from :func:`list_data`).

    Attributes:
        data: The option as given.
        items: The image files, or the shard URLs.
        num_images: Images of one epoch over all processes: the files, ``epoch_size``,
            or the samples with an image member counted in local shards; ``None`` for
            remote shards listed with ``count=False``.
    """

    data: Data
    items: Sequence[str]
    num_images: int | None

    def describe(self) -> str:
        """What the data is, for logs and config.json (``"files"``, ``"3 WebDataset
        shards"``)."""
        ...

    def probe_short_side(self) -> float | None:
        """The median shorter side of a few source images, from their headers."""
        ...

    def batches_per_process(self, options: SourceOptions) -> int | None:
        """Micro-batches each process reads an epoch, where known before reading
        (``None``: a stream, split by worker)."""
        ...

    def steps_per_epoch(self, options: SourceOptions) -> int:
        """Optimizer steps of an epoch for a process reading with ``options``."""
        ...

    def open(self, options: SourceOptions) -> ImageSource:
        """The source one training process reads its batches from."""
        ...

    def ordered(self, image_size: tuple[int, int]) -> Dataset[dict[str, Any]]:
        """A dataset of all images in a fixed order (for embedding)."""
        ...

    def read_units(self, batch_size: int) -> int:
        """Pieces a reader can take on its own: batches of files, or shards."""
        ...

    def output_name(self) -> Callable[[str], str]:
        """Maps an item's path to the name it gets in an output file."""
        ...


def list_data(data: Data, *, epoch_size: int | None = None, count: bool = True) -> DataListing:
    """List the images of ``data``: a folder, image files, or a list of them
    (:func:`lt_data.list_image_files`), or WebDataset shards (a brace pattern, a wildcard,
    URLs, see :func:`lt_data.list_shards`).

    Args:
        data: The images.
        epoch_size: Shards only: the images of one epoch (a quota, shards reread as
            needed); ``None`` counts the samples with an image in the local shards.
        count: Whether the images of shards must be counted (training); ``False``
            accepts remote shards whose count is unknown (embedding).

    Raises:
        DataError: No images (missing paths, empty folders, shards without image
            members).
        ConfigError: Remote shards without ``epoch_size`` when ``count`` is True.
    """
    if is_webdataset_source(data):
        return _ShardListing(data, epoch_size, count)
    return _FileListing(data)


def auto_num_workers(batches: int | None, processes: int = 1) -> int:
    """``num_workers="auto"``: the cores this process may use, shared by the ``processes``
    of this machine, minus one for each process itself (no fixed cap: decoding is what
    limits a fast GPU), and at most one worker fewer than the ``batches`` a process reads
    (``None``: unknown, no limit). The process waits for its first batch however it is
    read; workers only help by reading the next ones meanwhile. One batch is read in the
    process itself: no fork, and no copy-on-write of a model's pages while it trains."""
    try:
        cores = len(os.sched_getaffinity(0))  # respects taskset, cgroups and SLURM bindings
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    if cores < int(os.environ.get("SLURM_CPUS_ON_NODE", "0") or 0):
        processes = 1  # srun bound this task to its own CPUs (--cpus-per-task): its share
    workers = max(1, cores // max(1, processes) - 1)
    if batches is not None:
        workers = min(workers, max(0, batches - 1))
    return workers


class _FileListing:
    def __init__(self, data: Data) -> None:
        self.data = data
        self.items = list_image_files(data)
        self.num_images: int | None = len(self.items)

    def describe(self) -> str:
        return "files"

    def probe_short_side(self) -> float | None:
        return probe_short_side(self.items, streaming=False)

    def batches_per_process(self, options: SourceOptions) -> int | None:
        return self.steps_per_epoch(options) * options.accumulation

    def steps_per_epoch(self, options: SourceOptions) -> int:
        # What ResumableSampler.batches_per_epoch counts.
        return (len(self.items) // options.world_size) // options.step_images

    def open(self, options: SourceOptions) -> ImageSource:
        return FileSource(self.items, options)

    def ordered(self, image_size: tuple[int, int]) -> Dataset[dict[str, Any]]:
        return ImageDataset(self.items, image_size)

    def read_units(self, batch_size: int) -> int:
        return -(-len(self.items) // batch_size)

    def output_name(self) -> Callable[[str], str]:
        return _relative_names(self.data)


class _ShardListing:
    def __init__(self, data: Data, epoch_size: int | None, count: bool) -> None:
        self.data = data
        self.items = list_shards(data)  # type: ignore[arg-type]
        self.quota = epoch_size is not None
        self.num_images = epoch_size if epoch_size is not None else self._count(count)

    def _count(self, required: bool) -> int | None:
        logger.info("Counting the samples of %d shard(s)...", len(self.items))
        found = count_samples(self.items, images_only=True)
        if found is None and required:
            raise ConfigError(
                f"The WebDataset source {self.data!r} has remote shards, whose samples "
                "cannot be counted before training. Fix: pass epoch_size=<images per epoch>."
            )
        if found == 0:
            samples = count_samples(self.items)
            what = (
                f"hold {samples} sample(s), none with an image member (a member name ending "
                f"in .{', .'.join(IMAGE_MEMBER_SUFFIXES)})"
                if samples
                else "hold no samples"
            )
            raise DataError(
                f"The shards of {self.data!r} {what}. Fix: check them (tar tf <shard>) or "
                "write them from a folder of images with lightly_train.make_shards."
            )
        return found

    def describe(self) -> str:
        return f"{len(self.items)} WebDataset shards"

    def probe_short_side(self) -> float | None:
        return probe_short_side(self.items, streaming=True)

    def batches_per_process(self, options: SourceOptions) -> int | None:
        return None  # a stream's epoch is split by worker: its workers stay as they are

    def steps_per_epoch(self, options: SourceOptions) -> int:
        return stream_steps(self._known_count(), options)

    def open(self, options: SourceOptions) -> ImageSource:
        return ShardSource(self.items, options, self._known_count(), self.quota)

    def _known_count(self) -> int:
        if self.num_images is None:
            raise ConfigError(
                f"The samples of {self.data!r} (remote shards) are not counted. Fix: pass "
                "epoch_size=<images per epoch>."
            )
        return self.num_images

    def ordered(self, image_size: tuple[int, int]) -> Dataset[dict[str, Any]]:
        return WebImageDataset(self.items, image_size, shuffle_buffer=0)

    def read_units(self, batch_size: int) -> int:
        return len(self.items)

    def output_name(self) -> Callable[[str], str]:
        return str


def _relative_names(data: Data) -> Callable[[str], str]:
    """The name of each listed file in the output: relative to ``data`` when it is one
    folder; for a list, a file as given, and a folder's files as
    ``os.path.join(<the folder as given>, <relative path>)``."""
    entries = [data] if isinstance(data, str | os.PathLike) else list(data)
    given = [os.fspath(e) for e in entries]
    absolute = [os.path.abspath(os.path.expanduser(g)) for g in given]
    files = {a: g for a, g in zip(absolute, given) if not os.path.isdir(a)}
    folders = [
        (a if a.endswith(os.sep) else a + os.sep, g)
        for a, g in zip(absolute, given)
        if os.path.isdir(a)
    ]
    relative = len(entries) == 1 and len(folders) == 1

    def name(path: str) -> str:
        if path in files:
            return files[path]
        for prefix, folder in folders:
            if path.startswith(prefix):
                rel = path[len(prefix) :]
                return rel if relative else os.path.join(folder, rel)
        return path

    return name
