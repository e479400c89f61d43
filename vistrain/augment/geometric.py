"""Geometric ops: flips, 90° and free rotation, shear, translate, affine, perspective, elastic.

Warps use ``cv2.warpAffine``/``cv2.warpPerspective`` with bilinear sampling and black fill
(torchvision's default fill). Integer shifts are array slices, which beat a warp several times.
Magnitude maps follow torchvision's RandAugment: rotate 30°, shear 0.3, translate 150/331 of the side.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from vistrain.augment.ops import Op, as_shape, check_range, level

_WARP = dict(flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def warp(img: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply a 2×3 affine matrix, keeping size and channels."""
    h, w = img.shape[:2]
    return as_shape(cv2.warpAffine(img, matrix, (w, h), **_WARP), img)


def shift(img: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """Translate by whole pixels, filling with black (a slice copy, no interpolation)."""
    h, w = img.shape[:2]
    if dx == 0 and dy == 0:
        return img
    out = np.zeros_like(img)
    if abs(dx) >= w or abs(dy) >= h:
        return out
    out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = img[max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)]
    return out


def centred_affine(h: int, w: int, angle_deg: float, scale: float, shear_x: float, shear_y: float,
                   tx: float, ty: float) -> np.ndarray:
    """2×3 matrix rotating, scaling and shearing about the image centre, then translating."""
    cx, cy = (w - 1) * 0.5, (h - 1) * 0.5
    a = math.radians(angle_deg)
    cos, sin = math.cos(a) * scale, math.sin(a) * scale
    # rotation·scale composed with shear [[1, sx], [sy, 1]]
    m00, m01 = cos - sin * shear_y, cos * shear_x - sin
    m10, m11 = sin + cos * shear_y, sin * shear_x + cos
    return np.array([[m00, m01, cx - m00 * cx - m01 * cy + tx],
                     [m10, m11, cy - m10 * cx - m11 * cy + ty]], np.float64)


class FlipH(Op):
    """Mirror left-right (default probability 0.5 in a pipeline)."""

    name = "flip-h"

    def __call__(self, img, rng):
        return as_shape(cv2.flip(img, 1), img)


class FlipV(Op):
    """Mirror top-bottom (default probability 0.5 in a pipeline)."""

    name = "flip-v"

    def __call__(self, img, rng):
        return as_shape(cv2.flip(img, 0), img)


class Rot90(Op):
    """Rotate by k·90° (``k`` 1..3, random when unset); non-square images are resized back so shapes stay fixed."""

    name = "rot90"
    _CODES = {1: cv2.ROTATE_90_COUNTERCLOCKWISE, 2: cv2.ROTATE_180, 3: cv2.ROTATE_90_CLOCKWISE}

    def __init__(self, m: float | None = None, k: int | None = None):
        super().__init__(m)
        check_range(self.name, "k", k, 1, 3)
        self.k = None if k is None else int(k)

    def __call__(self, img, rng):
        k = self.k or int(rng.integers(1, 4))
        h, w = img.shape[:2]
        out = cv2.rotate(img, self._CODES[k])
        if k != 2 and h != w:
            out = cv2.resize(out, (w, h), interpolation=cv2.INTER_LINEAR)
        return as_shape(out, img)


class Rotate(Op):
    """Rotate about the centre by up to ``deg`` degrees (m: 30° at 30)."""

    name = "rotate"

    def __init__(self, m: float | None = None, deg: float | None = None):
        super().__init__(m)
        check_range(self.name, "deg", deg, 0.0, 180.0)
        self.deg = 15.0 if deg is None else float(deg)

    def __call__(self, img, rng):
        h, w = img.shape[:2]
        angle = self.amount(rng, level(self.m or 0.0, 30.0), self.deg)
        return warp(img, centred_affine(h, w, angle, 1.0, 0.0, 0.0, 0.0, 0.0))


class _Shear(Op):
    def __init__(self, m: float | None = None, shear: float | None = None):
        super().__init__(m)
        check_range(self.name, "shear", shear, 0.0, 1.0)
        self.shear = 0.15 if shear is None else float(shear)

    def factor(self, rng) -> float:
        return self.amount(rng, level(self.m or 0.0, 0.3), self.shear)


class ShearX(_Shear):
    """Shear horizontally about the centre by up to ``shear`` (a tangent; m: 0.3 at 30)."""

    name = "shear-x"

    def __call__(self, img, rng):
        h, w = img.shape[:2]
        return warp(img, centred_affine(h, w, 0.0, 1.0, self.factor(rng), 0.0, 0.0, 0.0))


class ShearY(_Shear):
    """Shear vertically about the centre by up to ``shear`` (a tangent; m: 0.3 at 30)."""

    name = "shear-y"

    def __call__(self, img, rng):
        h, w = img.shape[:2]
        return warp(img, centred_affine(h, w, 0.0, 1.0, 0.0, self.factor(rng), 0.0, 0.0))


class _Translate(Op):
    def __init__(self, m: float | None = None, frac: float | None = None):
        super().__init__(m)
        check_range(self.name, "frac", frac, 0.0, 1.0)
        self.frac = 0.2 if frac is None else float(frac)

    def pixels(self, rng, side: int) -> int:
        return int(round(self.amount(rng, level(self.m or 0.0, 150.0 / 331.0), self.frac) * side))


class TranslateX(_Translate):
    """Shift horizontally by up to ``frac`` of the width (m: 150/331 at 30), black fill."""

    name = "translate-x"

    def __call__(self, img, rng):
        return shift(img, self.pixels(rng, img.shape[1]), 0)


class TranslateY(_Translate):
    """Shift vertically by up to ``frac`` of the height (m: 150/331 at 30), black fill."""

    name = "translate-y"

    def __call__(self, img, rng):
        return shift(img, 0, self.pixels(rng, img.shape[0]))


class Affine(Op):
    """Random rotation ±``deg``°, shift ±``shift`` px, scale ±``scale``, x-shear ±``shear``° in one warp."""

    name = "affine"

    def __init__(self, m: float | None = None, deg: float | None = None, shift: float | None = None,
                 scale: float | None = None, shear: float | None = None):
        super().__init__(m)
        check_range(self.name, "deg", deg, 0.0, 180.0)
        check_range(self.name, "shift", shift, 0.0, 10_000.0)
        check_range(self.name, "scale", scale, 0.0, 0.9)
        check_range(self.name, "shear", shear, 0.0, 60.0)
        # Unset ranges follow m when given (RandAugment-style strength), else mild digit-friendly jitter.
        mm = self.m
        self.deg = float(deg) if deg is not None else (level(mm, 30.0) if mm is not None else 10.0)
        self.shift = float(shift) if shift is not None else (None if mm is not None else 2.0)
        self._shift_frac = level(mm, 0.2) if shift is None and mm is not None else 0.0
        self.scale = float(scale) if scale is not None else (level(mm, 0.3) if mm is not None else 0.1)
        self.shear = float(shear) if shear is not None else (level(mm, 16.7) if mm is not None else 5.0)

    def __call__(self, img, rng):
        h, w = img.shape[:2]
        sx, sy = (self.shift, self.shift) if self.shift is not None else (self._shift_frac * w, self._shift_frac * h)
        u = rng.uniform(-1.0, 1.0, 5)
        matrix = centred_affine(h, w, u[0] * self.deg, 1.0 + u[1] * self.scale,
                                math.tan(math.radians(u[2] * self.shear)), 0.0, u[3] * sx, u[4] * sy)
        return warp(img, matrix)


class Perspective(Op):
    """Move each corner inwards by up to ``distortion``·half-side (torchvision's RandomPerspective, 0.5)."""

    name = "perspective"

    def __init__(self, m: float | None = None, distortion: float | None = None):
        super().__init__(m)
        check_range(self.name, "distortion", distortion, 0.0, 1.0)
        self.distortion = float(distortion) if distortion is not None else (level(self.m, 0.6) if self.m is not None else 0.5)

    def __call__(self, img, rng):
        h, w = img.shape[:2]
        src = np.array([[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]], np.float32)
        jitter = rng.uniform(0.0, self.distortion, (4, 2)) * np.array([w // 2, h // 2], np.float32)
        inward = np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]], np.float32)
        matrix = cv2.getPerspectiveTransform(src, (src + inward * jitter).astype(np.float32))
        return as_shape(cv2.warpPerspective(img, matrix, (w, h), **_WARP), img)


# Simard, Steinkraus and Platt (2003), "Best practices for convolutional neural networks applied to
# visual document analysis", section 2: sigma = 4 and alpha = 34 on 28x28 MNIST digits.
ELASTIC_ALPHA, ELASTIC_SIGMA, ELASTIC_SIDE = 34.0, 4.0, 28.0


def elastic_scale(h: int, w: int) -> float:
    """How much larger than the paper's 28 px digits the image is (alpha and sigma scale with it)."""
    return max(h, w) / ELASTIC_SIDE


class Elastic(Op):
    """Elastic distortion: resample along a smoothed random displacement field (Simard et al. 2003).

    Each pixel gets a displacement drawn uniformly from [-1, 1] in x and y; both fields are smoothed
    by a Gaussian of standard deviation ``sigma`` and scaled by ``alpha``. Both are in pixels at
    28 px and scale with the image side, so a 56 px image gets the same distortion at twice the
    size. From a magnitude, alpha = 68·m/30 (m = 15 is the paper's 34).
    """

    name = "elastic"
    signed = False

    def __init__(self, m: float | None = None, alpha: float | None = None, sigma: float | None = None):
        super().__init__(m)
        check_range(self.name, "alpha", alpha, 0.0, 1000.0)
        check_range(self.name, "sigma", sigma, 0.5, 100.0)
        if alpha is not None:
            self.alpha = float(alpha)
        else:
            self.alpha = level(self.m, 2 * ELASTIC_ALPHA) if self.m is not None else ELASTIC_ALPHA
        self.sigma = float(sigma) if sigma is not None else ELASTIC_SIGMA

    def field(self, h: int, w: int, rng: np.random.Generator) -> np.ndarray:
        """The (2, h, w) displacement field (dx, dy) in pixels."""
        scale = elastic_scale(h, w)
        noise = rng.random((2, h, w), dtype=np.float32) * 2.0 - 1.0  # uniform in [-1, 1)
        # smoothing over s times more pixels shrinks the field s times: alpha·s² keeps its shape
        return np.stack([cv2.GaussianBlur(n, (0, 0), self.sigma * scale) for n in noise]) * np.float32(
            self.alpha * scale * scale)

    def __call__(self, img, rng):
        if self.alpha == 0:
            return img
        h, w = img.shape[:2]
        dx, dy = self.field(h, w, rng)
        xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        return as_shape(cv2.remap(img, xs + dx, ys + dy, interpolation=cv2.INTER_LINEAR,
                                  borderMode=cv2.BORDER_CONSTANT, borderValue=0), img)
