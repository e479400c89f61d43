"""vistrain-elastic: the op distorts as the paper says, and RandAugment's default pool picks it up."""

from __future__ import annotations

import numpy as np
import pytest

from vistrain import plugins

import vistrain_elastic.plugin as plugin_module
from vistrain_elastic.elastic import Elastic


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setenv("VISTRAIN_PLUGINS", "none")
    plugins.reset()
    plugins.register_plugin(plugin_module, "elastic-test")
    yield
    plugins.unregister_plugin("elastic-test")
    plugins.reset()


def _digit(size=28, channels=1):
    img = np.zeros((size, size, channels), np.uint8)
    img[size // 4: 3 * size // 4, size // 2 - 2: size // 2 + 2] = 255  # a vertical bar, like a "1"
    return img


@pytest.mark.parametrize("channels", [1, 3])
def test_shape_dtype_and_determinism(channels):
    img = _digit(channels=channels)
    a = Elastic()(img, np.random.default_rng(3))
    b = Elastic()(img, np.random.default_rng(3))
    assert a.shape == img.shape and a.dtype == np.uint8
    assert np.array_equal(a, b) and not np.array_equal(a, img)


def test_zero_alpha_is_identity_and_strength_grows_with_alpha():
    img = _digit()
    assert np.array_equal(Elastic(alpha=0)(img, np.random.default_rng(0)), img)
    changed = [np.abs(Elastic(alpha=a)(img, np.random.default_rng(0)).astype(int) - img).mean() for a in (5, 34, 100)]
    assert changed[0] < changed[1] < changed[2]


def test_displacement_field_is_smooth_and_scales_with_the_side():
    op = Elastic()
    dx, _ = op.field(28, 28, np.random.default_rng(0))
    dx56, _ = op.field(56, 56, np.random.default_rng(0))
    assert np.abs(np.diff(dx, axis=1)).mean() < 0.2 * np.abs(dx).mean() + 1e-6  # neighbours move together
    assert 1.5 < np.abs(dx56).mean() / np.abs(dx).mean() < 2.5


def test_magnitude_maps_to_alpha():
    assert Elastic(m=15).alpha == pytest.approx(34.0)
    assert Elastic(m=0).alpha == 0.0


def test_joins_randaugments_default_pool(registered):
    from vistrain.augment.pipeline import build_pipeline
    from vistrain.augment.randaugment import default_pool

    assert "elastic" in default_pool()
    pipe = build_pipeline("rand-n2-m9")
    rng = np.random.default_rng(0)
    picked = set()
    for _ in range(40):
        out, names = pipe.traced(_digit(), rng)
        assert out.shape == (28, 28, 1)
        picked.update(names)
    assert any("elastic" in n for n in picked)
