"""Random stroke-width change for handwriting and digits, by grey-level morphology.

Grey-level dilation (each pixel becomes the maximum over a structuring element) thickens light
strokes on a dark background, the MNIST/EMNIST convention; erosion (the minimum) thins them. Per
image a signed radius r is drawn: r > 0 thickens, r < 0 thins, |r| in pixels. A whole radius k
uses a (2k+1)-pixel element, an ellipse (a disc; the 3x3 one is a cross) or a square; a
fractional radius blends the results of the two nearest whole radii, so 0.4 is 60 % of the image
and 40 % of its one-pixel dilation, and strength grows smoothly from 0.

``px``, the largest |r|, is given for 28 px images and scales with the image's longer side, as
pen width does. From RandAugment's magnitude, |r| = 2 * m / 30 px at 28 px (m = 15 is the
default px = 1) with a random sign. ``ink=dark`` is for dark ink on a light page (scans): the
roles of dilation and erosion swap, so r > 0 still thickens the ink.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from vistrain.augment.ops import Op, as_shape, check_range, level
from vistrain.errors import ConfigError

DEFAULT_PX, MAX_PX, REFERENCE_SIDE = 1.0, 5.0, 28.0
KERNELS = {"ellipse": cv2.MORPH_ELLIPSE, "square": cv2.MORPH_RECT}
INKS = ("light", "dark")


def _choice(name: str, value: object, choices) -> str:
    """Check a word parameter against its choices; a ConfigError names them."""
    if value not in choices:
        raise ConfigError(f"augmentation 'stroke': parameter {name}={value!r} is not one of {', '.join(choices)}",
                          hint=f"e.g. stroke-px1-{name}={next(iter(choices))}")
    return str(value)


class Stroke(Op):
    """Thicken or thin the strokes by a random radius of up to ``px`` pixels (at 28 px)."""

    name = "stroke"
    signed = True  # thicker or thinner

    def __init__(self, m: float | None = None, px: float | None = None, kernel: str = "ellipse",
                 ink: str = "light"):
        super().__init__(m)
        check_range(self.name, "px", px, 0.0, MAX_PX)
        self.px = DEFAULT_PX if px is None else float(px)
        self.kernel = _choice("kernel", kernel, KERNELS)
        self.ink = _choice("ink", ink, INKS)

    def radius(self, h: int, w: int, rng: np.random.Generator) -> float:
        """The signed radius in pixels for an h x w image: > 0 thickens the strokes, < 0 thins them."""
        r = self.amount(rng, level(self.m or 0.0, 2 * DEFAULT_PX), self.px)
        return r * max(h, w) / REFERENCE_SIDE

    def apply(self, img: np.ndarray, r: float) -> np.ndarray:
        """Change the stroke width of *img* by the signed radius *r* (pixels of this image)."""
        if r == 0:
            return img
        thicken = (r > 0) == (self.ink == "light")
        morph = cv2.dilate if thicken else cv2.erode
        frac, whole = math.modf(abs(r))
        lower = self._morph(img, morph, int(whole))
        if frac == 0:
            return lower
        upper = self._morph(img, morph, int(whole) + 1)
        return as_shape(cv2.addWeighted(lower, 1.0 - frac, upper, frac, 0.0), img)

    def _morph(self, img: np.ndarray, morph, k: int) -> np.ndarray:
        if k == 0:
            return img
        element = cv2.getStructuringElement(KERNELS[self.kernel], (2 * k + 1, 2 * k + 1))
        return as_shape(morph(img, element), img)

    def __call__(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        h, w = img.shape[:2]
        return self.apply(img, self.radius(h, w, rng))
