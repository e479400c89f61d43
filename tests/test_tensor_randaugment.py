"""RandAugment on tensors: each op of the paper's pool (and Cutout) matches its OpenCV op image by image
within a stated tolerance, and the batch RandAugment draws per image, reproducibly and uniformly."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pytest
import torch

from vistrain import plugins
from vistrain.augment.pipeline import build_pipeline, build_step
from vistrain.augment.randaugment import PAPER_OPS, RandAugment
from vistrain.augment.tensor_ops import batch_fn, tensor_pipeline
from vistrain.augment.tensor_randaugment import BatchRandAugment
from vistrain.hookspecs import hookimpl

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


def _grey(n: int, seed: int = 0, side: int = 16) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.integers(0, 256, (n, 1, side, side)).astype(np.float32))


def test_spec_rand_has_a_tensor_form_that_draws_per_image_and_is_seeded():
    fn = build_pipeline("rand-n2-m9").on_tensors()
    assert fn is not None and isinstance(fn.steps[0][2], BatchRandAugment)
    x = _grey(1).repeat(32, 1, 1, 1)
    a, b, c = (fn(x, np.random.default_rng(s)) for s in (5, 5, 6))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert len({img.numpy().tobytes() for img in a}) > 16  # same input, different choices per image


def test_ops_are_drawn_uniformly_and_magnitude_noise_stays_in_the_bins():
    ra = batch_fn(RandAugment(n=2, m=9, mstd=4))
    picks, mags = ra.draw(7000, np.random.default_rng(0))
    assert picks.shape == mags.shape == (7000, 2)
    counts = np.bincount(picks.ravel(), minlength=14)
    expected = picks.size / 14
    assert ((counts - expected) ** 2 / expected).sum() < 36.1  # chi-square, 13 dof: p ≈ 0.001
    assert np.all(mags == np.round(mags)) and mags.min() >= 0 and mags.max() <= 30 and len(np.unique(mags)) > 8


def test_uniform_magnitudes_cover_zero_to_m_evenly():
    _, mags = batch_fn(RandAugment(n=2, m=30, mstd=101)).draw(6200, np.random.default_rng(0))
    assert np.all(mags == np.round(mags)) and mags.min() == 0 and mags.max() == 30
    counts = np.bincount(mags.astype(np.int64).ravel(), minlength=31)[1:30]  # the inner bins: 1/30 each
    expected = mags.size / 30
    assert ((counts - expected) ** 2 / expected).sum() < 60.0  # chi-square, 28 dof: p ≈ 0.0005


def test_each_image_gets_the_ops_it_drew_in_order():
    # ops that draw nothing, so the per-image OpenCV ops given the same picks must give the same images
    ra = RandAugment(n=3, m=12, ops=["identity", "autocontrast", "equalize", "solarize", "posterize"])
    batch = batch_fn(ra)
    imgs = np.concatenate([_batch(3, seed) for seed in range(4)])
    picks, mags = batch.draw(len(imgs), np.random.default_rng(1))
    assert len(set(map(tuple, picks))) > 10
    x = torch.from_numpy(imgs).permute(0, 3, 1, 2).float()
    got = batch.apply(x, picks, mags, np.random.default_rng(2)).permute(0, 2, 3, 1).numpy()
    for i, img in enumerate(imgs):
        for pos, j in enumerate(picks[i]):
            img = ra.pool_op(int(j), float(mags[i, pos]))(img, np.random.default_rng(2))
        np.testing.assert_array_equal(got[i], img)


@contextmanager
def _pool_plugin_op(name: str, factory):
    """A plugin op in RandAugment's default pool, registered for the duration of the block."""
    class Plugin:
        @hookimpl
        def register_augmentations(self, register):
            register(name, factory, randaugment=True)

    plugins.register_plugin(Plugin(), f"{name}-plugin")
    try:
        yield
    finally:
        plugins.unregister_plugin(f"{name}-plugin")


def test_a_pool_op_without_a_tensor_form_keeps_randaugment_per_image():
    with _pool_plugin_op("invtensortest", lambda m=None: (lambda img, rng: 255 - img)):
        assert build_pipeline("rand-n2-m9").on_tensors() is None
        assert tensor_pipeline(build_pipeline("flip-h,rand-n1-m5-ops=identity+invtensortest")) is None
        assert build_pipeline("rand-n2-m9-ops=rotate+equalize").on_tensors() is not None  # a pool without it
    assert build_pipeline("rand-n2-m9").on_tensors() is not None


def test_a_pool_op_left_out_at_build_time_leaves_its_draws_unchanged(capsys):
    with _pool_plugin_op("nomtensortest", lambda: (lambda img, rng: img)):
        ra = RandAugment(n=2, m=9)  # the op cannot take m: left out with a warning, the pool keeps its tensor form
        assert "nomtensortest" in capsys.readouterr().err
        batch = batch_fn(ra)
        assert batch is not None
        left_out = ra.ops.index("nomtensortest")
        x = _grey(6)
        picks = np.array([[left_out, left_out]] * 3 + [[left_out, ra.ops.index("equalize")]] * 3)
        out = batch.apply(x, picks, np.full(picks.shape, 9.0), np.random.default_rng(0))
        assert torch.equal(out[:3], x[:3]) and not torch.equal(out[3:], x[3:])
