"""A map-style dataset of image files that never raises on a bad file, and its collate."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import torch
from torch.utils.data import Dataset, default_collate

from lt_core import DataError
from lt_data._decode import check_image_size, decode_image_unchecked
from lt_data._device_decode import read_encoded
from lt_data._filelist import FileList

__all__ = ["ImageDataset", "collate_images"]


class ImageDataset(Dataset[dict[str, Any]]):
    """Decode image files to fixed-size RGB uint8 tensors, reporting bad files.

    Each item is a dict with the keys:

    - ``"image"``: the decoded image (see :func:`lt_data.decode_image`), a uint8 tensor of
      shape ``(3, H, W)``, or ``None`` if the file cannot be decoded;
    - ``"index"``: the item's index;
    - ``"path"``: the file path as a string;
    - ``"error"``: ``None``, or the error text (``"OSError: image file is truncated"``) if
      the file cannot be decoded;
    - ``"image_size"``: ``(H, W)``, so :func:`collate_images` can build an empty batch
      when every image of a batch is bad.

    A bad file never raises, so one corrupt image does not stop a long run; use
    :func:`collate_images` to drop and report such items.

    The paths are kept in a :class:`lt_data.FileList` (one bytes buffer with an offset
    array) instead of a list of Python objects, so forked DataLoader workers do not copy
    the list page by page when they read it (reference counting writes to every object it
    touches). A ``FileList`` (what :func:`lt_data.list_image_files` returns) is used as
    is, without a copy.

    Args:
        files: The image files, for example from :func:`lt_data.list_image_files`; any
            sequence of ``str`` or ``os.PathLike`` works.
        image_size: ``(height, width)`` of the decoded images.
        jpeg_bytes: Send JPEG files undecoded, as their bytes (the item's ``"encoded"``,
            a uint8 tensor, with ``"orientation"``, the EXIF orientation, and ``"image"``
            ``None``), for :class:`lt_data.DeviceDecoder` to decode in batches on the GPU.
            Other formats are decoded as usual.

    Raises:
        DataError: ``files`` is empty.
        ConfigError: ``image_size`` is not two positive ints.
    """

    def __init__(
        self,
        files: Sequence[str | os.PathLike[str]],
        image_size: tuple[int, int],
        jpeg_bytes: bool = False,
    ) -> None:
        self.image_size = check_image_size(image_size)
        self.jpeg_bytes = jpeg_bytes
        if len(files) == 0:
            raise DataError(
                "ImageDataset got no files. Fix: pass the image files of the dataset, for "
                "example lt_data.list_image_files('path/to/images')."
            )
        self.files = FileList(files)
        """The image files (a :class:`lt_data.FileList`)."""

    def __len__(self) -> int:
        return len(self.files)

    def path(self, index: int) -> str:
        """The path of item ``index`` as a string."""
        return self.files[index]

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -len(self) <= index < len(self):
            raise IndexError(f"Index {index} is out of range for {len(self)} images.")
        index = index % len(self)
        path = self.path(index)
        image: torch.Tensor | None = None
        error: str | None = None
        extra: dict[str, Any] = {}
        try:
            if self.jpeg_bytes:
                with open(path, "rb") as f:
                    image, encoded, orientation = read_encoded(f.read(), path, self.image_size)
                extra = {"encoded": encoded, "orientation": orientation}
            else:
                image = decode_image_unchecked(path, self.image_size)
        except Exception as e:
            error = f"{type(e).__name__}: {e}"
        return {
            "image": image,
            "index": index,
            "path": path,
            "error": error,
            "image_size": self.image_size,
            **extra,
        }


def collate_images(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Batch the items of :class:`ImageDataset`, dropping the images that failed to decode.

    Pass it as ``collate_fn`` of a ``torch.utils.data.DataLoader``.

    Args:
        samples: Items of :class:`ImageDataset`.

    Returns:
        A dict with the keys

        - ``"images"``: uint8 tensor ``(B, 3, H, W)`` of the good images, in order; an empty
          ``(0, 3, H, W)`` tensor if every image of the batch is bad (skip such batches);
        - ``"indices"``: int64 tensor ``(B,)`` of the dataset indices of ``"images"``;
        - ``"skipped"``: a list of ``(path, error)`` for each dropped item;
        - ``"encoded"``: a list of ``(index, path, jpeg_bytes, orientation)`` for each item
          sent undecoded (``jpeg_bytes=True``), for :class:`lt_data.DeviceDecoder`.
    """
    good = [s for s in samples if s["image"] is not None]
    encoded = [
        (s["index"], str(s["path"]), s["encoded"], s["orientation"])
        for s in samples
        if s["image"] is None and s.get("encoded") is not None
    ]
    skipped = [
        (str(s["path"]), str(s["error"]))
        for s in samples
        if s["image"] is None and s.get("encoded") is None
    ]
    if good:
        # default_collate stacks into shared memory inside DataLoader workers, which saves
        # a copy when the batch is sent to the main process.
        images = default_collate([s["image"] for s in good])
    else:
        height, width = samples[0].get("image_size", (0, 0)) if samples else (0, 0)
        images = torch.empty((0, 3, height, width), dtype=torch.uint8)
    indices = torch.tensor([s["index"] for s in good], dtype=torch.int64)
    return {"images": images, "indices": indices, "skipped": skipped, "encoded": encoded}
