"""RandAugment: the paper's pool, N ops per image, magnitude noise, plugin ops joining the pool."""

from __future__ import annotations

import numpy as np
import pytest

from vistrain import plugins
from vistrain.augment.pipeline import build_pipeline
from vistrain.augment.randaugment import PAPER_OPS, RandAugment, default_pool
from vistrain.errors import ConfigError, UnknownNameError
from vistrain.hookspecs import hookimpl


def test_default_pool_is_the_papers_14_ops():
    assert len(PAPER_OPS) == 14
    assert sorted(default_pool()) == sorted(PAPER_OPS)


def test_n_ops_are_applied_and_named():
    ra = RandAugment(n=3, m=9)
    img = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    seen = set()
    for seed in range(30):
        out, names = ra.traced(img, np.random.default_rng(seed))
        assert len(names) == 3 and set(names) <= set(PAPER_OPS)
        assert out.shape == img.shape
        seen.update(names)
    assert len(seen) >= 10  # uniform choice reaches most of the pool


def _magnitudes_built(ra: RandAugment, images: int) -> set[float]:
    """The magnitudes *ra* built its ops at while augmenting *images* images (one seed each)."""
    img = np.random.default_rng(0).integers(0, 256, (16, 16, 1), dtype=np.uint8)
    for seed in range(images):
        ra(img, np.random.default_rng(seed))
    return {m for (_, m) in ra._cache}


def test_magnitude_noise_uses_integer_bins():
    mags = _magnitudes_built(RandAugment(n=2, m=9, mstd=3), 40)
    assert len(mags) > 1 and all(float(m).is_integer() and 0 <= m <= 30 for m in mags)


def test_mstd_above_100_draws_magnitudes_uniformly_up_to_m():
    mags = _magnitudes_built(RandAugment(n=2, m=20, mstd=101), 200)
    assert all(float(m).is_integer() and 0 <= m <= 20 for m in mags)
    assert {0.0, 20.0} <= mags and len(mags) >= 18  # the whole range, ends included, not noise around m


def test_bad_parameters_are_config_errors():
    with pytest.raises(ConfigError, match="m=40"):
        build_pipeline("rand-n2-m40")
    with pytest.raises(ConfigError, match="mstd=50"):  # neither Gaussian noise (<= 30) nor uniform (> 100)
        build_pipeline("rand-n2-m9-mstd50")
    with pytest.raises(UnknownNameError, match="rotate"):
        RandAugment(ops=["rotat"])


class InvertPlugin:
    """A third-party op that opts into RandAugment's pool."""

    @hookimpl
    def register_augmentations(self, register):
        def make_invert(m=None, p=None):
            return lambda img, rng: 255 - img

        register("invert-test", make_invert, randaugment=True, description="test invert")


def test_plugin_op_works_in_a_pipeline_and_joins_the_pool():
    plugins.register_plugin(InvertPlugin(), "invert-plugin")
    try:
        assert "invert-test" in default_pool()
        img = np.random.default_rng(0).integers(0, 256, (8, 8, 1), dtype=np.uint8)
        out = build_pipeline("invert-test")(img, np.random.default_rng(0))
        np.testing.assert_array_equal(out, 255 - img)
        ra = RandAugment(n=1, m=5, ops=["invert-test"])
        out, names = ra.traced(img, np.random.default_rng(0))
        assert names == ["invert-test"]
        np.testing.assert_array_equal(out, 255 - img)
    finally:
        plugins.unregister_plugin("invert-plugin")
    assert "invert-test" not in default_pool()


def test_pool_op_that_cannot_take_m_is_reported(capsys):
    class NoM:
        @hookimpl
        def register_augmentations(self, register):
            register("no-m-test", lambda: (lambda img, rng: img), randaugment=True)

    plugins.register_plugin(NoM(), "no-m")
    try:
        RandAugment()  # a third-party op in the default pool is left out, with a warning naming its plugin
        assert "'no-m-test' cannot join RandAugment's pool" in capsys.readouterr().err
        with pytest.raises(ConfigError, match="no-m-test.*RandAugment"):
            RandAugment(ops=["no-m-test"])  # named by the user: an error
    finally:
        plugins.unregister_plugin("no-m")
