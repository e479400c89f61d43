"""The op protocol shared by built-in and plugin ops, and the helpers every op uses.

An op is registered as a *factory*: ``factory(**params) -> op``, where ``op(img, rng) -> img``
takes a uint8 HWC array (1 or 3 channels, any size) and an ``np.random.Generator`` and returns
a uint8 array of the same shape. Every op accepts ``m``, a magnitude on RandAugment's 0..30
scale: ``m`` means "this fixed strength, random sign", while the op's named range parameters
(``deg``, ``shift``...) mean "uniform in ±range". RandAugment builds its pool as ``factory(m=M)``.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from vistrain.errors import ConfigError

MAX_MAGNITUDE = 30.0

AugmentFn = Callable[[np.ndarray, np.random.Generator], np.ndarray]

_IDENTITY_LUT = np.arange(256, dtype=np.float32)


def level(m: float, hi: float, lo: float = 0.0) -> float:
    """Map magnitude *m* (0..30) linearly onto [lo, hi], as torchvision's 31 RandAugment bins do."""
    return lo + (hi - lo) * min(max(float(m), 0.0), MAX_MAGNITUDE) / MAX_MAGNITUDE


def check_range(op: str, name: str, value: float | None, lo: float, hi: float) -> None:
    """Raise a ConfigError when a parameter is outside [lo, hi]."""
    if value is not None and not lo <= float(value) <= hi:
        raise ConfigError(f"augmentation {op!r}: parameter {name}={value} is outside [{lo:g}, {hi:g}]")


def as_shape(out: np.ndarray, like: np.ndarray) -> np.ndarray:
    """OpenCV drops a trailing channel axis of 1; put it back."""
    return out.reshape(like.shape) if out.ndim != like.ndim else out


def lut_from(values: np.ndarray) -> np.ndarray:
    """Round and clip a 256-entry float table into a uint8 lookup table."""
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


def apply_lut(img: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """Apply a 256-entry uint8 table (the fastest way to do any per-pixel map on uint8)."""
    return as_shape(cv2.LUT(img, lut), img)


class Op:
    """Base class for built-in ops: ``m`` gives a fixed strength with random sign, else a range is sampled."""

    name = "op"
    signed = True  # a fixed magnitude is applied with a random sign

    def __init__(self, m: float | None = None):
        check_range(self.name, "m", m, 0.0, MAX_MAGNITUDE)
        self.m = m

    def amount(self, rng: np.random.Generator, fixed: float, spread: float) -> float:
        """*fixed* with a random sign when built from ``m``, else uniform in ±*spread*."""
        if self.m is not None:
            return -fixed if self.signed and rng.random() < 0.5 else fixed
        return float(rng.uniform(-spread, spread)) if spread else 0.0

    def __call__(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in vars(self).items() if not k.startswith('_'))})"


class Identity(Op):
    """Return the image unchanged (one of RandAugment's 14 ops)."""

    name = "identity"

    def __call__(self, img: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return img
