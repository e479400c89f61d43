"""vistrain-stroke: dilation thickens, erosion thins, shapes are kept, and RandAugment's pool picks it up."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest

from vistrain import plugins
from vistrain.errors import ConfigError

import vistrain_stroke.plugin as plugin_module
from vistrain_stroke.stroke import Stroke


@pytest.fixture
def registered(monkeypatch):
    monkeypatch.setenv("VISTRAIN_PLUGINS", "none")
    plugins.reset()
    plugins.register_plugin(plugin_module, "stroke-test")
    yield
    plugins.unregister_plugin("stroke-test")
    plugins.reset()


def _seven(h=28, w=28, channels=1):
    """A "7" drawn with anti-aliased 2 px strokes, light on dark like MNIST."""
    img = np.zeros((h, w), np.uint8)
    sx, sy = w / 28, h / 28
    top_left, top_right, foot = (int(7 * sx), int(6 * sy)), (int(21 * sx), int(6 * sy)), (int(12 * sx), int(22 * sy))
    cv2.line(img, top_left, top_right, 255, 2, cv2.LINE_AA)
    cv2.line(img, top_right, foot, 255, 2, cv2.LINE_AA)
    return np.repeat(img[..., None], channels, axis=2)


def _ink(img):
    return int(img.astype(np.int64).sum())


def _bar():
    img = np.zeros((28, 28, 1), np.uint8)
    img[7:21, 12:16] = 255  # 4 px wide, 14 px tall
    return img


@pytest.mark.parametrize("kernel, thick", [("ellipse", 6 * 14 + 2 * 4), ("square", 6 * 16)])
def test_one_pixel_dilation_and_erosion_of_a_bar(kernel, thick):
    op = Stroke(kernel=kernel)
    assert (op.apply(_bar(), 1.0) == 255).sum() == thick  # the 3x3 ellipse is a cross: corners stay dark
    assert (op.apply(_bar(), -1.0) == 255).sum() == 2 * 12
    assert op.apply(_bar(), -2.0).max() == 0  # a 4 px stroke vanishes under a 5 px element


def test_random_radius_thickens_or_thins_a_digit_by_its_sign():
    img, op = _seven(), Stroke(px=1.5)
    signs = set()
    for seed in range(12):
        r = op.radius(28, 28, np.random.default_rng(seed))
        out = op(img, np.random.default_rng(seed))
        assert (_ink(out) > _ink(img)) == (r > 0) and (_ink(out) < _ink(img)) == (r < 0)
        signs.add(r > 0)
    assert signs == {True, False}


def test_fractional_radius_blends_and_strength_grows():
    img, op = _seven(), Stroke()
    inks = [_ink(op.apply(img, r)) for r in (0.0, 0.25, 0.5, 1.0, 1.5, 2.0)]
    assert inks == sorted(inks) and len(set(inks)) == len(inks)
    assert inks[2] == pytest.approx((inks[0] + inks[3]) / 2, rel=0.01)
    thinner = [_ink(op.apply(img, -r)) for r in (0.0, 0.5, 1.0)]
    assert thinner[0] > thinner[1] > thinner[2]


def test_dark_ink_swaps_dilation_and_erosion():
    page = 255 - _seven()  # dark strokes on a light page
    dark_ink = lambda img: _ink(255 - img)  # noqa: E731
    assert dark_ink(Stroke(ink="dark").apply(page, 1.0)) > dark_ink(page) > dark_ink(Stroke(ink="dark").apply(page, -1.0))
    assert dark_ink(Stroke().apply(page, 1.0)) < dark_ink(page)  # ink=light on a scan would thin it


@pytest.mark.parametrize("h, w, channels", [(28, 28, 1), (28, 28, 3), (20, 36, 1), (36, 20, 3)])
def test_shape_dtype_and_determinism(h, w, channels):
    img = _seven(h, w, channels)
    a = Stroke(m=30)(img, np.random.default_rng(3))
    b = Stroke(m=30)(img, np.random.default_rng(3))
    assert a.shape == img.shape and a.dtype == np.uint8
    assert np.array_equal(a, b) and not np.array_equal(a, img)
    if channels == 3:
        assert np.array_equal(a[..., 0], a[..., 2])  # grey input stays grey: channels are treated alike


def test_magnitude_and_px_map_to_the_radius_and_scale_with_the_side():
    rng = np.random.default_rng
    assert abs(Stroke(m=15).radius(28, 28, rng(0))) == pytest.approx(1.0)
    assert abs(Stroke(m=30).radius(28, 28, rng(0))) == pytest.approx(2.0)
    assert abs(Stroke(m=15).radius(56, 20, rng(0))) == pytest.approx(2.0)  # the longer side counts
    assert {Stroke(m=15).radius(28, 28, rng(s)) for s in range(20)} == {-1.0, 1.0}  # m: fixed size, random sign
    radii = [Stroke(px=2).radius(28, 28, rng(s)) for s in range(50)]
    assert max(map(abs, radii)) <= 2.0 and max(radii) > 1.0 and min(radii) < -1.0


@pytest.mark.parametrize("op", [Stroke(m=0), Stroke(px=0), Stroke(px=0, kernel="square", ink="dark")])
def test_zero_strength_is_identity(op):
    img = _seven(channels=3)
    for seed in range(5):
        assert np.array_equal(op(img, np.random.default_rng(seed)), img)


@pytest.mark.parametrize("params, word", [({"px": 9}, "px=9"), ({"px": -1}, "px=-1"), ({"m": 31}, "m=31"),
                                          ({"kernel": "disc"}, "kernel='disc'"), ({"ink": "grey"}, "ink='grey'")])
def test_bad_params_are_config_errors(params, word):
    with pytest.raises(ConfigError, match="augmentation 'stroke'") as info:
        Stroke(**params)
    assert word in str(info.value)


def test_bad_spec_is_one_line_and_exit_2(registered, capsys, tmp_path):
    from vistrain.cli import main

    assert main(["augment", "preview", "--spec", "stroke-px9", "--out", str(tmp_path / "x.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "px=9 is outside [0, 5]" in err and "Traceback" not in err
    assert not (tmp_path / "x.png").exists()


def test_registration_is_lazy():
    code = ("import sys, vistrain_stroke.plugin; "
            "print('cv2' in sys.modules, 'vistrain_stroke.stroke' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_joins_randaugments_default_pool(registered):
    from vistrain.augment.pipeline import build_pipeline
    from vistrain.augment.randaugment import default_pool

    entry = plugins.registry("augmentation").entry("stroke")
    assert entry.factory == "vistrain_stroke.stroke:Stroke" and entry.load() is Stroke
    assert "stroke" in default_pool()
    pipe = build_pipeline("rand-n2-m9")
    rng = np.random.default_rng(0)
    picked = set()
    for _ in range(40):
        out, names = pipe.traced(_seven(), rng)
        assert out.shape == (28, 28, 1)
        picked.update(names)
    assert any("stroke" in n for n in picked)
