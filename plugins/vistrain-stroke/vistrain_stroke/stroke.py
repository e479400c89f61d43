"""Elastic distortion (Simard, Steinkraus, Platt 2003, "Best practices for CNNs applied to visual
document analysis", section 2).

Each pixel gets a random displacement drawn uniformly from [-1, 1] in x and y; both fields are
smoothed with a Gaussian of standard deviation ``sigma`` and scaled by ``alpha``, then the
image is resampled at the displaced positions. The paper's MNIST values are sigma = 4 and
alpha = 34 on 28x28 images; here both scale with the image side, so 56 px images get twice the
pixel displacement. From RandAugment's magnitude, alpha = 68 * m / 30 (m = 15 is the paper's).
"""

from __future__ import annotations

import cv2
import numpy as np

from vistrain.augment.ops import Op, as_shape, check_range, level

PAPER_ALPHA, PAPER_SIGMA, PAPER_SIDE = 34.0, 4.0, 28.0


class Elastic(Op):
    """Resample the image along a smoothed random displacement field."""

    name = "elastic"
    signed = False

    def __init__(self, m: float | None = None, alpha: float = PAPER_ALPHA, sigma: float = PAPER_SIGMA):
        super().__init__(m)
        check_range(self.name, "alpha", alpha, 0.0, 1000.0)
        check_range(self.name, "sigma", sigma, 0.5, 100.0)
        self.alpha = level(m, 2 * PAPER_ALPHA) if m is not None else float(alpha)
        self.sigma = float(sigma)

    def field(self, h: int, w: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """The displacement field (dx, dy) in pixels for an h x w image."""
        scale = max(h, w) / PAPER_SIDE
        out = []
        for _ in range(2):
            noise = rng.uniform(-1.0, 1.0, (h, w)).astype(np.float32)
            # smoothing over s times more pixels shrinks the field s times: alpha * s**2 keeps the shape
            out.append(cv2.GaussianBlur(noise, (0, 0), self.sigma * scale) * (self.alpha * scale * scale))
        return out[0], out[1]

    def __call__(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.alpha == 0:
            return img
        h, w = img.shape[:2]
        dx, dy = self.field(h, w, rng)
        xs, ys = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        out = cv2.remap(img, xs + dx, ys + dy, interpolation=cv2.INTER_LINEAR,
                        borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        return as_shape(out, img)
