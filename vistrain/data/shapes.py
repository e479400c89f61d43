"""Seeded synthetic coloured shapes drawn with OpenCV, with an unlimited unlabelled pool."""

from __future__ import annotations

import cv2
import numpy as np

from vistrain.data.source import ArrayImageSet, DataSource, GeneratedImageSet

SHAPE_CLASSES = ["circle", "square", "triangle", "cross", "star"]
_POOL_OFFSET = 1_000_003  # unlabelled images come from a disjoint range of seeds


def draw_shape(index: int, size: int, seed: int = 0) -> tuple[np.ndarray, int]:
    """Draw image *index*: a random shape of random colour, scale, position and rotation."""
    rng = np.random.default_rng([seed, index])
    label = int(rng.integers(len(SHAPE_CLASSES)))
    bg = rng.integers(0, 90, size=3)
    img = np.empty((size, size, 3), np.uint8)
    img[:] = bg
    noise = rng.integers(0, 25, size=(size, size, 1), dtype=np.uint8)
    img = cv2.add(img, np.repeat(noise, 3, axis=2))
    color = tuple(int(c) for c in rng.integers(120, 256, size=3))
    r = size * rng.uniform(0.2, 0.38)
    cx, cy = (size / 2 + rng.uniform(-0.12, 0.12, size=2) * size)
    angle = rng.uniform(0, 2 * np.pi)
    thickness = -1
    shift = 4  # sub-pixel precision
    scale = 1 << shift

    def poly(points: np.ndarray) -> None:
        cv2.fillPoly(img, [np.round(points * scale).astype(np.int32)], color, cv2.LINE_AA, shift)

    def ring(n: int, radius: np.ndarray | float) -> np.ndarray:
        t = angle + np.arange(n) * 2 * np.pi / n
        return np.stack([cx + radius * np.cos(t), cy + radius * np.sin(t)], axis=1)

    name = SHAPE_CLASSES[label]
    if name == "circle":
        cv2.circle(img, (int(round(cx * scale)), int(round(cy * scale))), int(round(r * scale)), color, thickness, cv2.LINE_AA, shift)
    elif name == "square":
        poly(ring(4, r))
    elif name == "triangle":
        poly(ring(3, r))
    elif name == "cross":
        w = r * 0.35
        c, s = np.cos(angle), np.sin(angle)
        for dx, dy in ((r, w), (w, r)):
            pts = np.array([[-dx, -dy], [dx, -dy], [dx, dy], [-dx, dy]])
            rot = pts @ np.array([[c, s], [-s, c]]) + [cx, cy]
            poly(rot)
    else:  # star
        radii = np.where(np.arange(10) % 2 == 0, r, r * 0.45)
        poly(ring(10, radii))
    return img, label


def load_shapes(arg: str | None, cfg) -> DataSource:
    """``shapes`` or ``shapes:SIZE``: labelled shapes plus a 50× larger unlabelled pool."""
    size = int(arg) if arg else cfg.shapes_size
    count = cfg.shapes_count
    seed = cfg.split_seed

    def labelled(i: int) -> tuple[np.ndarray, int]:
        return draw_shape(i, size, seed)

    def pooled(i: int) -> tuple[np.ndarray, int]:
        return draw_shape(_POOL_OFFSET + i, size, seed)

    drawn = [labelled(i) for i in range(count)]
    train = ArrayImageSet(np.stack([d[0] for d in drawn]), np.array([d[1] for d in drawn], dtype=np.int64))
    pool_len = count * 50
    pool = GeneratedImageSet(pool_len, pooled, labels=np.full(pool_len, -1, dtype=np.int64))
    return DataSource("shapes", list(SHAPE_CLASSES), train, unlabeled=pool, channels=3, image_size=(size, size),
                      recipe="small")
