"""The decode size: how large images are decoded so that random crops keep their detail.

The views are cut from the decoded image on the device. A crop of area scale ``s`` of an
image decoded at side ``D`` is ``sqrt(s) * D`` pixels wide; resized to a view of ``v``
pixels, it is upsampled (blurred) unless ``D >= v / sqrt(s)``. SimCLR's 224-pixel views
at scale 0.08 need ``D = 792``; decoding at 224 would upsample those crops 3.5x.
"""

from __future__ import annotations

import io
import logging
import math
import os
import statistics
import tarfile
from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from lt_core import ConfigError, ViewConfig
from lt_data._shardlist import is_image_suffix, local_path

logger = logging.getLogger(__name__)

__all__ = ["MAX_DECODE_FACTOR", "decode_size_for", "probe_short_side", "resolve_decode_size"]

#: ``decode_size="auto"`` decodes at most this many times the image size per side (4x the
#: pixels): the memory, the worker-to-device traffic and a cache grow with its square.
MAX_DECODE_FACTOR = 2.0
_PROBES = 64


def decode_size_for(
    recipe: Sequence[ViewConfig],
    image_size: tuple[int, int],
    source_side: float | None = None,
    max_factor: float = MAX_DECODE_FACTOR,
) -> tuple[int, int]:
    """The ``(height, width)`` to decode images at for ``recipe``'s crops.

    The factor over ``image_size`` is what the smallest crop of any view group needs to
    keep the source's detail (``max(view size) / sqrt(min crop scale)``), bounded by
    ``max_factor`` and by what the sources have (``source_side``, their typical shorter
    side: decoding a 32-pixel image at 64 pixels adds no detail), and at least 1.

    Args:
        recipe: The view groups of the method.
        image_size: ``(height, width)`` of the method's images (its largest views).
        source_side: The typical shorter side of the source images in pixels (see
            :func:`probe_short_side`), or ``None`` if unknown.
        max_factor: The bound on the factor.
    """
    height, width = image_size
    need = max(max(v.size) / math.sqrt(max(min(v.crop_scale), 1e-6)) for v in recipe)
    factor = min(need / max(height, width), max_factor)
    if source_side is not None:
        factor = min(factor, source_side / min(height, width))
    factor = max(1.0, factor)
    return round(height * factor), round(width * factor)


def resolve_decode_size(
    value: int | str,
    recipe: Sequence[ViewConfig],
    image_size: tuple[int, int],
    source_side: float | None,
) -> tuple[int, int]:
    """The ``decode_size`` option: ``"auto"`` (:func:`decode_size_for`) or the height in
    pixels (the width follows the image's aspect ratio), at least the image height."""
    if value == "auto":
        return decode_size_for(recipe, image_size, source_side)
    height, width = image_size
    if not isinstance(value, int) or isinstance(value, bool) or value < height:
        raise ConfigError(
            f"decode_size must be 'auto' or an int of at least the image height ({height}), "
            f"got {value!r}. Fix: decode_size='auto', or e.g. decode_size={2 * height}."
        )
    return value, round(width * value / height)


def probe_short_side(sources: Sequence[str], streaming: bool) -> float | None:
    """The median shorter side of up to 64 source images, read from their headers only
    (no pixels decoded), or ``None`` when none can be read. Files: spread over the list;
    shards: the first images of the first local shard (remote shards: ``None``)."""
    sides: list[int] = []
    if streaming:
        sides = _shard_sides(sources[0]) if sources else []
    else:
        step = max(1, len(sources) // _PROBES)
        for i in range(0, len(sources), step):
            side = _short_side(sources[i])
            if side is not None:
                sides.append(side)
            if len(sides) == _PROBES:
                break
    return float(statistics.median(sides)) if sides else None


def _short_side(source: str | io.BytesIO) -> int | None:
    try:
        with Image.open(source) as img:
            return min(img.size)
    except Exception:  # a bad file is the loader's business, not the probe's
        return None


def _shard_sides(shard: str) -> list[int]:
    path = local_path(shard)
    if path is None or not Path(path).is_file():
        return []
    sides: list[int] = []
    try:
        with tarfile.open(path) as tar:
            for member in tar:
                suffix = os.path.basename(member.name).partition(".")[2]
                if not member.isfile() or not is_image_suffix(suffix):
                    continue
                file = tar.extractfile(member)
                side = _short_side(io.BytesIO(file.read())) if file is not None else None
                if side is not None:
                    sides.append(side)
                if len(sides) == _PROBES:
                    break
    except (OSError, tarfile.TarError):
        pass
    return sides
