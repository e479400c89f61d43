"""A PNG grid showing what a pipeline does: each row is an original then K augmented versions, captioned.

Captions name the ops actually applied to that tile (RandAugment names its picks), so a
user can see which op produced which look.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vistrain.errors import OutputError

CAPTION_H = 14
GAP = 4


@dataclass(frozen=True)
class GridLayout:
    """Tile geometry of a preview grid; :meth:`size` is the PNG's (height, width)."""

    rows: int
    k: int
    tile: int = 96

    def size(self) -> tuple[int, int]:
        """(height, width) in pixels."""
        cols = self.k + 1
        return (self.rows * (self.tile + CAPTION_H) + (self.rows + 1) * GAP, cols * self.tile + (cols + 1) * GAP)

    def origin(self, row: int, col: int) -> tuple[int, int]:
        """Top-left (y, x) of a tile."""
        return GAP + row * (self.tile + CAPTION_H + GAP), GAP + col * (self.tile + GAP)


def _to_rgb_tile(img: np.ndarray, tile: int) -> np.ndarray:
    rgb = cv2.cvtColor(np.ascontiguousarray(img[..., 0]), cv2.COLOR_GRAY2RGB) if img.shape[2] == 1 else img[..., :3]
    h, w = rgb.shape[:2]
    scale = tile / max(h, w)
    # Nearest neighbour keeps small digits crisp when enlarged; area averaging when shrinking.
    interp = cv2.INTER_NEAREST if scale >= 1 else cv2.INTER_AREA
    resized = cv2.resize(np.ascontiguousarray(rgb), (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=interp)
    out = np.zeros((tile, tile, 3), np.uint8)
    y, x = (tile - resized.shape[0]) // 2, (tile - resized.shape[1]) // 2
    out[y:y + resized.shape[0], x:x + resized.shape[1]] = resized
    return out


def _caption(canvas: np.ndarray, text: str, y: int, x: int, width: int) -> None:
    font, scale = cv2.FONT_HERSHEY_SIMPLEX, 0.33
    while text and cv2.getTextSize(text, font, scale, 1)[0][0] > width:
        text = text[:-2] + "…" if len(text) > 2 else ""
    cv2.putText(canvas, text.replace("…", "~"), (x, y + CAPTION_H - 3), font, scale, (20, 20, 20), 1, cv2.LINE_AA)


def preview_grid(pipeline, images: list[np.ndarray], k: int, seed: int = 0, tile: int = 96) -> np.ndarray:
    """An RGB uint8 grid: one row per image, the original then *k* augmented versions with captions."""
    layout = GridLayout(len(images), k, tile)
    canvas = np.full((*layout.size(), 3), 255, np.uint8)
    for row, img in enumerate(images):
        rng = np.random.default_rng([seed, row])
        tiles = [(img, "original")]
        for _ in range(k):
            out, names = pipeline.traced(img, rng) if pipeline is not None else (img, [])
            tiles.append((out, "+".join(names) or "(none applied)"))
        for col, (tile_img, text) in enumerate(tiles):
            y, x = layout.origin(row, col)
            canvas[y:y + tile, x:x + tile] = _to_rgb_tile(tile_img, tile)
            _caption(canvas, text, y + tile, x, tile)
    return canvas


def save_png(path: str | Path, rgb: np.ndarray) -> Path:
    """Write an RGB array as a PNG file."""
    path = Path(path).expanduser()
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    try:
        if not ok:
            raise OSError("PNG encoding failed")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(buf.tobytes())
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}", hint="choose a writable --out path") from None
    return path
