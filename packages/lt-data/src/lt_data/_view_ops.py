"""Batched kernels of the view transform (private to ``lt_data._views``).

Every function takes all views of a group at once, ``(K, 3, h, w)`` float images in
``[0, 1]`` with per-row parameters of shape ``(K, 3, 1, 1)`` (or ``(K, 1, 1, 1)``), and runs a
fixed handful of torch ops whatever ``K`` is. The pixel ops may write into the images they
are given (the pipeline's own crops). A row whose op is not applied gets the op's
identity parameter (factor 1, hue shift 0, a unit impulse blur kernel), so no op needs a
mask or an index of the selected rows.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from lt_data._view_plan import CANDIDATES, ELL, A, Consts

_NOT_MAX = 1e30  # hue: pushes the candidate of a channel below the max out of the amax
# CPU blur: one 2-D convolution up to this kernel size (views of up to ~64 px), two 1-D above.
CPU_2D_BLUR_MAX_TAPS = 7


def draw_params(c: Consts, device: torch.device) -> tuple[Tensor, Tensor]:
    """All random parameters of a group: the roi boxes ``(K, 5)`` of the crops and the misc
    parameters ``(K, 3, 1, M)`` of the columns of :attr:`GroupPlan.misc` (before
    :func:`blend_misc`).

    The boxes are ``[b, x1, y1, x2, y2]`` in units of the input width; ``x1 > x2`` flips
    horizontally, ``y1 > y2`` vertically.
    """
    k, _, n = c.off.shape
    u = torch.rand((k, 1, n), device=device)
    p = torch.addcmul(c.off, u, c.scale)
    if c.lo is not None:
        p.clamp_(c.lo, c.hi)
    m = n - CANDIDATES * 6
    misc = p.as_strided((k, 3, 1, m), (3 * n, n, m, 1), CANDIDATES * 6)
    crops = p.as_strided((k, 3, CANDIDATES, 6), (3 * n, n, 6, 1))
    if c.cpu:  # the sizes of row 1 only (row 2 has the same; row 0's are 0: area 0), then
        # the boxes of the chosen candidates only: a third and an 11th of the work
        area, ell = (p.as_strided((k, 1, CANDIDATES, 1), (3 * n, n, 6, 1), n + i) for i in (A, ELL))
    else:
        area, ell, corner, pos = torch.split(crops, c.split, dim=-1)
    # Width and height of each candidate in pixels: sqrt(a * H * W * r), sqrt(a * H * W / r).
    # (xlogy(0.5, a) is one op on an accelerator; on the CPU log and mul take a quarter of it)
    half_log = torch.log(area).mul_(0.5) if c.cpu else torch.xlogy(0.5, area)
    size = torch.addcmul(half_log, ell, c.sgn).exp_().round_()
    valid = size <= c.full
    if c.min_size is not None:  # the rows of size: 3, or row 1 alone (the CPU kernels)
        valid &= size >= c.min_size[-size.shape[1] :]
    # torchvision takes the first valid of its tries; the last candidate (fallback) always is.
    first = valid.all(dim=(1, 3), keepdim=True).max(dim=2, keepdim=True).indices
    # Rows [_, b], [x1, y1], [x2, y2] of the roi box: x1 = x + f * w with x = u * (W - w).
    if c.cpu:
        _, _, corner, pos = torch.split(crops.take_along_dim(first, dim=2), c.split, dim=-1)
        box = torch.lerp(pos, corner, size.take_along_dim(first, dim=2) * c.row_scale)
    else:
        box = torch.lerp(pos, corner, size / c.full).take_along_dim(first, dim=2)
    return box.as_strided((k, 5), (6, 1), 1), misc


def crop(
    x: Tensor, rois: Tensor, size: tuple[int, int], c: Consts, trig: Tensor | None = None
) -> Tensor:
    """The ``(K, 3, *size)`` crops of ``x`` (``rois`` from :func:`draw_params`): one bilinear
    sample per output pixel at its center, a resize without antialias (torchvision's
    ``roi_align`` with ``aligned=True`` and one sample per bin).

    With the table ``c.grid`` (the CPU kernels, and a group that rotates) the crop is one
    ``grid_sample`` instead, 3-5x faster on the CPU than ``roi_align`` (which runs on one
    core there): the same samples, with the border clamp of ``padding_mode="border"``. The
    ``V`` views of an image are stacked in the grid's rows, so the image is not copied per
    view. ``trig`` (:func:`rotation`) turns each view about its center: the grid is then
    linear in the products of the roi and ``[1, cos, sin]``, still one ``addmm``, and
    samples that leave the image are mirrored back (``padding_mode="reflection"``).
    """
    if c.grid is None:
        crops: Tensor = torch.ops.torchvision.roi_align(x, rois, float(x.shape[-1]), *size, 1, True)
        return crops
    (h, w), (b, ch, _, _), k = size, x.shape, rois.shape[0]
    v = k // b
    if trig is not None:  # (K, 5 * 3): roi column e times [1, cos, sin][t] at 3 e + t
        rois = torch.mul(rois.unsqueeze(-1), trig.view(k, 1, 3)).view(k, -1)
    n = rois.shape[1]
    image_major = rois.view(v, b, n).transpose(0, 1).reshape(k, n)
    grid = torch.addmm(c.grid[0], image_major, c.grid[1:]).view(b, v * h, w, 2)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode=c.padding, align_corners=False)
    return out.view(b, ch, v, h, w).permute(2, 0, 1, 3, 4).contiguous().view(k, ch, h, w)


def rotation(angle: Tensor) -> Tensor:
    """``(K, 3, 1, 1)`` ``[1, cos a, sin a]`` of the angle column (rows ``[pi / 2, a + pi /
    2, a]``; ``[pi / 2, pi / 2, 0]`` where a view is not turned: exactly ``[1, 1, 0]``)."""
    return torch.sin(angle)


def blend_misc(misc: Tensor, c: Consts) -> tuple[Tensor, ...]:
    """The ``(K, 3, 1, 1)`` parameters of the misc columns, the identity where a row's op is
    not applied: each column is blended with its identity by the mask in column ``widx``."""
    if c.widx.numel():
        misc = torch.lerp(c.ident, misc, misc.index_select(-1, c.widx))
    return torch.split(misc, 1, dim=-1)


def brightness(x: Tensor, factor: Tensor, c: Consts) -> Tensor:
    """torchvision's ``adjust_brightness``: ``clamp(factor * x, 0, 1)``."""
    return x.mul_(factor).clamp_(0, 1)


def contrast(x: Tensor, factor: Tensor, c: Consts) -> Tensor:
    """torchvision's ``adjust_contrast``: blend with the mean of the grayscale image."""
    return _toward(x, _gray_mean(x, c), factor, c).clamp_(0, 1)


def saturation(x: Tensor, factor: Tensor, c: Consts) -> Tensor:
    """torchvision's ``adjust_saturation``: blend with the grayscale image."""
    return _toward(x, _gray(x, c), factor, c).clamp_(0, 1)


def hue(x: Tensor, shift: Tensor, c: Consts) -> Tensor:
    """torchvision's ``adjust_hue`` (rgb -> hsv, shift, hsv -> rgb) without an hsv image.

    ``shift`` is ``n_c + 6 * hue_factor`` per channel (``n = 5, 3, 1``). With ``M``, ``m``
    and ``C = M - m`` the max, min and chroma of a pixel and ``i`` its argmax channel, the
    hue in sixths is ``h = 2 i + (x[i+1] - x[i+2]) / C`` and channel ``c`` of the result is
    ``M - C * clamp(min(k, 4 - k), 0, 1)`` with ``k = (shift_c + h) mod 6``.

    The CPU kernels avoid the argmax (a ``max`` with indices over 3 channels takes 20x an
    ``amax`` there): ``h`` is the ``amax`` over the channels of ``2 c + (x[c+1] - x[c+2]) / C
    - 1e30 * (M - x[c])``, which is exact at a max channel and far below elsewhere. Where
    two channels tie for the max, both give the same hue modulo 6, as torchvision's first
    max does.
    """
    if not c.cpu:  # first max: r, then g, then b, as torchvision
        high, top = x.max(dim=1, keepdim=True)
    else:
        high = x.amax(dim=1, keepdim=True)
    low = x.amin(dim=1, keepdim=True)
    chroma = (high - low).clamp_min_(1e-12)  # x[i+1] - x[i+2] is 0 where the chroma is 0
    # x[c+1] - x[c+2] for every channel c: a 3x3 channel mix (torch.linalg.cross with a
    # ones vector computes the same, 20x slower on the CPU); on the CPU three subtractions
    # into the channels of one tensor, 2x faster than the batched matmul there.
    diff = _mix(c.turn, x, c) if not c.cpu else _turn(x)
    if not c.cpu:
        k = torch.add(shift, top, alpha=2).addcdiv_(diff.gather(1, top), chroma)
        k = k.remainder_(6)
        return torch.lerp(high, low, torch.minimum(k, 4 - k).clamp_(0, 1))
    cand = diff.div_(chroma).add_(c.sector).add_(x - high, alpha=_NOT_MAX)
    # Without the mod (a remainder takes 10x a subtraction there): the tent is 1 - clamp(d -
    # 1, 0, 1), d the distance of k to the nearest of 2 + 6 n. With k in [-3, 13] (h in [-1,
    # 5], |hue factor| <= 0.5, which lt_core.ColorJitter checks), u = |k - 5| is in [0, 8]
    # and d = ||u - 6| - 3|.
    d = torch.add(shift - 5, cand.amax(dim=1, keepdim=True)).abs_().sub_(6).abs_().sub_(3)
    return d.abs_().sub_(1).clamp_(0, 1).mul_(chroma).add_(low)  # low + chroma * (1 - tent)


def _turn(x: Tensor) -> Tensor:
    """``x[c+1] - x[c+2]`` in channel ``c``."""
    diff = torch.empty_like(x)
    for channel in range(3):
        torch.sub(x[:, (channel + 1) % 3], x[:, (channel + 2) % 3], out=diff[:, channel])
    return diff


def grayscale(x: Tensor, mask: Tensor, c: Consts) -> Tensor:
    """torchvision's ``rgb_to_grayscale`` (3 channels) where ``mask`` is 1."""
    if not c.cpu:
        return torch.lerp(x, _gray(x, c), mask)
    return _toward(x, _gray(x, c), 1 - mask, c)


def gaussian_blur(x: Tensor, sigma: Tensor, c: Consts) -> Tensor:
    """Separable Gaussian blur with a per-row sigma and reflect padding (kornia's default).

    On the CPU, kernels of up to :data:`CPU_2D_BLUR_MAX_TAPS` taps a side run as one 2-D
    convolution (the outer product of the 1-D kernel with itself): 1.2-1.7x faster there
    than two 1-D passes; larger ones as two.
    """
    k, ch, h, w = x.shape
    kernel = torch.softmax(c.taps * sigma.pow(-2), dim=-1)  # (K, 3, 1, taps), normalized
    taps = c.taps.shape[0]
    pad = taps // 2
    y = F.pad(x.view(1, k * ch, h, w), (pad, pad, pad, pad), mode="reflect")
    if c.cpu and taps <= CPU_2D_BLUR_MAX_TAPS:
        square = torch.mul(kernel.view(k * ch, 1, taps, 1), kernel.view(k * ch, 1, 1, taps))
        return F.conv2d(y, square, groups=k * ch).view(k, ch, h, w)
    y = F.conv2d(y, kernel.view(k * ch, 1, 1, -1), groups=k * ch)
    y = F.conv2d(y, kernel.view(k * ch, 1, -1, 1), groups=k * ch)
    return y.view(k, ch, h, w)


def _toward(x: Tensor, anchor: Tensor, weight: Tensor, c: Consts) -> Tensor:
    """``torch.lerp(anchor, x, weight)``; on the CPU ``(x - anchor) * weight + anchor`` in
    place in ``x``: there a ternary op whose operands broadcast in different dimensions
    takes 3-5x as long as these binary ones, and reusing ``x`` keeps the pass in cache."""
    if not c.cpu:
        return torch.lerp(anchor, x, weight)
    return x.sub_(anchor).mul_(weight).add_(anchor)


def _gray(x: Tensor, c: Consts) -> Tensor:
    """``(K, 1, h, w)`` grayscale, a weighted channel sum."""
    return _mix(c.gray, x, c)


def _mix(weights: Tensor, x: Tensor, c: Consts) -> Tensor:
    """``(K, O, h, w)`` channel mix ``weights @ x`` of ``(O, 3)`` weights: a float32 matmul
    (a conv2d would use TF32 on Ampere GPUs by default). One einsum op on an accelerator;
    on the CPU a matmul over a view, 2-6x faster (the einsum copies ``x`` to put the
    channels first)."""
    if not c.cpu:
        return torch.einsum("oc,kchw->kohw", weights, x)
    k, ch, h, w = x.shape
    return torch.matmul(weights, x.view(k, ch, h * w)).view(k, -1, h, w)


def _gray_mean(x: Tensor, c: Consts) -> Tensor:
    """``(K, 1, 1, 1)`` mean of the grayscale image."""
    return torch.einsum("ocpq,kchw->kopq", c.mean, x)


def solarize(x: Tensor, limit: Tensor, c: Consts) -> Tensor:
    """Solarize with threshold 0.5 where ``limit`` is 1: ``min(x, limit - x)`` (2: identity),
    in place in ``x``."""
    return torch.minimum(x, limit - x, out=x)


def normalize(x: Tensor, c: Consts) -> Tensor:
    """``(x - mean) / std`` with each view's mean and std."""
    if not c.cpu:
        return torch.addcmul(c.norm_bias, x, c.norm_scale)
    return x.mul_(c.norm_scale).add_(c.norm_bias)
