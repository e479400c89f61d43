"""Crop and erase ops: random crop with padding, centre crop, random resized crop, cutout, random erasing.

Crops keep the output size (a zoomed crop is resized back) so a batch always stacks.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from vistrain.augment.geometric import shift
from vistrain.augment.ops import Op, check_range, level
from vistrain.data.geometry import random_box


def resize_to(img: np.ndarray, h: int, w: int) -> np.ndarray:
    """Resize to (h, w), bilinear, keeping channels."""
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR).reshape(h, w, img.shape[2])


class Crop(Op):
    """Random crop of the original size from the image zero-padded by ``pad`` px (CIFAR's pad-4 crop)."""

    name = "crop"

    def __init__(self, m: float | None = None, pad: int | None = None):
        super().__init__(m)
        check_range(self.name, "pad", pad, 0, 10_000)
        self.pad = None if pad is None else int(pad)

    def __call__(self, img, rng):
        h, w = img.shape[:2]
        # Padding then cropping is a whole-pixel shift with black fill; no padded copy needed.
        if self.pad is not None:
            pad = self.pad
        else:
            pad = int(round(level(self.m, 0.25) * min(h, w))) if self.m is not None else 4
        dx, dy = rng.integers(-pad, pad + 1, 2) if pad else (0, 0)
        return shift(img, int(dx), int(dy))


class CenterCrop(Op):
    """Keep the central ``scale`` of each side and resize back (a zoom; m: 1 → 0.5)."""

    name = "center-crop"

    def __init__(self, m: float | None = None, scale: float | None = None):
        super().__init__(m)
        check_range(self.name, "scale", scale, 0.05, 1.0)
        self.scale = float(scale) if scale is not None else (1.0 - level(self.m, 0.5) if self.m is not None else 0.875)

    def __call__(self, img, rng):
        h, w = img.shape[:2]
        ch, cw = max(1, int(round(h * self.scale))), max(1, int(round(w * self.scale)))
        if (ch, cw) == (h, w):
            return img
        y, x = (h - ch) // 2, (w - cw) // 2
        return resize_to(img[y:y + ch, x:x + cw], h, w)


class ResizedCrop(Op):
    """Inception-style random resized crop: area in [``smin``, 1], aspect 3/4..4/3, resized back (m: smin 1 → 0.08)."""

    name = "resized-crop"

    def __init__(self, m: float | None = None, smin: float | None = None):
        super().__init__(m)
        check_range(self.name, "smin", smin, 0.01, 1.0)
        self.smin = float(smin) if smin is not None else (1.0 - level(self.m, 0.92) if self.m is not None else 0.08)

    def __call__(self, img, rng):
        h, w = img.shape[:2]
        y, x, ch, cw = random_box(h, w, rng, self.smin)
        if (ch, cw) == (h, w):
            return img
        return resize_to(img[y:y + ch, x:x + cw], h, w)


class Cutout(Op):
    """Black out a square of side ``frac``·min(h, w) centred anywhere (it may be clipped at the border).

    With ``fmin`` each image draws its side's fraction uniformly from [fmin, frac] (FixMatch's Cutout:
    ``cutout-frac0.5-fmin0``)."""

    name = "cutout"

    def __init__(self, m: float | None = None, frac: float | None = None, fmin: float | None = None):
        super().__init__(m)
        check_range(self.name, "frac", frac, 0.0, 1.0)
        self.frac = float(frac) if frac is not None else (level(self.m, 0.6) if self.m is not None else 0.5)
        check_range(self.name, "fmin", fmin, 0.0, self.frac)
        self.fmin = float(fmin) if fmin is not None else None

    def fraction(self, rng, n: int | None = None):
        """The side's fraction: ``frac``, or (with ``fmin``) one uniform draw per image."""
        if self.fmin is None:
            return self.frac if n is None else np.full(n, self.frac)
        return rng.uniform(self.fmin, self.frac) if n is None else rng.uniform(self.fmin, self.frac, n)

    def __call__(self, img, rng):
        h, w = img.shape[:2]
        side = int(round(self.fraction(rng) * min(h, w)))
        if side == 0:
            return img
        cy, cx = rng.integers(0, h), rng.integers(0, w)
        out = img.copy()
        out[max(0, cy - side // 2):cy + (side + 1) // 2, max(0, cx - side // 2):cx + (side + 1) // 2] = 0
        return out


class Erase(Op):
    """Random erasing (Zhong et al.): a rectangle of area 2%..``smax``, aspect 0.3..3.3, set to 0 (m: smax 0 → 0.5)."""

    name = "erase"

    def __init__(self, m: float | None = None, smax: float | None = None):
        super().__init__(m)
        check_range(self.name, "smax", smax, 0.02, 1.0)
        self.smax = float(smax) if smax is not None else (max(0.02, level(self.m, 0.5)) if self.m is not None else 0.33)

    def __call__(self, img, rng):
        h, w = img.shape[:2]
        log_r = (math.log(0.3), math.log(1 / 0.3))
        for _ in range(10):
            u = rng.random(4)
            target = h * w * (0.02 + (self.smax - 0.02) * u[0])
            ratio = math.exp(log_r[0] + (log_r[1] - log_r[0]) * u[1])
            eh, ew = int(round(math.sqrt(target * ratio))), int(round(math.sqrt(target / ratio)))
            if 0 < eh < h and 0 < ew < w:
                y, x = int(u[2] * (h - eh + 1)), int(u[3] * (w - ew + 1))
                out = img.copy()
                out[y:y + eh, x:x + ew] = 0
                return out
        return img
