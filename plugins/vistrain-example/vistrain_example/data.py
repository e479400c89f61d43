"""The example dataset: stripes in three orientations with random phase, colour and noise."""

from __future__ import annotations

import numpy as np

from vistrain.data.source import ArrayImageSet, DataSource

CLASSES = ["horizontal", "vertical", "diagonal"]


def load_stripes(arg, cfg) -> DataSource:
    """``stripes`` or ``stripes:SIZE``; 600 images, seeded by ``data.split_seed``."""
    size = int(arg) if arg else 32
    rng = np.random.default_rng(cfg.split_seed)
    n = 600
    labels = np.arange(n) % 3
    yy, xx = np.mgrid[0:size, 0:size]
    images = np.empty((n, size, size, 3), np.uint8)
    for i, label in enumerate(labels):
        period = rng.uniform(3, 8)
        phase = rng.uniform(0, period)
        coord = (yy, xx, xx + yy)[label]
        wave = (np.sin(2 * np.pi * (coord + phase) / period) > 0).astype(np.float32)
        colour = rng.uniform(80, 255, size=3)
        img = wave[..., None] * colour + rng.normal(0, 20, (size, size, 3))
        images[i] = np.clip(img, 0, 255).astype(np.uint8)
    return DataSource("stripes", list(CLASSES), ArrayImageSet(images, labels), channels=3, image_size=(size, size))
