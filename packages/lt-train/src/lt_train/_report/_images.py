"""The report's pictures: grids of the augmented views, and the nearest neighbours of a
few sample images under the starting and the final weights, as base64 PNGs."""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

__all__ = ["Neighbours", "ViewGrid", "neighbours", "png", "view_grids"]

#: Shown size of a view's longer side: small views are enlarged, large ones reduced.
_VIEW_MIN, _VIEW_MAX = 64, 128
_GAP = 3


@dataclass(frozen=True, kw_only=True)
class ViewGrid:
    """The views of one group: one row per image, one column per view (a group of one
    view per image shows its images in one row)."""

    name: str
    size: tuple[int, int]
    rows: int
    columns: int
    png: str


@dataclass(frozen=True, kw_only=True)
class Neighbours:
    """A query image and its nearest sample images (index, cosine) at the start and end."""

    query: int
    start: list[tuple[int, float]]
    last: list[tuple[int, float]]


def png(image: Tensor) -> str:
    """A ``(3, H, W)`` uint8 image as a base64 PNG."""
    array = image.permute(1, 2, 0).contiguous().numpy()
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", optimize=True)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def view_grids(views: dict[str, object]) -> tuple[list[ViewGrid], list[str]]:
    """One grid per group of ``views.pt``, and a note for each group that does not fit the
    contract (``images``: uint8 ``(n_images, n_views, 3, h, w)``)."""
    grids, problems = [], []
    groups = views.get("groups")
    for i, group in enumerate(groups if isinstance(groups, list) else []):
        images = group.get("images") if isinstance(group, dict) else None
        name = str(group.get("name", f"group {i}")) if isinstance(group, dict) else f"group {i}"
        if not (
            isinstance(images, Tensor)
            and images.dtype == torch.uint8
            and images.ndim == 5
            and images.shape[2] == 3
            and images.shape[0] * images.shape[1] > 0
        ):
            problems.append(f"views.pt: '{name}' has no (n_images, n_views, 3, h, w) uint8 images.")
            continue
        rows, columns, _, h, w = images.shape
        tiles = _fit(images.flatten(0, 1), _VIEW_MIN, _VIEW_MAX)
        grid = _grid(tiles, columns if columns > 1 else rows)  # one view each: in a row
        grids.append(
            ViewGrid(name=name, size=(int(h), int(w)), rows=rows, columns=columns, png=png(grid))
        )
    if not isinstance(groups, list):
        problems.append("views.pt has no list of groups.")
    return grids, problems


def neighbours(start: Tensor, last: Tensor, queries: int = 6, k: int = 5) -> list[Neighbours]:
    """For ``queries`` images spread evenly over the sample, their ``k`` nearest other
    sample images by cosine similarity of the L2-normalized embeddings ``start`` and
    ``last`` (both ``(N, D)``; the query itself is excluded)."""
    n = start.shape[0]
    k = min(k, n - 1)
    if k < 1:
        return []
    picks = sorted(set(torch.linspace(0, n - 1, min(queries, n)).round().long().tolist()))
    found = {}
    for name, embeddings in (("start", start), ("last", last)):
        normed = F.normalize(embeddings.float(), dim=1)
        similarity = normed[picks] @ normed.T
        similarity[torch.arange(len(picks)), picks] = -float("inf")
        values, indices = similarity.topk(k, dim=1)
        found[name] = [
            list(zip(row_i.tolist(), row_v.tolist())) for row_i, row_v in zip(indices, values)
        ]
    return [
        Neighbours(query=q, start=found["start"][i], last=found["last"][i])
        for i, q in enumerate(picks)
    ]


def _fit(images: Tensor, smallest: int, largest: int) -> Tensor:
    """``images`` ``(B, 3, h, w)`` scaled so that the longer side lies in [smallest, largest]
    (nearest neighbour when enlarging: the pixels stay visible as they are)."""
    h, w = images.shape[-2:]
    side = max(h, w)
    target = min(max(side, smallest), largest)
    if target == side:
        return images
    size = (max(1, round(h * target / side)), max(1, round(w * target / side)))
    if target > side:
        return F.interpolate(images, size=size, mode="nearest")
    scaled = F.interpolate(images.float(), size=size, mode="bilinear", antialias=True)
    return scaled.round().clamp(0, 255).to(torch.uint8)


def _grid(tiles: Tensor, columns: int) -> Tensor:
    """``tiles`` ``(B, 3, h, w)`` in rows of ``columns``, white gaps between them."""
    count, _, h, w = tiles.shape
    rows = -(-count // columns)
    grid = torch.full(
        (3, rows * (h + _GAP) - _GAP, columns * (w + _GAP) - _GAP), 255, dtype=torch.uint8
    )
    for i in range(count):
        r, c = divmod(i, columns)
        grid[:, r * (h + _GAP) : r * (h + _GAP) + h, c * (w + _GAP) : c * (w + _GAP) + w] = tiles[i]
    return grid
