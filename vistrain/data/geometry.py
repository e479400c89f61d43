"""How an image of any size becomes the model's square input.

Two geometries, chosen per run and saved in every checkpoint's input spec (``InputSpec.resize``):

- ``squash``: the whole image resized to size×size (aspect ratio not kept): right for datasets whose
  images all have one size, digits and CIFAR-like sets;
- ``crop``: the aspect ratio kept, as torchvision and timm do for photos. Evaluation resizes the shorter
  side to ``size / crop_pct`` and takes the centre; training takes an Inception-style random resized
  crop (area ``smin``..1, aspect 3/4..4/3) of the full-resolution image straight to size×size.

Both can read a JPEG at a reduced size (:func:`vistrain.data.decode.decode`): the plan says how many
pixels the geometry needs from the file, so a 4000×3000 photo trained at 224 px is decoded at 1/2, 1/4
or 1/8 of its size, and the crop is still drawn from the full image's dimensions.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

RATIO = (3 / 4, 4 / 3)  # the aspect ratios a random resized crop draws from (log-uniform)


def to_channels(img: np.ndarray, channels: int) -> np.ndarray:
    """*img* (uint8 HWC) with 1 or 3 channels: luma (ITU-R 601) for grey, repeated grey for colour."""
    if img.ndim == 2:
        img = img[..., None]
    c = img.shape[2]
    if c == channels:
        return img
    if channels == 1:
        return cv2.cvtColor(np.ascontiguousarray(img[..., :3]), cv2.COLOR_RGB2GRAY)[..., None]
    if c == 1:
        return np.repeat(img, channels, axis=2)
    return np.ascontiguousarray(img[..., :channels])


def resize(img: np.ndarray, h: int, w: int) -> np.ndarray:
    """Resize to (h, w), keeping channels: area averaging when shrinking, bilinear otherwise."""
    if img.shape[:2] == (h, w):
        return img
    interp = cv2.INTER_AREA if img.shape[0] > h and img.shape[1] > w else cv2.INTER_LINEAR
    out = cv2.resize(img, (w, h), interpolation=interp)
    return out if out.ndim == 3 else out[..., None]


def squash(img: np.ndarray, channels: int, size: int) -> np.ndarray:
    """The whole image as *channels* × size × size."""
    return resize(to_channels(img, channels), size, size)


def shorter_side(size: int, crop_pct: float) -> int:
    """The shorter side an evaluation image is resized to before its centre crop (timm's ``scale_size``)."""
    return int(math.floor(size / crop_pct))


def center_crop(img: np.ndarray, size: int, crop_pct: float) -> np.ndarray:
    """Resize the shorter side to ``size / crop_pct`` (aspect ratio kept), then the central size × size."""
    h, w = img.shape[:2]
    side = shorter_side(size, crop_pct)
    scale = side / min(h, w)
    nh, nw = max(size, int(round(h * scale))), max(size, int(round(w * scale)))
    img = resize(img, nh, nw)
    y, x = (nh - size) // 2, (nw - size) // 2
    return img[y:y + size, x:x + size]


def random_box(h: int, w: int, rng: np.random.Generator, smin: float = 0.08) -> tuple[int, int, int, int]:
    """An Inception-style crop box (y, x, height, width) of an h × w image: area smin..1 of it, aspect ratio
    3/4..4/3 log-uniform, torchvision's ten tries and then the whole image."""
    area = h * w
    log_r = (math.log(RATIO[0]), math.log(RATIO[1]))
    for _ in range(10):
        u = rng.random(4)
        target = area * (smin + (1.0 - smin) * u[0])
        ratio = math.exp(log_r[0] + (log_r[1] - log_r[0]) * u[1])
        cw, ch = int(round(math.sqrt(target * ratio))), int(round(math.sqrt(target / ratio)))
        if 0 < cw <= w and 0 < ch <= h:
            return int(u[2] * (h - ch + 1)), int(u[3] * (w - cw + 1)), ch, cw
    return 0, 0, h, w


def reduction(h: int, w: int, need_h: float, need_w: float) -> int:
    """The largest power-of-two reduction (1, 2, 4 or 8) that keeps an h × w image at least need_h × need_w."""
    factor = 1
    while factor < 8 and h / (factor * 2) >= need_h and w / (factor * 2) >= need_w:
        factor *= 2
    return factor


def crop_from(img: np.ndarray, box: tuple[int, int, int, int], full: tuple[int, int], size: int) -> np.ndarray:
    """The *box* (drawn in the full image's coordinates, *full* = its (h, w)) of *img*, which may be that image
    decoded at a reduced size, resized to size × size."""
    y, x, ch, cw = box
    sy, sx = img.shape[0] / full[0], img.shape[1] / full[1]
    y0, x0 = int(round(y * sy)), int(round(x * sx))
    y1, x1 = max(y0 + 1, int(round((y + ch) * sy))), max(x0 + 1, int(round((x + cw) * sx)))
    return resize(img[y0:y1, x0:x1], size, size)
