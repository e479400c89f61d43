"""Property tests for every registered augmentation op: shapes, dtype, range, determinism, magnitude."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vistrain.augment.pipeline import build_pipeline, build_step
from vistrain.augment.randaugment import PAPER_OPS
from vistrain.plugins import registry

OP_NAMES = registry("augmentation").names()
# Ops whose output at magnitude 0 must equal the input (autocontrast/equalize have no magnitude).
NO_MAGNITUDE = {"autocontrast", "equalize"}


@st.composite
def images(draw):
    h = draw(st.integers(8, 256))
    w = draw(st.integers(8, 256))
    c = draw(st.sampled_from([1, 3]))
    seed = draw(st.integers(0, 2**32 - 1))
    return np.random.default_rng(seed).integers(0, 256, (h, w, c), dtype=np.uint8)


def test_registry_has_every_op_of_the_issue():
    expected = {"brightness", "brightness-add", "contrast", "color", "sharpness", "autocontrast", "equalize",
                "solarize", "posterize", "rot90", "rotate", "flip-h", "flip-v", "crop", "center-crop",
                "resized-crop", "affine", "shear-x", "shear-y", "translate-x", "translate-y", "perspective",
                "cutout", "erase", "identity", "rand"}
    assert expected <= set(OP_NAMES)


@pytest.mark.parametrize("name", OP_NAMES)
def test_op_properties(name):
    # p=1 so probabilistic steps (flips) always run; m=15 drives every op through the common scale.
    step = build_step(name, {"p": 1.0, "m": 15} if name != "rand" else {"p": 1.0, "n": 2, "m": 15})

    @settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(img=images(), seed=st.integers(0, 2**32 - 1))
    def check(img, seed):
        before = img.copy()
        out = step.op(img, np.random.default_rng(seed))
        again = step.op(img, np.random.default_rng(seed))
        assert out.dtype == np.uint8
        assert out.shape == img.shape
        assert 0 <= out.min() and out.max() <= 255
        np.testing.assert_array_equal(out, again)  # same seed, same result
        np.testing.assert_array_equal(img, before)  # the input is never modified

    check()


@pytest.mark.parametrize("name", [n for n in PAPER_OPS if n not in NO_MAGNITUDE])
def test_magnitude_zero_is_identity_for_paper_ops(name):
    img = np.random.default_rng(0).integers(0, 256, (33, 47, 3), dtype=np.uint8)
    op = build_step(name, {"m": 0}).op
    np.testing.assert_array_equal(op(img, np.random.default_rng(1)), img)


@pytest.mark.parametrize("name", ["rotate", "shear-x", "translate-y", "brightness", "solarize", "posterize"])
def test_larger_magnitude_changes_more(name):
    img = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    diffs = [np.abs(build_step(name, {"m": m}).op(img, np.random.default_rng(3)).astype(int) - img).mean()
             for m in (3, 30)]
    assert diffs[1] > diffs[0]


def test_course_brightness_adds_and_clips():
    img = np.array([[[0], [100], [250]]], np.uint8)
    out = build_step("brightness-add", {"delta": 20}).op(img, np.random.default_rng(0))
    delta = int(out[0, 1, 0]) - 100
    assert -20 <= delta <= 20 and delta != 0
    expected = np.clip(np.array([0, 100, 250]) + delta, 0, 255)
    np.testing.assert_array_equal(out[0, :, 0], expected)


def test_flip_and_rot90_are_exact():
    img = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    rng = np.random.default_rng(0)
    np.testing.assert_array_equal(build_step("flip-h", {}).op(img, rng), img[:, ::-1])
    np.testing.assert_array_equal(build_step("flip-v", {}).op(img, rng), img[::-1])
    sq = np.arange(16, dtype=np.uint8).reshape(4, 4, 1)
    np.testing.assert_array_equal(build_step("rot90", {"k": 2}).op(sq, rng), sq[::-1, ::-1])


def test_crop_with_padding_is_a_shift_with_black_fill():
    img = np.full((10, 10, 1), 200, np.uint8)
    outs = [build_step("crop", {"pad": 3}).op(img, np.random.default_rng(s)) for s in range(20)]
    assert any((o == 0).any() for o in outs)  # some crops reach into the padding
    for o in outs:
        assert set(np.unique(o)) <= {0, 200}
        assert (o == 200).sum() >= 7 * 7  # at most 3 px lost per axis


def test_pipeline_is_deterministic_and_varies_with_seed():
    img = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    p = build_pipeline("flip-h,crop-pad4,rand-n2-m9")
    a = p(img, np.random.default_rng(7))
    np.testing.assert_array_equal(a, p(img, np.random.default_rng(7)))
    assert any(not np.array_equal(a, p(img, np.random.default_rng(s))) for s in range(8, 12))
