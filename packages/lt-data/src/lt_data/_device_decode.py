"""JPEG decoding in batches on the training device (nvjpeg on a CUDA GPU).

The loader workers only read the bytes (:func:`read_encoded`): a JPEG travels as its
compressed bytes, about a tenth of the decoded pixels, and other formats are decoded with
PIL in the worker as before. In the main process :class:`DeviceDecoder` decodes a batch's
JPEGs with one ``torchvision.io.decode_jpeg`` call on the device, applies their EXIF
orientation, resizes each to cover the decode size (antialiased) and center-crops it, so
the result matches :func:`lt_data.decode_image` up to resampling differences. A JPEG that
the device decoder rejects (CMYK, corrupt) is decoded with PIL instead; if PIL fails too,
it is skipped like any bad image.
"""

from __future__ import annotations

import io
import math
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from lt_data._decode import NamedBytesIO, decode_image_unchecked

__all__ = [
    "DeviceDecoder",
    "apply_orientation",
    "is_jpeg",
    "jpeg_orientation",
    "read_encoded",
    "sample_image",
]

_EXIF_ORIENTATION = 0x0112


def is_jpeg(data: bytes | memoryview) -> bool:
    """Whether ``data`` starts like a JPEG file (SOI marker)."""
    return bytes(data[:3]) == b"\xff\xd8\xff"


def jpeg_orientation(data: bytes) -> int:
    """The EXIF orientation (1-8) of a JPEG, 1 when it has none. Reads the header only
    (PIL parses no pixels), and only when an EXIF block is present near the start."""
    if b"Exif\x00\x00" not in data[:65536]:
        return 1
    try:
        with Image.open(io.BytesIO(data)) as img:
            value = img.getexif().get(_EXIF_ORIENTATION, 1)
        return int(value) if 1 <= int(value) <= 8 else 1
    except Exception:
        return 1


def read_encoded(
    data: bytes, label: str, size: tuple[int, int]
) -> tuple[Tensor | None, Tensor | None, int]:
    """What a worker sends for one image: ``(None, jpeg_bytes, orientation)`` for a JPEG,
    ``(decoded, None, 1)`` for other formats (decoded with PIL at ``size``). Raises PIL's
    errors for a non-JPEG file that cannot be decoded."""
    if is_jpeg(data):
        encoded = torch.frombuffer(bytearray(data), dtype=torch.uint8)
        return None, encoded, jpeg_orientation(data)
    return decode_image_unchecked(NamedBytesIO(data, label), size), None, 1


def sample_image(sample: dict[str, Any]) -> Tensor | None:
    """The decoded image of a dataset item, decoding its JPEG bytes with PIL on the CPU if
    a worker sent them undecoded; ``None`` for an unreadable image."""
    if sample.get("image") is not None:
        return sample["image"]  # type: ignore[no-any-return]
    data = sample.get("encoded")
    if data is None:
        return None
    return _pil_decode(data, str(sample.get("path")), sample["image_size"])


def _pil_decode(data: Tensor, label: str, size: tuple[int, int]) -> Tensor | None:
    """Encoded bytes (a uint8 tensor) decoded with PIL on the CPU, ``None`` if PIL fails."""
    try:
        return decode_image_unchecked(NamedBytesIO(data.numpy().tobytes(), label), size)
    except Exception:
        return None


def apply_orientation(image: Tensor, orientation: int) -> Tensor:
    """Turn a ``(C, H, W)`` image upright by its EXIF ``orientation`` (as
    ``PIL.ImageOps.exif_transpose`` does)."""
    if orientation == 2:
        return image.flip(-1)
    if orientation == 3:
        return image.flip(-1).flip(-2)
    if orientation == 4:
        return image.flip(-2)
    if orientation == 5:
        return image.transpose(-1, -2)
    if orientation == 6:
        return image.rot90(-1, (-2, -1))
    if orientation == 7:
        return image.transpose(-1, -2).flip(-1).flip(-2)
    if orientation == 8:
        return image.rot90(1, (-2, -1))
    return image


class DeviceDecoder:
    """Decode the JPEG bytes of a :func:`lt_data.collate_images` batch on ``device``.

    Call it on each batch: it returns the batch with ``"images"`` holding every readable
    image, decoded at ``size`` on ``device`` (the ones the workers decoded first, then the
    JPEGs in batch order), and the JPEGs that no decoder could read added to
    ``"skipped"``. Batches without encoded images pass through (moved to the device).

    Args:
        size: ``(height, width)`` of the decoded images.
        device: Where to decode: ``"cuda"`` uses nvjpeg; ``"cpu"`` uses libjpeg (slower
            than PIL in the workers, for tests and machines without a GPU).
    """

    def __init__(self, size: tuple[int, int], device: str | torch.device) -> None:
        self.size = size
        self.device = torch.device(device)
        self.fallbacks = 0
        """JPEGs the device decoder rejected that PIL decoded."""

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        encoded: list[tuple[int, str, Tensor, int]] = batch.get("encoded") or []
        images = batch["images"].to(self.device, non_blocking=True)
        if not encoded:
            return {**batch, "images": images}
        decoded = self._decode([e[2] for e in encoded])
        upright = [
            apply_orientation(image, e[3]) if image is not None else None
            for e, image in zip(encoded, decoded, strict=True)
        ]
        fitted = self._fit_all(upright)
        good: list[Tensor] = []
        indices: list[int] = []
        skipped = list(batch["skipped"])
        for (index, path, data, _), image in zip(encoded, fitted, strict=True):
            if image is None:
                image = self._fallback(data, path)
                if image is None:
                    skipped.append((path, "DataError: neither nvjpeg nor PIL can decode it"))
                    continue
            good.append(image)
            indices.append(index)
        if good:
            images = torch.cat([images, torch.stack(good)])
        return {
            **batch,
            "images": images,
            "indices": torch.cat([batch["indices"], torch.tensor(indices, dtype=torch.int64)]),
            "skipped": skipped,
            "encoded": [],
        }

    def _decode(self, data: list[Tensor]) -> list[Tensor | None]:
        from torchvision.io import ImageReadMode, decode_jpeg

        try:
            return list(decode_jpeg(data, mode=ImageReadMode.RGB, device=self.device))
        except RuntimeError:  # one bad file fails the whole call: find it
            out: list[Tensor | None] = []
            for d in data:
                try:
                    out.append(decode_jpeg(d, mode=ImageReadMode.RGB, device=self.device))
                except RuntimeError:
                    out.append(None)
            return out

    def _fit_all(self, images: list[Tensor | None]) -> list[Tensor | None]:
        """:meth:`_fit` each image; images of the same shape (common in curated datasets)
        are resized together, one kernel for the group."""
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, image in enumerate(images):
            if image is not None:
                groups.setdefault(tuple(image.shape), []).append(i)
        out: list[Tensor | None] = [None] * len(images)
        for members in groups.values():
            stacked = torch.stack([images[i] for i in members])  # type: ignore[misc]
            for i, image in zip(members, self._fit(stacked), strict=True):
                out[i] = image
        return out

    def _fit(self, image: Tensor) -> Tensor:
        """Resize ``(B, C, h, w)`` images (antialiased bilinear) to cover ``size`` and
        center-crop them to it."""
        height, width = self.size
        h, w = image.shape[-2:]
        if (h, w) == (height, width):
            return image
        scale = max(height / h, width / w)
        new_h, new_w = (
            max(height, math.ceil(h * scale - 1e-6)),
            max(width, math.ceil(w * scale - 1e-6)),
        )
        resized = F.interpolate(image.float(), size=(new_h, new_w), mode="bilinear", antialias=True)
        top, left = (new_h - height) // 2, (new_w - width) // 2
        crop = resized[:, :, top : top + height, left : left + width]
        return crop.round_().clamp_(0, 255).to(torch.uint8)

    def _fallback(self, data: Tensor, path: str) -> Tensor | None:
        image = _pil_decode(data, path, self.size)
        if image is None:
            return None
        self.fallbacks += 1
        return image.to(self.device)
