"""The static plan of a view group and its constant tables (private to ``lt_data._views``).

All random parameters of a group come from one ``torch.rand`` tensor of shape
``(K, 1, CANDIDATES * 6 + M)`` (``K = views * batch`` rows, view-major) that one
``addcmul(off, u, scale)`` and one ``clamp(lo, hi)`` turn into values. The tables built here
give each column its distribution. The first ``CANDIDATES * 6`` columns are the 6 crop
columns of each crop candidate, the last ``M`` the other ("misc") columns, drawn once. The
``1`` broadcasts to 3 rows: for the crop columns they are the rows of the roi box (``[_,
b]``, ``[x1, y1]``, ``[x2, y2]``, in units of the input width), for the misc columns the RGB
channels.

* Crop: candidate ``j < TRIES`` is one of torchvision's ``RandomResizedCrop`` attempts
  (area ``a``, log aspect ratio, position); the last candidate is its fallback, a constant.
* A Bernoulli(``p``) mask is ``clamp(T - n, 0, 1)`` with ``n = 2**24 * u`` and
  ``T = round(2**24 * p)``: ``torch.rand`` draws multiples of ``2**-24`` on the CPU, so
  ``n`` is an integer and the mask exactly 0 or 1 (on CUDA, where ``u`` is finer, 1 row in
  ``2**24`` gets a fractional mask).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from lt_core import ViewConfig

# Reference resolution of ``ViewConfig.blur_sigma`` and of the ~10% blur kernel.
REFERENCE_SIZE = 224
TRIES = 10  # torchvision's RandomResizedCrop draws up to 10 candidates
CANDIDATES = TRIES + 1  # ... and falls back to a central crop
STEPS = ("brightness", "contrast", "saturation", "hue")
SIGMA_DELTA = 1e-3  # blur sigma of rows that are not blurred: a unit impulse kernel
TAP_CUTOFF = 1e-8  # blur taps lighter than this at the largest sigma are left out
GRAY = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale weights
_HUE_OFFSETS = (5.0, 3.0, 1.0)  # hsv -> rgb: channel c is V - C * tent((n_c + 6 h) mod 6)
_N = float(2**24)
A, ELL, GX, GY, UX, UY = range(6)  # the crop columns; the misc columns follow


@dataclass(frozen=True)
class GroupPlan:
    """The views of one output size (several recipe groups may share it)."""

    size: tuple[int, int]
    views: tuple[ViewConfig, ...]  # the config of each view row, in order
    slots: tuple[int, ...]  # position of each view in the transform's output
    flip: bool  # a horizontal flip somewhere
    vflip: bool  # a vertical flip somewhere
    rotate: bool  # a rotation somewhere (ViewConfig.rotates): the crop is a grid_sample
    steps: tuple[str, ...]  # color jitter steps with a non-zero strength somewhere
    gray: bool
    blur: bool
    solarize: bool

    @property
    def solarize_span(self) -> tuple[int, int]:
        """The views ``[first, end)`` that span every view with a solarize probability: the
        solarization runs on their rows only (DINO: the second global view of two)."""
        hits = [i for i, cfg in enumerate(self.views) if cfg.solarize_prob > 0]
        return (hits[0], hits[-1] + 1) if hits else (0, 0)

    @property
    def misc(self) -> tuple[str, ...]:
        """Names of the misc columns, in order."""
        lerp = ("one",) if self.steps or self.blur or self.rotate else ()
        jitter = ("jitter", *self.steps) if self.steps else ()
        return (
            *lerp,
            *jitter,
            *(("gray",) if self.gray else ()),
            *(("solarize",) if self.solarize else ()),
            *(("blur", "sigma") if self.blur else ()),
            *(("rotate", "angle") if self.rotate else ()),
        )


def make_plan(size: tuple[int, int], views: list[ViewConfig], slots: list[int]) -> GroupPlan:
    def jitter(cfg: ViewConfig, step: str) -> float:
        cj = cfg.color_jitter
        return getattr(cj, step) if cj is not None and cj.prob > 0 else 0.0

    return GroupPlan(
        size=size,
        views=tuple(views),
        slots=tuple(slots),
        flip=any(c.hflip_prob > 0 for c in views),
        vflip=any(c.vflip_prob > 0 for c in views),
        rotate=any(c.rotates for c in views),
        steps=tuple(s for s in STEPS if any(jitter(c, s) > 0 for c in views)),
        gray=any(c.grayscale_prob > 0 for c in views),
        blur=any(c.blur_prob > 0 for c in views),
        solarize=any(c.solarize_prob > 0 for c in views),
    )


def blur_kernel_size(size: tuple[int, int]) -> int:
    """Odd Gaussian blur kernel size of about 10% of the view size, at least 3."""
    k = max(3, math.ceil(0.1 * max(size)))
    return k if k % 2 == 1 else k + 1


def blur_taps(plan: GroupPlan) -> int:
    """The taps of the group's blur kernel that can change a pixel: :func:`blur_kernel_size`,
    less the outer taps whose unnormalized weight ``exp(-d**2 / (2 * sigma**2))`` stays below
    :data:`TAP_CUTOFF` at the largest sigma of the group's blurred views. Leaving them out
    moves no output by more than ``3 * TAP_CUTOFF`` (pixels in ``[0, 1]``), half of
    float32's spacing at 0.5. 1 (no blur at all) when the largest sigma is below 0.165 px:
    views of up to 18 px with the default ``blur_sigma`` (0.1, 2.0)."""
    sigmas = [
        cfg.blur_sigma[1] * max(plan.size) / REFERENCE_SIZE
        for cfg in plan.views
        if cfg.blur_prob > 0
    ]
    if not sigmas:
        return 1
    reach = math.floor(max(sigmas) * math.sqrt(-2 * math.log(TAP_CUTOFF)))
    return min(blur_kernel_size(plan.size), 2 * reach + 1)


@dataclass(frozen=True)
class Consts:
    """The device tensors of one plan for one batch size and input size."""

    off: Tensor  # (K, 3, CANDIDATES * 6 + M): the crop columns per candidate, then misc
    scale: Tensor  # (K, 3, CANDIDATES * 6 + M)
    lo: Tensor | None  # (CANDIDATES * 6 + M,) clamp bounds, None when no column needs one
    hi: Tensor | None
    split: list[int]  # the crop columns: a, ell, (gx, gy), (ux, uy)
    sgn: Tensor  # (2,) +1 for x, -1 for y
    full: Tensor  # (2,) the input's width and height
    row_scale: Tensor  # (3, 1, 2) 1 / full in the rows [x1, y1] and [x2, y2], 0 in [_, b]
    min_size: Tensor | None  # (3, 1, 1) [0, 1, 1] where a try may round to 0 pixels, else None
    ident: Tensor  # (3, 1, M) misc values of rows whose op is not applied
    widx: Tensor  # (M,) misc column whose value is the lerp weight of each column
    gray: Tensor  # (1, 3) grayscale weights
    mean: Tensor  # (1, 3, 1, 1) grayscale weights / (h * w): the contrast's mean
    turn: Tensor  # (3, 3): row c picks x[c+1] - x[c+2]
    taps: Tensor  # (k,) -t**2 / 2 of the blur taps (blur_taps; (1,): no blur)
    norm_scale: Tensor  # (K, 3, 1, 1)
    norm_bias: Tensor  # (K, 3, 1, 1)
    sector: Tensor  # (1, 3, 1, 1): [0, 2, 4], the hue (in sixths) at each max channel
    # Kernels for the CPU: channel mixes as matmul, hue without an argmax (_view_ops.hue).
    cpu: bool = False
    # The crop as grid_sample (None: roi_align), see _view_ops.crop: (6, h * w * 2), the
    # grid of a view as 1 (row 0) and roi (rows 1-5) times the table; with a rotation
    # (16, h * w * 2), rows 1-15 the products of the roi's 5 and [1, cos, sin].
    grid: Tensor | None = None
    # grid_sample's padding: "reflection" with a rotation (its corners may leave the image).
    padding: str = "border"


def _fallback(cfg: ViewConfig, height: int, width: int) -> tuple[int, int]:
    """torchvision's central-crop fallback size ``(w, h)``."""
    lo, hi = min(cfg.crop_ratio), max(cfg.crop_ratio)
    in_ratio = width / height
    if in_ratio < lo:
        return width, round(width / lo)
    if in_ratio > hi:
        return round(height * hi), height
    return width, height


def _center(full: int, crop: int) -> float:
    """Position fraction ``u`` of the centered crop: ``u * (full - crop) = (full - crop) // 2``."""
    return (full - crop) // 2 / (full - crop) if full > crop else 0.0


def _crop_columns(t: Tensor, s: Tensor, cfg: ViewConfig, height: int, width: int) -> None:
    """Fill the crop columns of one view's ``(3, CANDIDATES, R)`` tables ``t`` (offset), ``s``.

    Size in pixels: ``w = round(exp(log(a * H * W) / 2 + ell))`` and ``h = round(exp(... -
    ell))`` with ``ell`` half the log aspect ratio. Box in units of ``W``: ``x1 = x + f * w``,
    ``x2 = x + (1 - f) * w`` with ``x = u * (W - w)`` and the flip ``f``; ``y1 = y``,
    ``y2 = y + h``, or with the vertical flip ``g``: ``y1 = y + g * h``, ``y2 = y + (1 - g) * h``.

    The vertical flip's corner column is ``g * H / W`` (units of ``W``): a mask scaled by a
    power of two ``S >= H / W`` (exact, as the mask) clamped to ``[0, H / W]``.
    """
    area, aspect = height * width, height / width
    lo, hi = (math.log(r) for r in cfg.crop_ratio)
    t[1:, :TRIES, A] = cfg.crop_scale[0] * area
    s[1:, :TRIES, A] = (cfg.crop_scale[1] - cfg.crop_scale[0]) * area
    t[1:, :TRIES, ELL], s[1:, :TRIES, ELL] = lo / 2, (hi - lo) / 2
    s[1:, :TRIES, UX], s[1:, :TRIES, UY] = 1.0, aspect
    w, h = _fallback(cfg, height, width)
    t[1:, TRIES, A], t[1:, TRIES, ELL] = w * h, math.log(w / h) / 2
    t[1:, TRIES, UX], t[1:, TRIES, UY] = _center(width, w), _center(height, h) * aspect
    t[2, :, GX], t[2, :, GY] = 1.0, aspect
    if cfg.hflip_prob > 0:  # f: a Bernoulli mask in row 1, 1 - f in row 2 (same uniform)
        flip = round(cfg.hflip_prob * _N)
        t[1, :, GX], s[1, :, GX] = flip, -_N
        t[2, :, GX], s[2, :, GX] = 1 - flip, _N
    if cfg.vflip_prob > 0:  # g: clamp(S * (T - n), 0, H / W) in row 1, 1 - g in row 2
        flip, big = round(cfg.vflip_prob * _N), _vflip_scale(height, width)
        t[1, :, GY], s[1, :, GY] = big * flip, -big * _N
        t[2, :, GY], s[2, :, GY] = big * (1 - flip), big * _N


def _vflip_scale(height: int, width: int) -> float:
    """The smallest power of two ``>= max(1, H / W)``: it scales an integer exactly."""
    return 2.0 ** max(0, math.ceil(math.log2(height / width)))


def _misc_columns(t: Tensor, s: Tensor, cfg: ViewConfig, plan: GroupPlan) -> None:
    """Fill the misc columns of one view's tables (rows are the RGB channels)."""
    cj = cfg.color_jitter if cfg.color_jitter is not None and cfg.color_jitter.prob > 0 else None
    for i, name in enumerate(plan.misc, start=6):
        prob = {
            "jitter": cj.prob if cj is not None else 0.0,
            "gray": cfg.grayscale_prob,
            "blur": cfg.blur_prob,
            "rotate": cfg.rotation_prob if cfg.rotates else 0.0,
        }.get(name)
        if name == "one":
            t[..., i] = 1.0
        elif prob is not None:
            t[..., i], s[..., i] = round(prob * _N), (-_N if prob > 0 else 0.0)
        elif name == "solarize":  # 1 (solarize: min(x, 1 - x)) or 2 (identity: min(x, 2 - x))
            p = cfg.solarize_prob
            t[..., i], s[..., i] = 2 - round(p * _N), (_N if p > 0 else 0.0)
        elif name == "sigma":
            ratio = max(plan.size) / REFERENCE_SIZE
            lo, hi = cfg.blur_sigma
            t[..., i], s[..., i] = lo * ratio, (hi - lo) * ratio
        elif name == "angle":  # radians; rows [pi/2, a + pi/2, a]: sin gives [1, cos, sin]
            lo, hi = (math.radians(d) for d in cfg.rotation_degrees) if cfg.rotates else (0, 0)
            t[0, :, i] = math.pi / 2
            t[1, :, i], s[1, :, i] = lo + math.pi / 2, hi - lo
            t[2, :, i], s[2, :, i] = lo, hi - lo
        elif name == "hue":
            h = cj.hue if cj is not None else 0.0
            for c, n in enumerate(_HUE_OFFSETS):  # 6 * hue shift, plus the channel's offset
                t[c, :, i], s[c, :, i] = n - 6 * h, 12 * h
        else:  # brightness, contrast, saturation: torchvision's [max(0, 1 - x), 1 + x]
            x = getattr(cj, name) if cj is not None else 0.0
            t[..., i], s[..., i] = max(0.0, 1 - x), 1 + x - max(0.0, 1 - x)


def _grid_table(size: tuple[int, int], height: int, width: int) -> Tensor:
    """``grid`` of :class:`Consts` (see :func:`_view_ops.crop`): output pixel ``(i, j)`` of an
    ``h x w`` view samples at ``x1 + (j + 0.5) / w * (x2 - x1)``, ``y1 + (i + 0.5) / h * (y2 -
    y1)``; ``grid_sample`` maps ``[0, W]`` to ``[-1, 1]``, and the roi is in units of the
    width. Row 0 is the constant ``-1``, rows 1-5 the factors of the roi's columns."""
    h, w = size
    table = torch.zeros(6, h, w, 2, dtype=torch.float64)
    table[0] = -1.0
    for axis, (out, full) in enumerate(((w, width), (h, height))):  # roi [b, x1, y1, x2, y2]
        f = (torch.arange(out, dtype=torch.float64) + 0.5) / out
        f = f.view(1, -1) if axis == 0 else f.view(-1, 1)
        table[2 + axis, ..., axis] = 2 * width / full * (1 - f)
        table[4 + axis, ..., axis] = 2 * width / full * f
    return table.view(6, -1)


def _rotation_table(size: tuple[int, int], height: int, width: int) -> Tensor:
    """``grid`` of :class:`Consts` for a group that rotates: the crop's grid (see
    :func:`_grid_table`) with the view turned by ``a`` about the roi's center.

    Output pixel ``(i, j)``, at ``(dx, dy)`` view pixels from the view's center, samples the
    unrotated view at ``(cos a * dx - sin a * dy, sin a * dx + cos a * dy)`` from its center
    (a counter-clockwise turn of the view by ``a``, y pointing down, as torchvision's
    ``rotate``), scaled to the roi by ``(x2 - x1) / w`` and ``(y2 - y1) / h`` (signed: a
    flipped roi flips before the turn). With ``fx = (j + 0.5) / w - 0.5``, ``fy = (i + 0.5)
    / h - 0.5`` and the grid's units (``x`` in ``[0, W]`` to ``[-1, 1]``, the roi in units
    of ``W``): ``gx = -1 + x1 + x2 + 2 (x2 - x1) (cos a fx - sin a fy h / w)`` and ``gy = -1 +
    W / H (y1 + y2 + 2 (y2 - y1) (sin a fx w / h + cos a fy))``. Row ``1 + 3 e + t`` is the
    factor of roi column ``e`` (``[b, x1, y1, x2, y2]``) times ``[1, cos a, sin a][t]``."""
    h, w = size
    fx = ((torch.arange(w, dtype=torch.float64) + 0.5) / w - 0.5).view(1, -1).expand(h, w)
    fy = ((torch.arange(h, dtype=torch.float64) + 0.5) / h - 0.5).view(-1, 1).expand(h, w)
    table = torch.zeros(16, h, w, 2, dtype=torch.float64)
    table[0] = -1.0
    r = width / height
    for sign, e in ((-1.0, 1), (1.0, 3)):  # x1, x2 (the x coordinate)
        table[1 + 3 * e, ..., 0] = 1.0
        table[2 + 3 * e, ..., 0] = sign * 2 * fx
        table[3 + 3 * e, ..., 0] = -sign * 2 * fy * h / w
    for sign, e in ((-1.0, 2), (1.0, 4)):  # y1, y2 (the y coordinate)
        table[1 + 3 * e, ..., 1] = r
        table[2 + 3 * e, ..., 1] = sign * 2 * r * fy
        table[3 + 3 * e, ..., 1] = sign * 2 * r * fx * w / h
    return table.view(16, -1)


def build_consts(
    plan: GroupPlan,
    batch: int,
    height: int,
    width: int,
    device: torch.device,
    cpu: bool | None = None,
) -> Consts:
    """The constant tables of ``plan`` for a ``(batch, 3, height, width)`` input. ``cpu``
    (default: whether ``device`` is the CPU) selects the CPU kernels: the crop as
    ``grid_sample``, channel mixes as matmul, the hue without an argmax or a remainder, and
    binary ops instead of ternary ones that broadcast (see :mod:`lt_data._view_ops`). Both
    kernel sets compute the same views up to float rounding; the others dispatch fewer ops
    (launches on an accelerator)."""
    misc, views = plan.misc, len(plan.views)
    t = torch.zeros(views, 3, CANDIDATES, 6 + len(misc), dtype=torch.float64)
    s = torch.zeros_like(t)
    for v, cfg in enumerate(plan.views):
        _crop_columns(t[v], s[v], cfg, height, width)
        _misc_columns(t[v], s[v], cfg, plan)
    t, s = t.repeat_interleave(batch, 0), s.repeat_interleave(batch, 0)
    t[:, 0, :, UY] = (torch.arange(views * batch) % batch).to(t)[:, None]  # roi batch index
    t, s = _flat(t), _flat(s)
    lo, hi = (_flat(b.expand(CANDIDATES, -1)) for b in _bounds(plan, height / width))
    weight = {s: "jitter" for s in STEPS} | {"sigma": "blur", "angle": "rotate"}
    ident = torch.tensor([SIGMA_DELTA if n == "sigma" else 1.0 for n in misc]).repeat(3, 1, 1)
    if "hue" in misc:
        ident[:, 0, misc.index("hue")] = torch.tensor(_HUE_OFFSETS)
    if "angle" in misc:  # no rotation: [1, cos 0, sin 0]
        ident[:, 0, misc.index("angle")] = torch.tensor([math.pi / 2, math.pi / 2, 0.0])
    gray = torch.tensor(GRAY, dtype=torch.float64)
    mean = torch.tensor([c.mean for c in plan.views], dtype=torch.float64).view(-1, 3, 1, 1)
    std = torch.tensor([c.std for c in plan.views], dtype=torch.float64).view(-1, 3, 1, 1)
    k = blur_taps(plan)

    def dev(x: Tensor) -> Tensor:
        return x.to(device=device, dtype=torch.float32)

    if cpu is None:
        cpu = device.type == "cpu"

    return Consts(
        off=dev(t),
        scale=dev(s),
        lo=dev(lo) if torch.isfinite(lo).any() else None,
        hi=dev(hi) if torch.isfinite(lo).any() else None,
        split=[1, 1, 2, 2],
        sgn=dev(torch.tensor([1.0, -1.0])),
        full=dev(torch.tensor([float(width), float(height)])),
        row_scale=dev(torch.tensor([0.0, 1.0, 1.0]).view(3, 1, 1) / torch.tensor([width, height])),
        min_size=dev(torch.tensor([0.0, 1.0, 1.0]).view(3, 1, 1))
        if _may_round_to_zero(plan, height, width)
        else None,
        ident=dev(ident),
        widx=torch.tensor(
            [misc.index(weight.get(n, "one")) for n in misc] if "one" in misc else [],
            dtype=torch.long,
            device=device,
        ),
        gray=dev(gray.view(1, 3)),
        mean=dev(gray.view(1, 3, 1, 1) / (plan.size[0] * plan.size[1])),
        turn=dev(torch.tensor([[0.0, 1.0, -1.0], [-1.0, 0.0, 1.0], [1.0, -1.0, 0.0]])),
        taps=dev(-((torch.arange(k, dtype=torch.float64) - k // 2) ** 2) / 2),
        norm_scale=dev((1 / std).repeat_interleave(batch, 0)),
        norm_bias=dev((-mean / std).repeat_interleave(batch, 0)),
        sector=dev(torch.tensor([0.0, 2.0, 4.0]).view(1, 3, 1, 1)),
        cpu=cpu,
        grid=dev(_rotation_table(plan.size, height, width))
        if plan.rotate
        else dev(_grid_table(plan.size, height, width))
        if cpu
        else None,
        padding="reflection" if plan.rotate else "border",
    )


def _flat(t: Tensor) -> Tensor:
    """``(..., CANDIDATES, 6 + M)`` tables as ``(..., CANDIDATES * 6 + M)``: the crop columns of
    every candidate, then the misc columns of the first (they are the same in all)."""
    return torch.cat([t[..., :6].flatten(-2), t[..., 0, 6:]], dim=-1)


def _bounds(plan: GroupPlan, aspect: float) -> tuple[Tensor, Tensor]:
    """Clamp bounds of the columns: [0, 1] for masks, [1, 2] for the solarize limit, [0,
    H / W] for the vertical flip's corner column."""
    names = ("a", "ell", "gx", "gy", "ux", "uy", *plan.misc)
    lo = torch.full((len(names),), -math.inf, dtype=torch.float64)
    hi = torch.full((len(names),), math.inf, dtype=torch.float64)
    for i, name in enumerate(names):
        if name in ("jitter", "gray", "blur", "rotate") or (name == "gx" and plan.flip):
            lo[i], hi[i] = 0.0, 1.0
        elif name == "gy" and plan.vflip:
            lo[i], hi[i] = 0.0, aspect
        elif name == "solarize":
            lo[i], hi[i] = 1.0, 2.0
    return lo, hi


def _may_round_to_zero(plan: GroupPlan, height: int, width: int) -> bool:
    """Whether a try's width or height may round to 0 pixels (torchvision rejects it)."""
    return any(
        height * width * c.crop_scale[0] / max(*c.crop_ratio, *(1 / r for r in c.crop_ratio)) < 0.25
        for c in plan.views
    )
