"""What a dataset factory returns: image sets of uint8 HWC arrays plus class names."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.reduction import ForkingPickler

import numpy as np

from vistrain.data.worker_errors import SHM_DIR, shm_space

UNLABELED = -1


class ImageSet:
    """An indexable collection of uint8 HWC images with integer labels (``-1`` when unknown)."""

    labels: np.ndarray

    def __len__(self) -> int:
        return int(len(self.labels))

    def image(self, index: int) -> np.ndarray:
        """The image at *index* as a uint8 array of shape (H, W, C)."""
        raise NotImplementedError

    def raw(self, index: int) -> bytes | None:
        """The image at *index* still encoded (a file's bytes), for a loader that decodes it at the size it
        needs; None for images held decoded. An unreadable file raises ImageDecodeError."""
        return None

    def name(self, index: int) -> str:
        """What names the image in messages: its file, or its index."""
        return f"#{index}"

    def head(self, index: int) -> bytes:
        """At least the start of :meth:`raw` (enough to read a JPEG's or PNG's size)."""
        return self.raw(index) or b""

    def subset(self, indices: Sequence[int] | np.ndarray) -> ImageSet:
        """A view holding only *indices*, in that order."""
        return SubsetImageSet(self, np.asarray(indices, dtype=np.int64))

    def as_array(self) -> np.ndarray | None:
        """All images as one (N, H, W, C) array when held in memory, else None."""
        return None

    def targets(self) -> np.ndarray:
        """What a model trains on: int labels (N,), or probability rows (N, classes) for soft targets."""
        return self.labels


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


def _share_with_process(images: ArrayImageSet):
    """How multiprocessing sends an :class:`ArrayImageSet` to a process it starts: DataLoader workers started by
    ``forkserver`` or ``spawn`` (``data.worker_start``) get the images through shared memory, as torch sends its
    tensors, instead of each a private copy by pickle (a forked worker shares the parent's pages anyway). The images
    move into shared memory once, on the first such send; the set then reads that copy, and the private array is
    freed unless something else holds it. Where shared memory is too small for them (a container's 64 MB
    ``/dev/shm``), each process gets a copy as before, with one warning. Ordinary pickling (``pickle.dumps``,
    ``torch.save``) is not affected."""
    shared = getattr(images, "_shared", None)
    if shared is None:
        shared = images._shared = _to_shared_memory(images.images)
        if shared is not False:
            images.images = shared.numpy()
    if shared is False:
        return ArrayImageSet, (images.images, images.labels)
    return _from_shared, (shared, images.labels)


SHM_RESERVE = 256 * 2**20  # kept free for the batches the workers send, which travel through shared memory too


def _to_shared_memory(array: np.ndarray):
    """*array* as a torch tensor in shared memory, or False (with a warning) where there is no room for it: it may
    take at most half of what ``/dev/shm`` has free beyond :data:`SHM_RESERVE`, so that the workers' batches still
    fit (a container's default 64 MB ``/dev/shm`` never takes the images)."""
    import sys
    import warnings

    import torch

    def refuse(why: str) -> bool:
        print(f"warning: {why}: each loader worker gets its own copy of the {array.nbytes / 1e6:.0f} MB of "
              f"in-memory images (give the container more shared memory, e.g. docker run --shm-size=2g, or set "
              f"data.num_workers=0)", file=sys.stderr)
        return False

    space = shm_space()
    free = space[1] if space else None
    if free is not None and array.nbytes > (free - SHM_RESERVE) // 2:
        return refuse(f"{SHM_DIR} has {free / 1e6:.0f} MB free")
    try:
        with warnings.catch_warnings():  # a read-only array (a memory map) is copied into shared memory all the same
            warnings.simplefilter("ignore", UserWarning)
            return torch.from_numpy(np.ascontiguousarray(array)).share_memory_()
    except RuntimeError as exc:  # torch allocates the whole segment up front: a full /dev/shm is an error here
        return refuse(f"no shared memory for the images ({str(exc).splitlines()[0]})")


def _from_shared(shared, labels: np.ndarray) -> ArrayImageSet:
    images = ArrayImageSet(shared.numpy(), labels)
    images._shared = shared  # keeps the mapping alive, and a set passed on again is not copied again
    return images


ForkingPickler.register(ArrayImageSet, _share_with_process)


class SubsetImageSet(ImageSet):
    """A view of another image set."""

    def __init__(self, base: ImageSet, indices: np.ndarray):
        self.base = base
        self.indices = indices
        self.labels = base.labels[indices]

    def image(self, index: int) -> np.ndarray:
        return self.base.image(int(self.indices[index]))

    def raw(self, index: int) -> bytes | None:
        return self.base.raw(int(self.indices[index]))

    def name(self, index: int) -> str:
        return self.base.name(int(self.indices[index]))

    def as_array(self) -> np.ndarray | None:
        arr = self.base.as_array()
        return None if arr is None else arr[self.indices]


class SameImagesSet(ImageSet):
    """The images of ``self.base``, index for index, under labels or targets of its own (subclasses set them)."""

    base: ImageSet

    def image(self, index: int) -> np.ndarray:
        return self.base.image(index)

    def raw(self, index: int) -> bytes | None:
        return self.base.raw(index)

    def name(self, index: int) -> str:
        return self.base.name(index)

    def as_array(self) -> np.ndarray | None:
        return self.base.as_array()


class TargetImageSet(SameImagesSet):
    """Images of another set with replaced training targets: hard labels (N,) or soft rows (N, classes).

    Pseudo-labelled data is this: the teacher's labels (or its softmax) stand in for the true ones.
    ``labels`` are the hard targets (argmax of soft rows); ``true_labels`` keeps the base set's labels,
    which are ``-1`` where unknown.
    """

    def __init__(self, base: ImageSet, targets: np.ndarray):
        targets = np.asarray(targets)
        if len(targets) != len(base):
            raise ValueError(f"{len(targets)} targets for {len(base)} images")
        if targets.ndim == 2:
            self._targets = targets.astype(np.float32)
            self.labels = targets.argmax(axis=1).astype(np.int64) if len(targets) else np.zeros(0, np.int64)
        elif targets.ndim == 1:
            self._targets = targets.astype(np.int64)
            self.labels = self._targets
        else:
            raise ValueError(f"targets must be (N,) labels or (N, classes) probabilities, got shape {targets.shape}")
        self.base = base
        self.true_labels = np.asarray(base.labels, dtype=np.int64)

    @property
    def soft(self) -> bool:
        """Whether the targets are probability rows."""
        return self._targets.ndim == 2

    def targets(self) -> np.ndarray:
        return self._targets

    def subset(self, indices: Sequence[int] | np.ndarray) -> ImageSet:
        idx = np.asarray(indices, dtype=np.int64)
        return TargetImageSet(self.base.subset(idx), self._targets[idx])


class ConcatImageSet(ImageSet):
    """Image sets back to back (e.g. labelled + pseudo-labelled). Mixed hard and soft targets become soft rows."""

    def __init__(self, *parts: ImageSet, num_classes: int | None = None):
        if not parts:
            raise ValueError("ConcatImageSet needs at least one image set")
        self.parts = list(parts)
        self.num_classes = num_classes
        self.labels = np.concatenate([np.asarray(p.labels, dtype=np.int64) for p in self.parts])
        self._offsets = np.cumsum([0] + [len(p) for p in self.parts])

    def _locate(self, index: int) -> tuple[ImageSet, int]:
        part = int(np.searchsorted(self._offsets, index, side="right")) - 1
        return self.parts[part], int(index - self._offsets[part])

    def image(self, index: int) -> np.ndarray:
        part, i = self._locate(index)
        return part.image(i)

    def raw(self, index: int) -> bytes | None:
        part, i = self._locate(index)
        return part.raw(i)

    def name(self, index: int) -> str:
        part, i = self._locate(index)
        return part.name(i)

    def as_array(self) -> np.ndarray | None:
        arrays = [p.as_array() for p in self.parts]
        if any(a is None for a in arrays) or len({a.shape[1:] for a in arrays}) != 1:
            return None
        return np.concatenate(arrays)

    def targets(self) -> np.ndarray:
        rows = [np.asarray(p.targets()) for p in self.parts]
        if all(r.ndim == 1 for r in rows):
            return np.concatenate(rows).astype(np.int64)
        width = self.num_classes or max(r.shape[1] for r in rows if r.ndim == 2)
        return np.concatenate([r.astype(np.float32) if r.ndim == 2 else np.eye(width, dtype=np.float32)[r]
                               for r in rows])


class RelabelledImageSet(SameImagesSet):
    """Images of another set under other labels, e.g. an unlabelled pool's true labels in this run's classes
    (``-1`` where unknown)."""

    def __init__(self, base: ImageSet, labels: np.ndarray):
        if len(labels) != len(base):
            raise ValueError(f"{len(labels)} labels for {len(base)} images")
        self.base = base
        self.labels = np.asarray(labels, dtype=np.int64)


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
    """A dataset as loaded: the labelled training pool, an optional test set and unlabelled pool, and an optional
    val set of its own (which then picks ``best.pt`` instead of a share of the pool)."""

    name: str
    classes: list[str]
    train: ImageSet
    test: ImageSet | None = None
    unlabeled: ImageSet | None = None
    channels: int = 1  # native channels
    image_size: tuple[int, int] | None = None  # native (H, W) when uniform
    recipe: str = ""  # the training recipe it wants (vistrain.data.recipes): digits, small, photos; "" to guess
    skipped: list[str] = field(default_factory=list)  # unreadable files left out
    notes: list[str] = field(default_factory=list)  # other things left out that the user should hear about
    val: ImageSet | None = None  # the dataset's own val split (e.g. DIR/val/ of an image folder)
    info: list[str] = field(default_factory=list)  # how the dataset was read, for the run's log (not warnings)

    def all_images(self) -> ImageSet:
        """Every labelled image of the dataset: the training pool, then its own val and test splits."""
        images = self.train
        for part in (self.val, self.test):
            images = images if part is None else ConcatImageSet(images, part)
        return images


def own_splits_line(spec: str, described: list[str], replaced: list[str]) -> str:
    """The run's line for dataset *spec* read with its own splits: what each holds (*described*), and the config
    fractions the splits in *replaced* (val, test) take the place of."""
    line = f"{spec} has its own splits: {', '.join(described)}"
    return line + ("; they replace " + " and ".join(f"data.{s}_fraction" for s in replaced) if replaced else "")

