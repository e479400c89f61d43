"""``imagefolder:PATH`` — the torchvision layout ``PATH/<class>/<image>``."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from vistrain.data.source import DataSource, ImageSet
from vistrain.errors import DataError

# Unreadable files are reported by name (skipped lists, one error line): OpenCV's own warnings would add
# stray stderr lines such as "PNG input buffer is incomplete".
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)

IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".pgm", ".ppm"}


def read_image(path: str | os.PathLike) -> np.ndarray | None:
    """Decode an image file to uint8 HWC (1 or 3 channels, RGB order); None when unreadable."""
    try:
        buf = np.fromfile(str(path), dtype=np.uint8)
    except OSError:
        return None
    if buf.size == 0:
        return None
    img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if img is None:
        return None
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        img = cv2.normalize(img, None, 0, 255, cv2.NORM_MINMAX).astype(np.uint8)
    if img.ndim == 2:
        return img[..., None]
    if img.shape[2] == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    if img.shape[2] == 3:
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    return img[..., :1]


class FileImageSet(ImageSet):
    """Images decoded from files on demand."""

    def __init__(self, paths: list[str], labels: np.ndarray, channels: int):
        self.paths = paths
        self.labels = np.asarray(labels, dtype=np.int64)
        self.channels = channels

    def image(self, index: int) -> np.ndarray:
        img = read_image(self.paths[index])
        if img is None:  # changed on disk since the scan
            raise DataError(f"image {self.paths[index]!r} became unreadable during the run")
        return img


def _walk_images(folder: Path, root_real: str, seen: set[str]) -> tuple[list[str], int]:
    """Image files under *folder*, following symlinked folders except those that lead back into the
    image folder or to a folder already walked (loops, duplicates); returns (files, links skipped)."""
    found, skipped_links = [], 0
    for dirpath, dirs, files in os.walk(folder, followlinks=True):
        seen.add(os.path.realpath(dirpath))
        kept = []
        for d in sorted(dirs):
            full = os.path.join(dirpath, d)
            if os.path.islink(full):
                real = os.path.realpath(full)
                if real in seen or real == root_real or real.startswith(root_real + os.sep):
                    skipped_links += 1
                    continue
            kept.append(d)
        dirs[:] = kept
        found += [os.path.join(dirpath, f) for f in sorted(files) if Path(f).suffix.lower() in IMAGE_EXTENSIONS]
    return found, skipped_links


def scan_folder(root: Path) -> tuple[list[str], list[str], list[int], list[str], int, tuple[int, int] | None, int]:
    """Find classes and readable images; returns classes, paths, labels, skipped, channels, size and the
    number of symlinked folders left out because they lead back into the tree."""
    if not root.exists():
        raise DataError(f"image folder {str(root)!r} does not exist", hint="check the path after 'imagefolder:'")
    if not root.is_dir():
        raise DataError(f"{str(root)!r} is not a folder", hint="point imagefolder: at a folder laid out DIR/<class>/<image>")
    classes = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not classes:
        raise DataError(f"image folder {str(root)!r} has no class subfolders", hint="lay it out as DIR/<class>/<image>.png")
    candidates: list[tuple[str, int]] = []
    root_real, seen, skipped_links = os.path.realpath(root), set(), 0
    for label, name in enumerate(classes):
        files, links = _walk_images(root / name, root_real, seen)
        candidates += [(f, label) for f in files]
        skipped_links += links
    if not candidates:
        raise DataError(
            f"image folder {str(root)!r} has no images",
            hint=f"put {', '.join(sorted(IMAGE_EXTENSIONS))} files in its class subfolders",
        )
    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 1) + 2)) as pool:
        decoded = list(pool.map(lambda c: read_image(c[0]), candidates))
    paths, labels, skipped = [], [], []
    sizes, channels = set(), 1
    for (path, label), img in zip(candidates, decoded):
        if img is None:
            skipped.append(path)
            continue
        paths.append(path)
        labels.append(label)
        sizes.add(img.shape[:2])
        channels = max(channels, img.shape[2])
    if not paths:
        raise DataError(f"none of the {len(candidates)} images in {str(root)!r} could be read", hint="check the files are valid images")
    size = next(iter(sizes)) if len(sizes) == 1 else None
    return classes, paths, labels, skipped, channels, size, skipped_links


def load_imagefolder(arg: str | None, cfg) -> DataSource:
    """Load ``imagefolder:PATH``; unreadable files are skipped and listed in ``skipped``."""
    if not arg:
        raise DataError("imagefolder needs a path", hint="use --data imagefolder:PATH")
    root = Path(arg).expanduser()
    classes, paths, labels, skipped, channels, size, skipped_links = scan_folder(root)
    notes = [f"left out {skipped_links} symlinked folder(s) of {str(root)!r} that lead back into it (a loop or "
             f"the same images twice)"] if skipped_links else []
    return DataSource(
        f"imagefolder:{arg}", classes, FileImageSet(paths, np.array(labels), channels),
        channels=channels, image_size=size, skipped=skipped, notes=notes,
    )
