"""Pictures of what a model's first layer learned: class templates or conv filters, as one grid."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

PAD = 2  # pixels of background between (and around) tiles


def first_weight_layer(model: nn.Module) -> nn.Module | None:
    """The first Conv2d or Linear in registration order (the layer that sees the pixels)."""
    return next((m for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))), None)


def weight_tiles(model: nn.Module, input_shape: tuple[int, int, int]) -> np.ndarray:
    """(N, h, w, c) float tiles: a Linear's rows as images of *input_shape*, or a conv's filters."""
    from vistrain.errors import ConfigError

    layer = first_weight_layer(model)
    if layer is None:
        raise ConfigError(f"{type(model).__name__} has no conv or fully connected layer to draw",
                          hint="k-NN stores images, not weights")
    w = layer.weight.detach().float().cpu()
    if isinstance(layer, nn.Linear):
        c, h, wd = input_shape
        if w.shape[1] != c * h * wd:
            raise ConfigError(f"the first layer takes {w.shape[1]} inputs, not an image of {c}x{h}x{wd}")
        w = w.view(-1, c, h, wd)  # perceptron: one template per class; MLP: one per hidden unit
    elif layer.groups != 1:
        raise ConfigError("the first conv is grouped; its filters do not map onto the input channels")
    return w.permute(0, 2, 3, 1).numpy()


def tile_grid(tiles: np.ndarray, scale: int = 1) -> np.ndarray:
    """Lay tiles out in a near-square grid; each tile is min-max scaled to 0–255 on its own.

    Returns uint8 (H, W) for one channel or (H, W, 3) BGR for three (ready for ``cv2.imwrite``).
    """
    n, h, w, c = tiles.shape
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    th, tw = h * scale, w * scale
    out = np.full((PAD + rows * (th + PAD), PAD + cols * (tw + PAD), c), 255, np.uint8)
    for i, tile in enumerate(tiles):
        lo, hi = float(tile.min()), float(tile.max())
        img = ((tile - lo) / (hi - lo) * 255.0) if hi > lo else np.full_like(tile, 128.0)
        img = np.repeat(np.repeat(img, scale, axis=0), scale, axis=1).astype(np.uint8)
        r, col = divmod(i, cols)
        y, x = PAD + r * (th + PAD), PAD + col * (tw + PAD)
        out[y:y + th, x:x + tw] = img
    if c == 1:
        return out[..., 0]
    if c == 3:
        return np.ascontiguousarray(out[..., ::-1])  # RGB weights, BGR file order for OpenCV
    return out[..., 0]  # other channel counts: draw the first channel


@torch.no_grad()
def weight_image(model: nn.Module, input_shape: tuple[int, int, int], min_tile: int = 32) -> np.ndarray:
    """The grid image of the first layer, tiles enlarged (nearest) to at least *min_tile* pixels."""
    tiles = weight_tiles(model, input_shape)
    if tiles.shape[3] not in (1, 3):
        tiles = tiles[..., :1]
    scale = max(1, math.ceil(min_tile / max(tiles.shape[1], tiles.shape[2])))
    return tile_grid(tiles, scale)
