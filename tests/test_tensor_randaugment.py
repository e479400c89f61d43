"""RandAugment on tensors: each op of the paper's pool (and Cutout) matches its OpenCV op image by image
within a stated tolerance."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vistrain.augment.pipeline import build_step
from vistrain.augment.randaugment import PAPER_OPS
from vistrain.augment.tensor_ops import batch_fn

POOL = PAPER_OPS + ("cutout",)
MAGNITUDES = (0, 5, 9, 17, 30)
EXACT = (0, 0.0)
# op → (largest difference in grey levels, share of pixels that may differ at all) against the OpenCV op
TOLERANCE = {
    **{name: EXACT for name in ("identity", "autocontrast", "equalize", "solarize", "posterize", "sharpness",
                                "translate-x", "translate-y", "cutout")},
    # enhance blends: OpenCV rounds a fused multiply-add once, the tensor op twice, so exact halves may
    # land one level apart
    **{name: (1, 0.02) for name in ("brightness", "contrast", "color")},
    # warps: OpenCV interpolates on a 1/32-pixel fixed-point grid, grid_sample in float
    **{name: (2, 0.05) for name in ("rotate", "shear-x", "shear-y")},
}


class _SameDraws:
    """Stands in for ``np.random.Generator``: its k-th call gives the batch op *n* draws and the
    per-image op of image *image* the image-th of those, so both see the same parameters per image."""

    def __init__(self, seed: int, n: int, image: int | None = None):
        self.seed, self.n, self.image, self.calls = seed, n, image, 0

    def _draw(self, make, size):
        values = make(np.random.default_rng([self.seed, self.calls]), self.n)
        self.calls += 1
        if self.image is None:
            assert size == self.n, size
            return values
        assert size is None, size
        return values[self.image]

    def random(self, size=None):
        return self._draw(lambda g, n: g.random(n), size)

    def integers(self, low, high=None, size=None):
        return self._draw(lambda g, n: g.integers(low, high, n), size)

    def uniform(self, low=0.0, high=1.0, size=None):
        return self._draw(lambda g, n: g.uniform(low, high, n), size)


def _batch(channels: int, seed: int = 0, h: int = 19, w: int = 23) -> np.ndarray:
    """uint8 NHWC images of different kinds: noise, low-contrast noise, flat, a dark image with a bright
    block, a gradient, and a two-level image (odd, non-square sides catch swapped axes)."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (h, w, channels))
    low = rng.integers(40, 91, (h, w, channels))
    flat = np.full((h, w, channels), 77)
    block = rng.integers(0, 30, (h, w, channels))
    block[4:11, 6:15] = 230
    ramp = np.broadcast_to(np.linspace(10, 200, w).round()[None, :, None], (h, w, channels))
    two = np.where(rng.random((h, w, channels)) < 0.3, 200, 20)
    return np.stack([noise, low, flat, block, ramp, two, 255 - noise]).astype(np.uint8)


def _compare(name: str, m: float, channels: int, seed: int) -> np.ndarray:
    """|tensor op − OpenCV op| per pixel over a batch, each image with the same random parameters."""
    op = build_step(name, {"m": m}).op
    fn = batch_fn(op)
    assert fn is not None, name
    imgs = _batch(channels, seed)
    n = len(imgs)
    got = fn(torch.from_numpy(imgs).permute(0, 3, 1, 2).float(), _SameDraws(seed, n)).permute(0, 2, 3, 1).numpy()
    want = np.stack([op(img.copy(), _SameDraws(seed, n, i)) for i, img in enumerate(imgs)]).astype(np.float32)
    return np.abs(got - want.reshape(got.shape))


@pytest.mark.parametrize("name", POOL)
@pytest.mark.parametrize("channels", [1, 3])
def test_each_pool_op_matches_its_opencv_op_within_its_tolerance(name, channels):
    most, share = TOLERANCE[name]
    for m in MAGNITUDES:
        diff = _compare(name, m, channels, seed=m)
        assert diff.max() <= most and (diff > 0).mean() <= share, (name, m, diff.max(), (diff > 0).mean())


def test_the_comparison_catches_an_op_that_is_off(monkeypatch):
    from vistrain.augment import color, tensor_ops

    # an equalize that is one grey level off on the brightest pixels only must fail the exact tolerance
    def off(x):
        out = tensor_ops.equalize_batch(x)
        return torch.where(out == 255, 254.0, out)

    monkeypatch.setitem(tensor_ops.TENSOR_OPS, color.Equalize, lambda op: (lambda x, rng: off(x)))
    assert _compare("equalize", 9, 3, seed=0).max() == 1
