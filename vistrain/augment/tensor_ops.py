"""Batch versions of the per-image ops as tensor operations, for augmenting on the training device.

Each function here takes a float NCHW batch holding uint8 values (0..255), draws one set of
parameters per image from an ``np.random.Generator`` with the same distribution the OpenCV op
draws from (NumPy on a few numbers per image is much cheaper than torch's per-call overhead),
and returns the batch rounded back to whole values, as the uint8 op would. Warps
use ``grid_sample`` (bilinear, black fill, pixel centres as ``cv2.warpAffine``), so given the
same parameters the output matches the OpenCV op to within OpenCV's 1/32-pixel fixed-point
interpolation. Autocontrast, equalize and sharpness redo OpenCV's float32 arithmetic (its fused
multiply-adds included) and match it exactly. Only ops with such an equivalent are listed in
:data:`TENSOR_OPS`; a pipeline holding any other op (perspective, resized crops, plugin ops,
RandAugment with such an op in its pool...) stays per-image. RandAugment's batch form is in
:mod:`vistrain.augment.tensor_randaugment`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from vistrain.augment import color, crop, geometric, ops
from vistrain.augment.ops import level
from vistrain.augment.randaugment import RandAugment
from vistrain.augment.tensor_randaugment import tensor_randaugment

BatchFn = Callable[[torch.Tensor, np.random.Generator], torch.Tensor]

_GRAY = (0.299, 0.587, 0.114)


def amount(op: ops.Op, rng: np.random.Generator, n: int, fixed: float, spread: float) -> np.ndarray:
    """Vector form of :meth:`Op.amount`: *fixed* with a random sign when built from ``m``, else uniform ±*spread*."""
    if op.m is not None:
        if not op.signed:
            return np.full(n, float(fixed))
        return np.where(rng.random(n) < 0.5, -fixed, fixed)
    return rng.uniform(-spread, spread, n) if spread else np.zeros(n)


def _finish(x: torch.Tensor) -> torch.Tensor:
    """Round and clip to whole 0..255 values, as the uint8 op's output is."""
    return x.round_().clamp_(0.0, 255.0)


# --- geometry --------------------------------------------------------------------------------


def centred_affines(h: int, w: int, angle_deg, scale, shear_x, shear_y, tx, ty) -> np.ndarray:
    """(N, 2, 3) matrices: :func:`geometric.centred_affine` for vectors of parameters."""
    cx, cy = (w - 1) * 0.5, (h - 1) * 0.5
    a = np.radians(angle_deg)
    cos, sin = np.cos(a) * scale, np.sin(a) * scale
    m00, m01 = cos - sin * shear_y, cos * shear_x - sin
    m10, m11 = sin + cos * shear_y, sin * shear_x + cos
    row0 = np.stack(np.broadcast_arrays(m00, m01, cx - m00 * cx - m01 * cy + tx), axis=-1)
    row1 = np.stack(np.broadcast_arrays(m10, m11, cy - m10 * cx - m11 * cy + ty), axis=-1)
    return np.stack([row0, row1], axis=-2)


_BASE_GRIDS: dict[tuple, torch.Tensor] = {}


def _base_grid(h: int, w: int, device, dtype) -> torch.Tensor:
    """(H·W, 3) rows of (x, y, 1) pixel coordinates, cached per size and device."""
    key = (h, w, str(device), dtype)
    grid = _BASE_GRIDS.get(key)
    if grid is None:
        ys, xs = torch.meshgrid(torch.arange(h, dtype=dtype), torch.arange(w, dtype=dtype), indexing="ij")
        grid = torch.stack([xs.reshape(-1), ys.reshape(-1), torch.ones(h * w, dtype=dtype)], dim=1).to(device)
        _BASE_GRIDS[key] = grid
    return grid


def warp_batch(x: torch.Tensor, matrices) -> torch.Tensor:
    """Warp each image by its forward 2×3 pixel-coordinate matrix (``cv2.warpAffine`` semantics)."""
    n, _, h, w = x.shape
    m = np.asarray(matrices, dtype=np.float64)
    a, b, c, d = m[:, 0, 0], m[:, 0, 1], m[:, 1, 0], m[:, 1, 1]
    tx, ty = m[:, 0, 2], m[:, 1, 2]
    det = a * d - b * c
    # dst → src in pixels: src = A⁻¹ (dst − t), with A⁻¹ in closed form (2×2) ...
    ia, ib, ic, id_ = d / det, -b / det, -c / det, a / det
    itx, ity = -(ia * tx + ib * ty), -(ic * tx + id_ * ty)
    # ... then to grid_sample's [-1, 1] (align_corners=True): u = 2·px/(side−1) − 1
    sx, sy = 2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)
    coef = np.stack([np.stack([ia * sx, ic * sy], 1), np.stack([ib * sx, id_ * sy], 1),
                     np.stack([itx * sx - 1.0, ity * sy - 1.0], 1)], axis=1)  # (n, 3, 2)
    coef_t = torch.from_numpy(coef.astype(np.float32)).to(x.device, x.dtype, non_blocking=True)
    grid = torch.matmul(_base_grid(h, w, x.device, x.dtype), coef_t).view(n, h, w, 2)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def _affine(op: geometric.Affine) -> BatchFn:
    def run(x, rng):
        n, _, h, w = x.shape
        sx, sy = (op.shift, op.shift) if op.shift is not None else (op._shift_frac * w, op._shift_frac * h)
        u = rng.uniform(-1.0, 1.0, (n, 5))
        mats = centred_affines(h, w, u[:, 0] * op.deg, 1.0 + u[:, 1] * op.scale, np.tan(np.radians(u[:, 2] * op.shear)),
                               0.0, u[:, 3] * sx, u[:, 4] * sy)
        return _finish(warp_batch(x, mats))
    return run


def _rotate(op: geometric.Rotate) -> BatchFn:
    def run(x, rng):
        n, _, h, w = x.shape
        angle = amount(op, rng, n, level(op.m or 0.0, 30.0), op.deg)
        return _finish(warp_batch(x, centred_affines(h, w, angle, 1.0, 0.0, 0.0, 0.0, 0.0)))
    return run


def _shear(op: geometric._Shear, axis: int) -> BatchFn:
    def run(x, rng):
        n, _, h, w = x.shape
        factor = amount(op, rng, n, level(op.m or 0.0, 0.3), op.shear)
        sx, sy = (factor, 0.0) if axis == 0 else (0.0, factor)
        return _finish(warp_batch(x, centred_affines(h, w, 0.0, 1.0, sx, sy, 0.0, 0.0)))
    return run


def _reflect101(n: int, pad: int, device) -> torch.Tensor:
    """Source index of each position of a side of *n* padded by *pad* on both ends, mirrored without
    repeating the edge (OpenCV's default border, BORDER_REFLECT_101), for any *pad*."""
    i = torch.arange(-pad, n + pad, device=device)
    if n == 1:
        return torch.zeros_like(i)
    period = 2 * (n - 1)
    i = i.abs() % period
    return torch.where(i >= n, period - i, i)


_BLUR_MATRICES: dict[tuple, torch.Tensor] = {}


def blur_matrix(n: int, sigma: float, device, dtype) -> torch.Tensor:
    """(n, n) matrix of ``cv2.GaussianBlur``'s 1-D pass along a side of *n*: the kernel of size
    8σ + 1 (odd) with BORDER_REFLECT_101 edges folded in, so a blur is two small matmuls."""
    key = (n, float(sigma), str(device), dtype)
    m = _BLUR_MATRICES.get(key)
    if m is None:
        k = int(round(sigma * 8 + 1)) | 1
        half = k // 2
        t = torch.arange(k, dtype=torch.float64) - half
        kernel = torch.exp(-(t * t) / (2 * sigma * sigma))
        kernel /= kernel.sum()
        src = _reflect101(n, half, "cpu")  # padded position → source index
        m = torch.zeros(n, n, dtype=torch.float64)
        for i in range(n):
            m[i].index_add_(0, src[i:i + k], kernel)
        m = _BLUR_MATRICES.setdefault(key, m.to(device, dtype))
    return m


def gaussian_blur_batch(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """``cv2.GaussianBlur(img, (0, 0), sigma)`` on float images, for an NCHW batch: the same kernel
    and edges, as a matmul along each side (much faster on the CPU than a 33-tap convolution)."""
    h, w = x.shape[-2:]
    return blur_matrix(h, sigma, x.device, x.dtype) @ x @ blur_matrix(w, sigma, x.device, x.dtype).T


def _elastic(op: geometric.Elastic) -> BatchFn:
    def run(x, rng):
        if op.alpha == 0:
            return x
        n, _, h, w = x.shape
        scale = geometric.elastic_scale(h, w)
        noise = torch.from_numpy(rng.random((n, 2, h, w), dtype=np.float32) * 2.0 - 1.0).to(x.device, x.dtype)
        field = gaussian_blur_batch(noise, op.sigma * scale) * (op.alpha * scale * scale)  # (n, 2, h, w) pixels
        base = _base_grid(h, w, x.device, x.dtype)[:, :2].view(1, h, w, 2)
        pos = base + field.permute(0, 2, 3, 1)
        grid = pos * torch.tensor([2.0 / max(w - 1, 1), 2.0 / max(h - 1, 1)], device=x.device, dtype=x.dtype) - 1.0
        return _finish(F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True))
    return run


def shift_batch(x: torch.Tensor, dx, dy) -> torch.Tensor:
    """Whole-pixel shifts per image with black fill (:func:`geometric.shift` for a batch)."""
    n, ch, h, w = x.shape
    dev = x.device
    d = torch.from_numpy(np.stack([np.asarray(dx, np.int64), np.asarray(dy, np.int64)])).to(dev)
    ys = torch.arange(h, device=dev).view(1, h, 1) - d[1].view(n, 1, 1)
    xs = torch.arange(w, device=dev).view(1, 1, w) - d[0].view(n, 1, 1)
    inside = ((ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)).unsqueeze(1)
    flat = (ys.clamp(0, h - 1) * w + xs.clamp(0, w - 1)).view(n, 1, h * w).expand(n, ch, h * w)
    out = torch.gather(x.reshape(n, ch, h * w), 2, flat).view_as(x)
    return out * inside


def _translate(op: geometric._Translate, axis: int) -> BatchFn:
    def run(x, rng):
        n, _, h, w = x.shape
        side = w if axis == 0 else h
        px = np.round(amount(op, rng, n, level(op.m or 0.0, 150.0 / 331.0), op.frac) * side).astype(np.int64)
        zero = np.zeros(n, np.int64)
        return shift_batch(x, px, zero) if axis == 0 else shift_batch(x, zero, px)
    return run


def _crop(op: crop.Crop) -> BatchFn:
    def run(x, rng):
        n, _, h, w = x.shape
        pad = op.pad if op.pad is not None else (int(round(level(op.m, 0.25) * min(h, w))) if op.m is not None else 4)
        d = rng.integers(-pad, pad + 1, (n, 2)) if pad else np.zeros((n, 2), np.int64)
        return shift_batch(x, d[:, 0], d[:, 1])
    return run


def _flip(dim: int) -> Callable[[ops.Op], BatchFn]:
    return lambda op: (lambda x, rng: x.flip(dim))


def _cutout(op: crop.Cutout) -> BatchFn:
    def run(x, rng):
        n, _, h, w = x.shape
        sides = np.round(op.fraction(rng, n) * min(h, w)).astype(np.int64)  # per image (fmin), else all alike
        if not sides.any():
            return x
        centre = torch.from_numpy(np.stack([rng.integers(0, h, n), rng.integers(0, w, n), sides // 2,
                                            (sides + 1) // 2])).to(x.device)
        cy, cx, before, after = (row.view(n, 1, 1) for row in centre)
        ys = torch.arange(h, device=x.device).view(1, h, 1)
        xs = torch.arange(w, device=x.device).view(1, 1, w)
        hole = (ys >= cy - before) & (ys < cy + after) & (xs >= cx - before) & (xs < cx + after)
        return x.masked_fill(hole.unsqueeze(1), 0.0)
    return run


# --- pixel values ----------------------------------------------------------------------------


def _col(values: np.ndarray, x: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(np.asarray(values, np.float32)).to(x.device).view(-1, 1, 1, 1)


def op_factor(op: color._Factor, rng: np.random.Generator, n: int) -> np.ndarray:
    """Vector form of ``_Factor.sample``: 1 + δ per image."""
    return 1.0 + amount(op, rng, n, level(op.m or 0.0, 0.9), op.factor)


def _brightness(op: color.Brightness) -> BatchFn:
    return lambda x, rng: _finish(x * _col(op_factor(op, rng, x.shape[0]), x))


def _brightness_add(op: color.BrightnessAdd) -> BatchFn:
    return lambda x, rng: _finish(x + _col(amount(op, rng, x.shape[0], level(op.m or 0.0, 128.0), op.delta), x))


def grey_means(x: torch.Tensor) -> torch.Tensor:
    """Per-image mean grey level (channel means weighted as ``cv2``'s RGB→grey for 3 channels)."""
    means = x.mean(dim=(2, 3))
    if x.shape[1] == 3:
        return (means * torch.tensor(_GRAY, device=x.device, dtype=x.dtype)).sum(dim=1)
    return means[:, 0]


def _contrast(op: color.Contrast) -> BatchFn:
    def run(x, rng):
        f = _col(op_factor(op, rng, x.shape[0]), x)
        return _finish(x * f + grey_means(x).view(-1, 1, 1, 1) * (1.0 - f))
    return run


def _color(op: color.Color) -> BatchFn:
    def run(x, rng):
        f = _col(op_factor(op, rng, x.shape[0]), x)
        if x.shape[1] != 3:
            return x
        grey = (x * torch.tensor(_GRAY, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)).sum(1, keepdim=True).round()
        return _finish(x * f + grey * (1.0 - f))
    return run


def _solarize(op: color.Solarize) -> BatchFn:
    return lambda x, rng: torch.where(x >= op.threshold, 255.0 - x, x)


def _posterize(op: color.Posterize) -> BatchFn:
    step = float(2 ** (8 - op.bits))
    return lambda x, rng: torch.floor(x / step) * step


def _over(a: float, t: torch.Tensor) -> torch.Tensor:
    """*a* / *t* correctly rounded: torch computes ``scalar / tensor`` as a reciprocal times the scalar,
    one unit in the last place off often enough to flip OpenCV's roundings of exact halves."""
    return torch.full_like(t, a) / t


def fused(a: torch.Tensor, b: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """a·b + c rounded once to float32, as OpenCV's SIMD multiply-add (``v_fma``) computes it; two float32
    roundings land exact halves (x.5, which whole pixels and enhance factors hit often) on the wrong side."""
    return (a.double() * b.double() + c.double()).float()


def _sharpness(op: color.Sharpness) -> BatchFn:
    def run(x, rng):
        f = op_factor(op, rng, x.shape[0])
        ch, h, w = x.shape[1:]
        if h < 3 or w < 3:
            return x
        smooth = torch.from_numpy(color._SMOOTH).to(x.device, x.dtype).expand(ch, 1, 3, 3)
        # the smoothed inner pixels, rounded as filter2D's uint8 output; the 1-px border stays as is
        blurred = F.conv2d(x, smooth, groups=ch).round_()
        out = x.clone()
        # addWeighted(img, f, blurred, 1 − f): fma(img, f, blurred·(1 − f)), weights in float32
        out[..., 1:-1, 1:-1] = _finish(fused(x[..., 1:-1, 1:-1], _col(f, x), blurred * _col(1.0 - f, x)))
        return out
    return run


def _autocontrast(op: color.AutoContrast) -> BatchFn:
    def run(x, rng):
        lo, hi = x.amin(dim=(2, 3), keepdim=True).double(), x.amax(dim=(2, 3), keepdim=True).double()
        stretch = hi > lo  # a channel of one grey level is left as it is
        scale = torch.where(stretch, _over(255.0, torch.where(stretch, hi - lo, 1.0)), 1.0)  # float64, as cv2's alpha
        # convertScaleAbs(alpha=scale, beta=−lo·scale): |fma(x, alpha, beta)| with both cast to float32
        return _finish(fused(x, scale.float(), torch.where(stretch, -lo * scale, 0.0).float()).abs_())
    return run


def equalize_batch(x: torch.Tensor) -> torch.Tensor:
    """``cv2.equalizeHist`` on every channel of every image of a batch of whole 0..255 values.

    The cumulative histogram comes from sorting each channel's pixels and counting those at or below
    each level (deterministic on every device, unlike an atomic bincount); the table is OpenCV's:
    level v → round(255·(cdf(v) − cdf(darkest)) / (pixels − cdf(darkest))), identity for one grey level.
    """
    n, ch, h, w = x.shape
    flat = x.reshape(n * ch, h * w).contiguous()  # searchsorted copies non-contiguous rows (channels-last input)
    ordered = flat.sort(dim=1).values
    levels = torch.arange(256, device=x.device, dtype=x.dtype).expand(n * ch, 256).contiguous()
    cdf = torch.searchsorted(ordered, levels, right=True)
    darkest = torch.searchsorted(ordered, ordered[:, :1].contiguous(), right=True)  # pixels at the darkest level
    rest = h * w - darkest
    scale = _over(255.0, rest.clamp_min(1).to(torch.float32))  # float32 as OpenCV's
    lut = torch.where(rest > 0, ((cdf - darkest).to(torch.float32) * scale).round_().clamp_(0.0, 255.0), levels)
    return torch.gather(lut.to(x.dtype), 1, flat.long()).view_as(x)


# type of op → builder of its batch function (None: this instance has none, e.g. a plugin op in RandAugment's pool)
TENSOR_OPS: dict[type, Callable[[ops.Op], BatchFn | None]] = {
    ops.Identity: lambda op: (lambda x, rng: x),
    geometric.Affine: _affine,
    geometric.Rotate: _rotate,
    geometric.ShearX: lambda op: _shear(op, 0),
    geometric.ShearY: lambda op: _shear(op, 1),
    geometric.TranslateX: lambda op: _translate(op, 0),
    geometric.TranslateY: lambda op: _translate(op, 1),
    geometric.Elastic: _elastic,
    geometric.FlipH: _flip(-1),
    geometric.FlipV: _flip(-2),
    crop.Crop: _crop,
    crop.Cutout: _cutout,
    color.Brightness: _brightness,
    color.BrightnessAdd: _brightness_add,
    color.Contrast: _contrast,
    color.Color: _color,
    color.Solarize: _solarize,
    color.Posterize: _posterize,
    color.Sharpness: _sharpness,
    color.AutoContrast: _autocontrast,
    color.Equalize: lambda op: (lambda x, rng: equalize_batch(x)),
    RandAugment: lambda op: tensor_randaugment(op, batch_fn),
}


def batch_fn(op) -> BatchFn | None:
    """The batch version of one op instance, or None when it has no tensor equivalent."""
    builder = TENSOR_OPS.get(type(op))
    return builder(op) if builder is not None else None


class TensorPipeline:
    """A pipeline's steps as batch functions; each step hits each image with its probability ``p``."""

    def __init__(self, steps: list[tuple[str, float, BatchFn]]):
        self.steps = steps

    def __call__(self, x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """Augment a float NCHW batch of 0..255 values; every random parameter comes from *rng*."""
        for _name, p, fn in self.steps:
            if p >= 1.0:
                x = fn(x, rng)
                continue
            hit = np.flatnonzero(rng.random(x.shape[0]) < p)
            if len(hit) == x.shape[0]:
                x = fn(x, rng)
            elif len(hit):
                idx = torch.from_numpy(hit).to(x.device)
                x = x.index_copy(0, idx, fn(x.index_select(0, idx), rng))
        return x

    def __repr__(self) -> str:
        return f"TensorPipeline({', '.join(name for name, _, _ in self.steps)})"


def tensor_pipeline(pipeline) -> TensorPipeline | None:
    """The tensor form of a :class:`~vistrain.augment.pipeline.Pipeline`, or None unless every op has one."""
    steps = []
    for step in getattr(pipeline, "steps", None) or []:
        fn = batch_fn(step.op)
        if fn is None:
            return None
        steps.append((step.name, float(step.p), fn))
    return TensorPipeline(steps) if steps else None

