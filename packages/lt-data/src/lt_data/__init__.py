"""lt-data: image files and shards, decoding and batched on-device view augmentations.

:func:`list_data` lists what a ``data`` option names (image files or WebDataset shards)
and opens an :class:`ImageSource`: the full batches of each epoch from any position, with
its sampler or stream split, the skipping of unreadable images and the decoded-image
cache, the same interface for both kinds of data. Below it, workers read and decode images to fixed-size uint8 tensors, from files
(:func:`list_image_files`, :class:`ImageDataset`) or WebDataset tar shards
(:class:`WebImageDataset`, written by :func:`make_shards`), batched by
:func:`collate_images`; the batch then goes to the accelerator, where the module of
:func:`build_view_transform` makes the views of a method's recipe in a few batched
kernels (all random parameters of a view group drawn at once on the device). An
:class:`ImageCache` keeps the decoded images in host or device memory after the first
epoch, so later epochs skip reading and decoding.
"""

from lt_data._batch_filler import BatchFiller, log_skipped
from lt_data._cache import ImageCache, available_host_memory
from lt_data._dataset import ImageDataset, collate_images
from lt_data._decode import decode_image
from lt_data._device_decode import DeviceDecoder, sample_image
from lt_data._filelist import FileList
from lt_data._files import IMAGE_EXTENSIONS, list_image_files
from lt_data._listing import DataListing, auto_num_workers, list_data
from lt_data._resolution import (
    MAX_DECODE_FACTOR,
    decode_size_for,
    probe_short_side,
    resolve_decode_size,
)
from lt_data._sampler import ResumableSampler
from lt_data._shardlist import (
    IMAGE_MEMBER_SUFFIXES,
    count_samples,
    is_webdataset_source,
    list_shards,
)
from lt_data._shards import ShardStats, make_shards
from lt_data._source import ImageSource, SourceOptions
from lt_data._views import build_view_transform
from lt_data._webdataset import WebImageDataset

__version__ = "0.1.0"

__all__ = [
    "IMAGE_EXTENSIONS",
    "IMAGE_MEMBER_SUFFIXES",
    "MAX_DECODE_FACTOR",
    "BatchFiller",
    "DataListing",
    "DeviceDecoder",
    "FileList",
    "ImageCache",
    "ImageDataset",
    "ImageSource",
    "ResumableSampler",
    "ShardStats",
    "SourceOptions",
    "WebImageDataset",
    "auto_num_workers",
    "available_host_memory",
    "build_view_transform",
    "collate_images",
    "count_samples",
    "decode_image",
    "decode_size_for",
    "is_webdataset_source",
    "list_data",
    "list_image_files",
    "list_shards",
    "log_skipped",
    "make_shards",
    "probe_short_side",
    "resolve_decode_size",
    "sample_image",
]
