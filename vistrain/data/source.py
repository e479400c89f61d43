"""What a dataset factory returns: image sets of uint8 HWC arrays plus class names."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

UNLABELED = -1


class ImageSet:
    """An indexable collection of uint8 HWC images with integer labels (``-1`` when unknown)."""

    labels: np.ndarray

    def __len__(self) -> int:
        return int(len(self.labels))

    def image(self, index: int) -> np.ndarray:
        """The image at *index* as a uint8 array of shape (H, W, C)."""
        raise NotImplementedError

    def subset(self, indices: Sequence[int] | np.ndarray) -> ImageSet:
        """A view holding only *indices*, in that order."""
        return SubsetImageSet(self, np.asarray(indices, dtype=np.int64))

    def as_array(self) -> np.ndarray | None:
        """All images as one (N, H, W, C) array when held in memory, else None."""
        return None


class ArrayImageSet(ImageSet):
    """Images held in memory as one (N, H, W, C) uint8 array."""

    def __init__(self, images: np.ndarray, labels: np.ndarray):
        if images.ndim == 3:
            images = images[..., None]
        if images.dtype != np.uint8:
            raise TypeError(f"images must be uint8, got {images.dtype}")
        self.images = images
        self.labels = np.asarray(labels, dtype=np.int64)

    def image(self, index: int) -> np.ndarray:
        return self.images[index]

    def subset(self, indices: Sequence[int] | np.ndarray) -> ImageSet:
        idx = np.asarray(indices, dtype=np.int64)
        return ArrayImageSet(self.images[idx], self.labels[idx])

    def as_array(self) -> np.ndarray:
        return self.images


class SubsetImageSet(ImageSet):
    """A view of another image set."""

    def __init__(self, base: ImageSet, indices: np.ndarray):
        self.base = base
        self.indices = indices
        self.labels = base.labels[indices]

    def image(self, index: int) -> np.ndarray:
        return self.base.image(int(self.indices[index]))

    def as_array(self) -> np.ndarray | None:
        arr = self.base.as_array()
        return None if arr is None else arr[self.indices]


class GeneratedImageSet(ImageSet):
    """Images produced on demand by ``make(index) -> (image, label)``; used for unlimited pools."""

    def __init__(self, length: int, make: Callable[[int], tuple[np.ndarray, int]], labels: np.ndarray | None = None):
        self._make = make
        if labels is None:
            labels = np.array([make(i)[1] for i in range(length)], dtype=np.int64)
        self.labels = np.asarray(labels, dtype=np.int64)

    def image(self, index: int) -> np.ndarray:
        return self._make(int(index))[0]


@dataclass
class DataSource:
    """A dataset as loaded: the labelled training pool, an optional test set and unlabelled pool."""

    name: str
    classes: list[str]
    train: ImageSet
    test: ImageSet | None = None
    unlabeled: ImageSet | None = None
    channels: int = 1  # native channels
    image_size: tuple[int, int] | None = None  # native (H, W) when uniform
    skipped: list[str] = field(default_factory=list)  # unreadable files left out
