"""From uint8 HWC images to normalised batches: channel/size adaptation, augmentation, loaders."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

import cv2
import numpy as np
import torch

from vistrain.data.sampling import ResumableLoader, ShardSampler, batch_count  # noqa: F401 - batch_count is public here too
from vistrain.data.source import ImageSet
from vistrain.errors import ConfigError

# Beyond this many bytes of float32 pixels the in-memory fast path is not used.
FAST_PATH_MAX_BYTES = 2 * 1024**3


@dataclass(frozen=True)
class InputSpec:
    """What the model expects: channels, square size and per-channel normalisation."""

    channels: int
    size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def to_dict(self) -> dict:
        """Plain dict for checkpoints."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> InputSpec:
        """Inverse of :meth:`to_dict`."""
        return cls(int(data["channels"]), int(data["size"]), tuple(data["mean"]), tuple(data["std"]))


def adapt_image(img: np.ndarray, channels: int, size: int) -> np.ndarray:
    """Convert a uint8 HWC image to *channels* (1 or 3) and *size*×*size*."""
    if img.ndim == 2:
        img = img[..., None]
    c = img.shape[2]
    if c != channels:
        if channels == 1:
            img = cv2.cvtColor(np.ascontiguousarray(img[..., :3]), cv2.COLOR_RGB2GRAY)[..., None]
        elif c == 1:
            img = np.repeat(img, channels, axis=2)
        else:
            img = np.ascontiguousarray(img[..., :channels])
    h, w = img.shape[:2]
    if (h, w) != (size, size):
        interp = cv2.INTER_AREA if h > size and w > size else cv2.INTER_LINEAR
        img = cv2.resize(img, (size, size), interpolation=interp)
        if img.ndim == 2:
            img = img[..., None]
    return img


class ImageTransform:
    """Callable turning one uint8 HWC image into a normalised float CHW tensor."""

    def __init__(self, spec: InputSpec, augment: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None):
        self.spec = spec
        self.augment = augment
        self._mean = np.asarray(spec.mean, np.float32).reshape(1, 1, -1) * 255.0
        self._inv_std = 1.0 / (np.asarray(spec.std, np.float32).reshape(1, 1, -1) * 255.0)
        self._mean_nchw = torch.from_numpy(self._mean.reshape(1, -1, 1, 1))
        self._inv_std_nchw = torch.from_numpy(self._inv_std.reshape(1, -1, 1, 1))

    def to_uint8(self, img: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """Adapt and (when configured) augment, staying uint8 HWC."""
        img = adapt_image(img, self.spec.channels, self.spec.size)
        if self.augment is not None and rng is not None:
            img = self.augment(img, rng)
            if img.ndim == 2:
                img = img[..., None]
        return img

    def normalise(self, img: np.ndarray) -> torch.Tensor:
        """uint8 HWC → float32 CHW normalised tensor."""
        x = (img.astype(np.float32) - self._mean) * self._inv_std
        return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))

    def normalise_batch(self, batch: np.ndarray) -> torch.Tensor:
        """uint8 NHWC array → float32 NCHW normalised tensor: :meth:`normalise` for a whole batch."""
        x = torch.from_numpy(batch).permute(0, 3, 1, 2).float()
        return ((x - self._mean_nchw) * self._inv_std_nchw).contiguous()

    def __call__(self, img: np.ndarray, rng: np.random.Generator | None = None) -> torch.Tensor:
        return self.normalise(self.to_uint8(img, rng))


def target_tensor(images: ImageSet) -> torch.Tensor:
    """The set's training targets as a tensor: int64 labels, or float32 probability rows (soft targets)."""
    targets = np.asarray(images.targets())
    if targets.ndim == 2:
        return torch.from_numpy(np.ascontiguousarray(targets, dtype=np.float32))
    return torch.from_numpy(np.ascontiguousarray(targets, dtype=np.int64))


class TransformDataset(torch.utils.data.Dataset):
    """A torch Dataset over an :class:`ImageSet`; each worker seeds its own augmentation RNG."""

    def __init__(self, images: ImageSet, transform: ImageTransform, seed: int = 0):
        self.images = images
        self.targets = target_tensor(images)
        self.transform = transform
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int):
        rng = None
        if self.transform.augment is not None:
            rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        return self.transform(self.images.image(index), rng), self.targets[index]


class TensorBatchLoader(ResumableLoader):
    """Fast path for in-memory data without per-image randomness: batches are tensor slices."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, shuffle: bool, seed: int = 0,
                 drop_last: bool = False, rank: int = 0, world_size: int = 1, pad: bool = True):
        self.x, self.y = x, y
        self._init_position(len(x), batch_size, shuffle, seed, drop_last, rank, world_size, pad)
        self.dataset = x  # len(loader.dataset) works as with a DataLoader

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        plain = not self.shuffle and self.world_size == 1
        for i, idx in self._batches():
            if plain:  # slices are views: no copy for the unshuffled single-process case
                sl = slice(i * self.batch_size, min(self.n, (i + 1) * self.batch_size))
                yield self.x[sl], self.y[sl]
            else:
                yield self.x[idx], self.y[idx]


class EpochDataLoader(torch.utils.data.DataLoader):
    """A DataLoader over a :class:`ShardSampler` whose order and augmentation follow :meth:`set_epoch`."""

    position = 0

    def set_epoch(self, epoch: int) -> None:
        """Vary order and per-image augmentation across epochs, deterministically."""
        if isinstance(self.dataset, TransformDataset):
            self.dataset.epoch = epoch
        if isinstance(self.sampler, ShardSampler):
            self.sampler.epoch = epoch
            if self.generator is not None:  # worker seeds, too, depend on the epoch alone
                self.generator.manual_seed(self.sampler.seed * 100_003 + epoch)

    def state_dict(self) -> dict:
        """Epoch and batches already handed out in it."""
        return {"epoch": int(self.sampler.epoch), "position": int(self.position)}

    def load_state_dict(self, state: dict) -> None:
        """Start the next iteration after the batches already handed out."""
        self.set_epoch(int(state["epoch"]))
        self.position = int(state.get("position", 0))
        self.sampler.skip = self.position * self.batch_size

    def __iter__(self):
        start = self.sampler.skip // self.batch_size
        self.position = start
        for batch in super().__iter__():
            self.position += 1
            yield batch


def auto_num_workers(augmenting: bool) -> int:
    """Workers for the DataLoader path: none without augmentation or on ≤ 2 cores, else cores − 1 (max 8).

    On two cores a worker process takes one of the two cores the training step runs on, and
    the OpenCV ops cost far less than the step, so augmenting in the main process is faster.
    """
    if not augmenting:
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return 0 if cores <= 2 else min(8, cores - 1)


def _init_worker(worker_id: int) -> None:
    # Parallelism comes from the workers; OpenCV's own thread pool would oversubscribe the cores.
    cv2.setNumThreads(1)


class AugmentedArrayLoader(ResumableLoader):
    """In-memory images augmented in the main process, a batch at a time, without worker processes.

    One ``np.random.Generator`` per (seed, epoch, batch[, rank]) drives the batch's images, so a run is
    reproducible and a resumed epoch skips batches without drawing them; the time spent here shows up
    as data wait in the batch events.
    """

    def __init__(self, images: ImageSet, transform: ImageTransform, batch_size: int, shuffle: bool,
                 seed: int = 0, drop_last: bool = False, rank: int = 0, world_size: int = 1, pad: bool = True):
        spec = transform.spec
        arr = images.as_array()
        if arr is None:
            raise ValueError("AugmentedArrayLoader needs images held in memory")
        if arr.shape[1:] != (spec.size, spec.size, spec.channels):
            arr = np.stack([adapt_image(img, spec.channels, spec.size) for img in arr]) if len(arr) else arr
        self.images = np.ascontiguousarray(arr)
        self.labels = target_tensor(images)
        self.transform = transform
        self._init_position(len(self.images), batch_size, shuffle, seed, drop_last, rank, world_size, pad)
        self.dataset = self.images  # len(loader.dataset) works as with a DataLoader

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        augment = self.transform.augment
        # each rank augments other images: give each its own stream (one process keeps the old seeding)
        key = [self.seed, self.epoch] if self.world_size == 1 else [self.seed, self.epoch, 1_000_003 + self.rank]
        for i, order in self._batches():
            idx = order.numpy()
            batch = self.images[idx]  # fancy indexing copies, so the ops never touch the dataset
            rng = np.random.default_rng(key + [i])
            for j in range(len(batch)):
                out = augment(batch[j], rng)
                if out.shape != batch[j].shape:
                    out = out.reshape(batch[j].shape) if out.size == batch[j].size else out
                    if out.shape != batch[j].shape:
                        raise ValueError(f"augmentation {augment!r} returned shape {out.shape} for an image of "
                                         f"shape {batch[j].shape}; ops must keep the shape")
                batch[j] = out
            yield self.transform.normalise_batch(batch), self.labels[idx]


def materialise(images: ImageSet, transform: ImageTransform) -> tuple[torch.Tensor, torch.Tensor]:
    """Transform every image once into one float tensor (used by the fast path)."""
    arr = images.as_array()
    spec = transform.spec
    if arr is not None and arr.shape[1:] == (spec.size, spec.size, spec.channels):
        x = transform.normalise_batch(arr)
    else:
        x = torch.stack([transform(images.image(i)) for i in range(len(images))]) if len(images) else torch.empty(0, spec.channels, spec.size, spec.size)
    return x, target_tensor(images)


def _device_augment_loader(images: ImageSet, transform: ImageTransform, batch_size: int, shuffle: bool, seed: int,
                           drop_last: bool, device, *, required: bool, nbytes: int, shard: dict | None = None):
    """A :class:`DeviceAugmentLoader` when the images are in memory and every op has a tensor form.

    With *required* (``data.device_augment=true``) anything else is a configuration error.
    """
    from vistrain.data.device_loader import DeviceAugmentLoader

    on_tensors = getattr(transform.augment, "on_tensors", None)
    batch_augment = on_tensors() if on_tensors is not None else None
    arr = images.as_array()
    why = ("the augmentation has ops without a tensor form" if batch_augment is None else
           "the dataset is not held in memory" if arr is None else
           "the dataset is too large to hold on the device" if nbytes > FAST_PATH_MAX_BYTES else None)
    if why is not None:
        if required:
            raise ConfigError(f"data.device_augment=true but {why} ({transform.augment!r})",
                              hint="use data.device_augment=auto to fall back to per-image augmentation")
        return None
    spec = transform.spec
    if arr.shape[1:] != (spec.size, spec.size, spec.channels):
        arr = np.stack([adapt_image(img, spec.channels, spec.size) for img in arr]) if len(arr) else arr
    return DeviceAugmentLoader(arr, target_tensor(images), batch_augment, mean=spec.mean, std=spec.std, batch_size=batch_size,
                               shuffle=shuffle, seed=seed, drop_last=drop_last, device=device, **(shard or {}))


def build_loader(
    images: ImageSet,
    transform: ImageTransform,
    batch_size: int,
    *,
    shuffle: bool,
    seed: int = 0,
    num_workers: int | str = "auto",
    drop_last: bool = False,
    pin_memory: bool = False,
    device=None,
    device_augment: bool | str = "auto",
    rank: int = 0,
    world_size: int = 1,
    pad: bool = True,
):
    """Pick the fast in-memory path when nothing is random per image; for in-memory data whose
    augmentation has a tensor form, batches augmented on *device* (``device_augment``: True, or
    "auto" with ``num_workers="auto"``); else the in-process augmenting path without workers, or
    a DataLoader (workers augment, seeded per image).

    *rank* and *world_size* shard the data as ``DistributedSampler`` does (for DDP training); an
    evaluation loader passes ``pad=False`` so no image is counted twice.
    """
    augmenting = transform.augment is not None
    spec = transform.spec
    nbytes = len(images) * spec.channels * spec.size * spec.size * 4
    if not augmenting and images.as_array() is not None and nbytes <= FAST_PATH_MAX_BYTES:
        x, y = materialise(images, transform)
        return TensorBatchLoader(x, y, batch_size, shuffle, seed=seed, drop_last=drop_last, rank=rank,
                                 world_size=world_size, pad=pad)
    # auto: only when the worker count is left to vistrain too; an explicit count asks for per-image ops
    if augmenting and (device_augment is True or (device_augment == "auto" and num_workers == "auto")):
        loader = _device_augment_loader(images, transform, batch_size, shuffle, seed, drop_last, device,
                                        required=device_augment is True, nbytes=nbytes // 4,
                                        shard={"rank": rank, "world_size": world_size, "pad": pad})
        if loader is not None:
            return loader
    workers = auto_num_workers(augmenting) if num_workers == "auto" else int(num_workers)
    if augmenting and workers == 0 and images.as_array() is not None:
        return AugmentedArrayLoader(images, transform, batch_size, shuffle, seed=seed, drop_last=drop_last, rank=rank,
                                    world_size=world_size, pad=pad)
    # the generator only seeds worker processes: the order comes from the sampler, a function of the epoch
    generator = torch.Generator().manual_seed(seed)
    return EpochDataLoader(
        TransformDataset(images, transform, seed=seed), batch_size=batch_size,
        sampler=ShardSampler(len(images), shuffle, seed=seed, rank=rank, world_size=world_size, pad=pad),
        num_workers=workers, drop_last=drop_last, generator=generator, pin_memory=pin_memory,
        persistent_workers=workers > 0, prefetch_factor=4 if workers > 0 else None,
        worker_init_fn=_init_worker if workers > 0 else None,
        # Forking a process whose OpenCV/OpenMP pools already ran can deadlock the workers;
        # forkserver children start from a clean process.
        multiprocessing_context="forkserver" if workers > 0 else None,
    )


class MixedBatchLoader:
    """Each step concatenates a batch of *main* with the next batch of *extra* (cycled).

    Used for Noisy Student's unlabelled:labelled ratio: *main* is the pseudo-labelled loader
    (its length sets the epoch), *extra* the labelled one. Hard targets are one-hot encoded
    when the other side is soft, so the two can share one batch.
    """

    def __init__(self, main, extra, num_classes: int):
        self.main, self.extra, self.num_classes = main, extra, num_classes
        self.dataset = main.dataset
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Vary both loaders' augmentation with the epoch."""
        self.epoch = epoch
        if hasattr(self.main, "set_epoch"):
            self.main.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.main)

    def _extra_batches(self):
        cycle = 0
        while True:  # the shorter labelled set is cycled; each pass gets its own augmentation seed
            if hasattr(self.extra, "set_epoch"):
                self.extra.set_epoch(self.epoch * 1000 + cycle)
            cycle += 1
            yield from self.extra

    def __iter__(self):
        extra = self._extra_batches()
        for x, y in self.main:
            x2, y2 = next(extra)
            if y.ndim != y2.ndim:
                y = y if y.ndim == 2 else torch.nn.functional.one_hot(y, self.num_classes).float()
                y2 = y2 if y2.ndim == 2 else torch.nn.functional.one_hot(y2, self.num_classes).float()
            yield torch.cat([x, x2]), torch.cat([y, y2])


class TimedIterator:
    """Wraps a batch iterator and records how long each ``next`` waited for data."""

    def __init__(self, iterable):
        self._it = iter(iterable)
        self.wait_s = 0.0

    def __iter__(self):
        return self

    def __next__(self):
        t0 = time.perf_counter()
        try:
            return next(self._it)
        finally:
            self.wait_s += time.perf_counter() - t0
