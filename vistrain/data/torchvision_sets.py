"""MNIST, Fashion-MNIST, CIFAR-10/100 through torchvision; downloads only with ``--download``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vistrain.data.source import ArrayImageSet, DataSource
from vistrain.errors import DataError

# name -> (torchvision class, folder torchvision looks in under root, files it expects)
_SETS = {
    "mnist": ("MNIST", "MNIST/raw", "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte"),
    "fashion-mnist": ("FashionMNIST", "FashionMNIST/raw", "train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte"),
    "cifar10": ("CIFAR10", "cifar-10-batches-py", "data_batch_1..5, test_batch, batches.meta (from cifar-10-python.tar.gz)"),
    "cifar100": ("CIFAR100", "cifar-100-python", "train, test, meta (from cifar-100-python.tar.gz)"),
}


def _to_arrays(ds) -> tuple[np.ndarray, np.ndarray]:
    data = ds.data
    images = data.numpy() if hasattr(data, "numpy") else np.asarray(data)
    if images.ndim == 3:
        images = images[..., None]
    labels = np.asarray(ds.targets, dtype=np.int64)
    return np.ascontiguousarray(images.astype(np.uint8)), labels


def load_torchvision(name: str, cfg) -> DataSource:
    """Load a torchvision dataset from ``cfg.root``; offline, say where the files belong."""
    import torchvision.datasets as tvd

    cls_name, folder, files = _SETS[name]
    cls = getattr(tvd, cls_name)
    root = Path(cfg.root).expanduser()
    try:
        train = cls(str(root), train=True, download=cfg.download)
        test = cls(str(root), train=False, download=cfg.download)
    except RuntimeError as exc:
        if cfg.download:
            raise DataError(f"could not download {name!r} into {root}: {exc}", hint="check the network, or place the files by hand") from None
        raise DataError(
            f"dataset {name!r} not found under {root / folder}",
            hint=f"pass --download to fetch it, or place {files} in {root / folder} (set the folder with --set data.root=DIR)",
        ) from None
    except OSError as exc:
        raise DataError(f"could not download or read {name!r} in {root}: {exc}", hint="check the network and disk space") from None
    x_train, y_train = _to_arrays(train)
    x_test, y_test = _to_arrays(test)
    return DataSource(
        name, list(train.classes), ArrayImageSet(x_train, y_train), test=ArrayImageSet(x_test, y_test),
        channels=x_train.shape[3], image_size=tuple(x_train.shape[1:3]), recipe="small" if "cifar" in name else "digits",
    )


def make_loader(name: str):
    """A dataset factory bound to one torchvision dataset name."""

    def factory(arg: str | None, cfg) -> DataSource:
        return load_torchvision(name, cfg)

    factory.__name__ = f"load_{name.replace('-', '_')}"
    return factory


load_mnist = make_loader("mnist")
load_fashion_mnist = make_loader("fashion-mnist")
load_cifar10 = make_loader("cifar10")
load_cifar100 = make_loader("cifar100")
