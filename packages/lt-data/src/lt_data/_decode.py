"""Decode one image (a file, or bytes from a shard) into a fixed-size RGB uint8 tensor."""

from __future__ import annotations

import io
import math
import os
from typing import BinaryIO

import torch
from PIL import Image, ImageOps

from lt_core import ConfigError, DataError

__all__ = ["NamedBytesIO", "check_image_size", "decode_image", "decode_image_unchecked"]

_EXIF_ORIENTATION = 0x0112
_RESAMPLE = Image.Resampling.BICUBIC
_WHITE = (255, 255, 255, 255)


def decode_image(path: str | os.PathLike[str], size: tuple[int, int]) -> torch.Tensor:
    """Read an image file as an RGB uint8 tensor of shape ``(3, H, W)``.

    Steps:

    1. Open the file with PIL and apply its EXIF orientation, so a photo taken in
       portrait comes out upright.
    2. Convert it to RGB. Grayscale and palette images are expanded; images with
       transparency (RGBA, LA, palette or grayscale with a transparent color) are
       composited on a white background, because the color of fully transparent
       pixels is arbitrary (often black) and white is what image viewers show; CMYK
       goes through PIL's conversion; 16-bit and 32-bit integer images (``I;16``,
       ``I``) are scaled from 0-65535 to 0-255 (an ``I`` image whose values all fit
       in 0-255 is kept as is) and float images (``F``) from 0-1 to 0-255.
    3. Resize so that the image covers ``size`` (the side that is shorter relative to
       the target matches it, the aspect ratio is kept) and center-crop to exactly
       ``size``. The resize is antialiased (PIL's bicubic filter); large JPEGs are first
       reduced while decoding (PIL's draft mode). Images of exactly ``size`` are not
       resized.

    Args:
        path: The image file.
        size: ``(height, width)`` of the output.

    Returns:
        A contiguous uint8 tensor of shape ``(3, height, width)``.

    Raises:
        DataError: The file cannot be read or decoded (missing, truncated, not an image).
        ConfigError: ``size`` is not two positive ints.
    """
    size = check_image_size(size)
    try:
        return decode_image_unchecked(path, size)
    except Exception as e:
        raise DataError(
            f"Cannot decode the image '{path}': {type(e).__name__}: {e}. The file may be "
            "truncated or not an image. Fix: replace or remove the file."
        ) from e


def check_image_size(size: tuple[int, int]) -> tuple[int, int]:
    """Return ``size`` as a tuple of two positive ints or raise ConfigError."""
    if (
        not isinstance(size, tuple | list)
        or len(size) != 2
        or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size)
    ):
        raise ConfigError(
            f"The image size must be (height, width) with two positive ints, got {size!r}. "
            "Fix: pass for example (224, 224)."
        )
    return int(size[0]), int(size[1])


def decode_image_unchecked(
    source: str | os.PathLike[str] | BinaryIO, size: tuple[int, int]
) -> torch.Tensor:
    """:func:`decode_image` without argument checks; raises PIL's own exceptions.

    ``source`` is a file path or a binary file object (``io.BytesIO(data)`` for an image
    read from a tar shard), so files and shards decode alike.
    """
    height, width = size
    with Image.open(source) as file:
        _draft(file, width, height)
        img = ImageOps.exif_transpose(file)  # loads the pixels; raises if truncated
        img = _to_rgb(img)
        if img.size != (width, height):
            img = ImageOps.fit(img, (width, height), method=_RESAMPLE)
        data = bytearray(img.tobytes())
    return (
        torch.frombuffer(data, dtype=torch.uint8)
        .view(height, width, 3)
        .permute(2, 0, 1)
        .contiguous()
    )


class NamedBytesIO(io.BytesIO):
    """Image bytes that PIL's error messages name by ``label`` instead of the object's
    repr (``cannot identify image file 'shard-000003.tar/cat/img_001.jpg'``). No ``name``
    attribute: PIL would take it for a file to reopen."""

    def __init__(self, data: bytes, label: str) -> None:
        super().__init__(data)
        self._label = label

    def __repr__(self) -> str:
        return repr(self._label)


def _draft(img: Image.Image, width: int, height: int) -> None:
    """Let the JPEG decoder reduce large images by a power of two while decoding, keeping
    at least twice the covering size so the antialiased resize still has detail to use."""
    w, h = img.size
    if img.format != "JPEG" or min(w, h) < 2 * min(width, height):
        return  # small images (the common case) skip reading the EXIF orientation
    if img.getexif().get(_EXIF_ORIENTATION) in (5, 6, 7, 8):  # rotated by 90 degrees
        width, height = height, width
    scale = max(width / w, height / h)
    if scale >= 0.5:
        return
    img.draft(img.mode, (math.ceil(2 * w * scale), math.ceil(2 * h * scale)))


def _to_rgb(img: Image.Image) -> Image.Image:
    """Convert any PIL mode to RGB; see :func:`decode_image` for the rules."""
    mode = img.mode
    if mode == "RGB" and "transparency" not in img.info:
        return img
    if mode.startswith("I") or mode == "F":
        return _high_depth_to_rgb(img)
    if mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in img.info:
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, _WHITE)
        return Image.alpha_composite(background, rgba).convert("RGB")
    return img.convert("RGB")


def _high_depth_to_rgb(img: Image.Image) -> Image.Image:
    """Scale a 16/32-bit integer or float grayscale image to 8 bits, then to RGB."""
    if img.mode == "F":
        scale = 255.0 if _max_value(img) <= 1.0 else 1.0
    elif img.mode == "I":
        scale = 1.0 if _max_value(img) <= 255 else 255.0 / 65535.0
    else:
        img = img.convert("I")  # I;16, I;16B, I;16L, I;16N
        scale = 255.0 / 65535.0
    if scale != 1.0:
        img = img.point(lambda v: v * scale + 0.5)  # +0.5: round instead of truncating
    return img.convert("L").convert("RGB")


def _max_value(img: Image.Image) -> float:
    """The largest pixel value of a single-band image."""
    extrema = img.getextrema()
    assert isinstance(extrema[1], int | float)  # single band: (min, max)
    return float(extrema[1])
