"""Pixel-value ops (brightness, contrast, colour, sharpness, autocontrast, equalize, solarize, posterize).

Most are a 256-entry lookup table applied with ``cv2.LUT``: on uint8 that is both the fastest
map and exact clipping to 0..255. Enhance-style factors follow PIL/torchvision: 1 ± 0.9·m/30.
"""

from __future__ import annotations

import cv2
import numpy as np

from vistrain.augment.ops import _IDENTITY_LUT, Op, apply_lut, as_shape, check_range, level, lut_from

_GRAY_WEIGHTS = (0.299, 0.587, 0.114)
# PIL's SMOOTH filter, which ImageEnhance.Sharpness (and torchvision) blend against.
_SMOOTH = np.array([[1, 1, 1], [1, 5, 1], [1, 1, 1]], np.float32) / 13.0


class _Factor(Op):
    """Shared sampling of an enhance factor 1 + δ: δ = ±0.9·m/30, or uniform in ±``factor``."""

    default_factor = 0.5

    def __init__(self, m: float | None = None, factor: float | None = None):
        super().__init__(m)
        check_range(self.name, "factor", factor, 0.0, 1.0)
        self.factor = self.default_factor if factor is None else float(factor)

    def sample(self, rng: np.random.Generator) -> float:
        return 1.0 + self.amount(rng, level(self.m or 0.0, 0.9), self.factor)


class Brightness(_Factor):
    """Multiply by a factor (PIL's brightness: blend with black), clipped to 0..255."""

    name = "brightness"

    def __call__(self, img, rng):
        # addWeighted saturates to 0..255 and rounds, like a clipped table, without building one.
        return as_shape(cv2.addWeighted(img, self.sample(rng), img, 0.0, 0.0), img)


class BrightnessAdd(Op):
    """Add an offset to every pixel, clipped to 0..255 (the course's brightness); ``delta`` in 0..255."""

    name = "brightness-add"

    def __init__(self, m: float | None = None, delta: float | None = None):
        super().__init__(m)
        check_range(self.name, "delta", delta, 0.0, 255.0)
        self.delta = 32.0 if delta is None else float(delta)

    def __call__(self, img, rng):
        offset = self.amount(rng, level(self.m or 0.0, 128.0), self.delta)
        return as_shape(cv2.addWeighted(img, 1.0, img, 0.0, offset), img)


class Contrast(_Factor):
    """Blend with the mean grey level (PIL/torchvision contrast)."""

    name = "contrast"

    def __call__(self, img, rng):
        f = self.sample(rng)
        means = cv2.mean(img)
        mean = means[0] if img.shape[2] == 1 else sum(w * c for w, c in zip(_GRAY_WEIGHTS, means[:3]))
        return as_shape(cv2.addWeighted(img, f, img, 0.0, mean * (1.0 - f)), img)


class Color(_Factor):
    """Saturation: blend with the greyscale image; greyscale inputs are returned unchanged."""

    name = "color"

    def __call__(self, img, rng):
        f = self.sample(rng)
        if img.shape[2] != 3:
            return img
        gray = cv2.cvtColor(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), cv2.COLOR_GRAY2RGB)
        return cv2.addWeighted(img, f, gray, 1.0 - f, 0.0)


class Sharpness(_Factor):
    """Blend with PIL's smoothed image (factor > 1 sharpens); the 1-px border stays as is, like PIL."""

    name = "sharpness"

    def __call__(self, img, rng):
        f = self.sample(rng)
        h, w = img.shape[:2]
        if h < 3 or w < 3:
            return img
        out = img.copy()
        blurred = as_shape(cv2.filter2D(img, -1, _SMOOTH, borderType=cv2.BORDER_REPLICATE), img)
        inner = (slice(1, -1), slice(1, -1))
        out[inner] = as_shape(cv2.addWeighted(img[inner], f, blurred[inner], 1.0 - f, 0.0), img[inner])
        return out


class AutoContrast(Op):
    """Stretch each channel so its darkest pixel becomes 0 and its brightest 255."""

    name = "autocontrast"

    def __call__(self, img, rng):
        channels = cv2.split(img) if img.shape[2] > 1 else [img[..., 0]]
        out = []
        for ch in channels:
            lo, hi = cv2.minMaxLoc(ch)[:2]  # much faster than numpy's strided min/max
            if hi > lo:
                scale = 255.0 / (hi - lo)
                ch = cv2.convertScaleAbs(ch, alpha=scale, beta=-lo * scale)
            out.append(ch)
        return as_shape(out[0], img) if len(out) == 1 else cv2.merge(out)


class Equalize(Op):
    """Histogram equalisation of each channel (``cv2.equalizeHist``)."""

    name = "equalize"

    def __call__(self, img, rng):
        if img.shape[2] == 1:
            return as_shape(cv2.equalizeHist(img[..., 0]), img)
        return cv2.merge([cv2.equalizeHist(ch) for ch in cv2.split(img)])


class Solarize(Op):
    """Invert pixels at or above a threshold; ``threshold`` in 0..256 (m: 256 → 0)."""

    name = "solarize"

    def __init__(self, m: float | None = None, threshold: float | None = None):
        super().__init__(m)
        check_range(self.name, "threshold", threshold, 0.0, 256.0)
        if threshold is None:
            threshold = 256.0 - level(self.m if self.m is not None else 15.0, 256.0)
        self.threshold = float(threshold)
        self._lut = lut_from(np.where(_IDENTITY_LUT >= self.threshold, 255.0 - _IDENTITY_LUT, _IDENTITY_LUT))

    def __call__(self, img, rng):
        return apply_lut(img, self._lut)


class Posterize(Op):
    """Keep the top ``bits`` bits of each pixel; ``bits`` in 1..8 (m: 8 → 4, as torchvision)."""

    name = "posterize"

    def __init__(self, m: float | None = None, bits: int | None = None):
        super().__init__(m)
        check_range(self.name, "bits", bits, 1, 8)
        if bits is None:
            bits = 8 - int(round(level(self.m if self.m is not None else 15.0, 4.0)))
        self.bits = int(bits)
        self._mask = np.uint8((0xFF << (8 - self.bits)) & 0xFF)

    def __call__(self, img, rng):
        return np.bitwise_and(img, self._mask)  # a masked AND beats a table lookup here
