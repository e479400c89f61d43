"""From uint8 HWC images to normalised batches: channel/size adaptation, augmentation, loaders."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

import numpy as np
import torch

from vistrain.data import geometry
from vistrain.data.dataloader import target_tensor
from vistrain.data.sampling import ResumableLoader, batch_count  # noqa: F401 - batch_count is public here too
from vistrain.data.source import ImageSet
from vistrain.errors import ConfigError

# Beyond this many bytes of float32 pixels the in-memory fast path is not used.
FAST_PATH_MAX_BYTES = 2 * 1024**3


RESIZE_MODES = ("squash", "crop")


@dataclass(frozen=True)
class InputSpec:
    """What the model expects: channels, square size and per-channel normalisation, and how an image of another
    size is brought to it (``resize``: ``squash`` or ``crop`` with ``crop_pct``; see :mod:`vistrain.data.geometry`)."""

    channels: int
    size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    resize: str = "squash"
    crop_pct: float = 0.875

    def to_dict(self) -> dict:
        """Plain dict for checkpoints."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict) -> InputSpec:
        """Inverse of :meth:`to_dict` (a spec without a geometry squashes, as every spec did before it had one)."""
        return cls(int(data["channels"]), int(data["size"]), tuple(data["mean"]), tuple(data["std"]),
                   str(data.get("resize", "squash")), float(data.get("crop_pct", 0.875)))


def adapt_image(img: np.ndarray, channels: int, size: int) -> np.ndarray:
    """Convert a uint8 HWC image to *channels* (1 or 3) and *size*×*size* (the ``squash`` geometry)."""
    return geometry.squash(img, channels, size)


class ImageTransform:
    """Callable turning one image into a normalised float CHW tensor: the input spec's geometry, then the
    augmentation (when given a generator), then normalisation.

    With the ``crop`` geometry and a pipeline that starts with ``resized-crop``, that crop is taken from the
    full-resolution image straight to the input size (as torchvision and timm do) instead of zooming into an
    image already brought to size. :meth:`from_bytes` decodes a JPEG at the reduced size the geometry allows.
    """

    def __init__(self, spec: InputSpec, augment: Callable[[np.ndarray, np.random.Generator], np.ndarray] | None = None):
        self.spec = spec
        self.augment = augment
        self.crop_smin: float | None = None  # a random resized crop drawn from the full image, before `augment`
        lead = getattr(augment, "leading_crop", None)
        if spec.resize == "crop" and lead is not None and lead() is not None:
            self.crop_smin, self.augment = lead()
        self._mean = np.asarray(spec.mean, np.float32).reshape(1, 1, -1) * 255.0
        self._inv_std = 1.0 / (np.asarray(spec.std, np.float32).reshape(1, 1, -1) * 255.0)
        self._mean_nchw = torch.from_numpy(self._mean.reshape(1, -1, 1, 1))
        self._inv_std_nchw = torch.from_numpy(self._inv_std.reshape(1, -1, 1, 1))

    def _geometry(self, img: np.ndarray, rng: np.random.Generator | None, full: tuple[int, int] | None = None,
                  box=None) -> np.ndarray:
        spec = self.spec
        if spec.resize != "crop":
            return geometry.squash(img, spec.channels, spec.size)
        if box is not None:
            img = geometry.crop_from(img, box, full or img.shape[:2], spec.size)
        elif self.crop_smin is not None and rng is not None:
            img = geometry.crop_from(img, geometry.random_box(*img.shape[:2], rng, self.crop_smin), img.shape[:2],
                                     spec.size)
        else:
            img = geometry.center_crop(img, spec.size, spec.crop_pct)
        return geometry.to_channels(img, spec.channels)

    def _augment(self, img: np.ndarray, rng: np.random.Generator | None) -> np.ndarray:
        if self.augment is not None and rng is not None:
            img = self.augment(img, rng)
            if img.ndim == 2:
                img = img[..., None]
        return img

    def to_uint8(self, img: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
        """Bring to the input size and (when given a generator) augment, staying uint8 HWC."""
        return self._augment(self._geometry(img, rng), rng)

    def from_bytes(self, data: bytes, name: str, rng: np.random.Generator | None = None) -> torch.Tensor:
        """:meth:`__call__` for an encoded file: a JPEG is decoded at the smallest size the geometry needs (the
        crop is drawn from the full image's dimensions); an unreadable one raises ImageDecodeError."""
        from vistrain.data.decode import decode, header, orientation

        orient = orientation(data)
        head = header(data, orient)
        spec = self.spec
        if head is None:
            return self(decode(data, name, orient=orient), rng)
        h, w, _c = head
        box = None
        if spec.resize != "crop":
            need = (spec.size, spec.size)
        elif self.crop_smin is not None and rng is not None:
            box = geometry.random_box(h, w, rng, self.crop_smin)
            need = (h * spec.size / box[2], w * spec.size / box[3])  # the box keeps at least size × size pixels
        else:
            side = geometry.shorter_side(spec.size, spec.crop_pct)
            need = (h * side / min(h, w), w * side / min(h, w))
        factor = geometry.reduction(h, w, *need)
        img = decode(data, name, min_size=(-(-h // factor), -(-w // factor)) if factor > 1 else None, orient=orient)
        img = self._geometry(img, rng, (h, w), box)
        return self.normalise(self._augment(img, rng))

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
           "the input keeps the aspect ratio (crop geometry)" if transform.spec.resize != "squash" else
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
    sample_weights: torch.Tensor | None = None,
    worker_start: str = "auto",
):
    """Pick the fast in-memory path when nothing is random per image; for in-memory data whose
    augmentation has a tensor form, batches augmented on *device* (``device_augment``: True, or
    "auto" with ``num_workers="auto"``); else the in-process augmenting path without workers, or
    a DataLoader (:mod:`vistrain.data.dataloader`: workers read, decode and augment, seeded per image).

    *rank* and *world_size* shard the data for DDP training (:mod:`vistrain.data.sampling`: every image once,
    the same number of steps on each rank); an evaluation loader passes ``pad=False``. The in-memory paths
    take the ``squash`` geometry; the ``crop`` geometry goes through the DataLoader path. *sample_weights*
    (shuffled loaders): each epoch draws its images with replacement in proportion to them
    (:func:`vistrain.data.balance.balanced_sample_weights`). *worker_start*: how DataLoader workers start
    (:func:`vistrain.data.dataloader.worker_start_method`).
    """
    loader = _build_loader(images, transform, batch_size, shuffle=shuffle, seed=seed, num_workers=num_workers,
                           drop_last=drop_last, pin_memory=pin_memory, device=device, device_augment=device_augment,
                           rank=rank, world_size=world_size, pad=pad, worker_start=worker_start)
    if sample_weights is not None and shuffle:
        if len(sample_weights) != len(images):
            raise ValueError(f"{len(sample_weights)} sampling weights for {len(images)} images")
        sampler = getattr(loader, "batch_sampler", loader)  # the DataLoader path orders through its batch sampler
        sampler.weights = sample_weights
    return loader


def _build_loader(images: ImageSet, transform: ImageTransform, batch_size: int, *, shuffle: bool, seed: int,
                  num_workers: int | str, drop_last: bool, pin_memory: bool, device, device_augment: bool | str,
                  rank: int, world_size: int, pad: bool, worker_start: str):
    from vistrain.data.dataloader import auto_num_workers, dataloader

    augmenting = transform.augment is not None or transform.crop_smin is not None
    spec = transform.spec
    in_memory = images.as_array() is not None and spec.resize == "squash"
    nbytes = len(images) * spec.channels * spec.size * spec.size * 4
    if not augmenting and in_memory and nbytes <= FAST_PATH_MAX_BYTES:
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
    workers = auto_num_workers(augmenting, in_memory) if num_workers == "auto" else int(num_workers)
    if augmenting and workers == 0 and in_memory:
        return AugmentedArrayLoader(images, transform, batch_size, shuffle, seed=seed, drop_last=drop_last, rank=rank,
                                    world_size=world_size, pad=pad)
    return dataloader(images, transform, batch_size, shuffle=shuffle, seed=seed, workers=workers, drop_last=drop_last,
                      pin_memory=pin_memory, rank=rank, world_size=world_size, pad=pad, worker_start=worker_start)


def close_loaders(*loaders) -> None:
    """Call ``close()`` on each loader that has one: device loaders end their prefetch threads."""
    for loader in loaders:
        close = getattr(loader, "close", None)
        if callable(close):
            close()


class MixedBatchLoader:
    """Each step concatenates a batch of *main* with the next batch of *extra* (cycled).

    Used for Noisy Student's unlabelled:labelled ratio: *main* is the pseudo-labelled loader
    (its length sets the epoch), *extra* the labelled one. Hard targets are one-hot encoded
    when the other side is soft, so the two can share one batch. FixMatch and FlexMatch use it
    the other way round: the unlabelled pool is *main*, the labels are cycled.

    :meth:`state_dict` holds both sides' positions (when both loaders can say theirs): a resumed
    epoch continues there without making the batches already done again.
    """

    def __init__(self, main, extra, num_classes: int):
        self.main, self.extra, self.num_classes = main, extra, num_classes
        self.dataset = main.dataset
        self.epoch = 0
        self.position = 0  # mixed batches handed out in the current epoch
        self._resume: dict | None = None

    def set_epoch(self, epoch: int) -> None:
        """Vary both loaders' augmentation with the epoch."""
        self.epoch = epoch
        if hasattr(self.main, "set_epoch"):
            self.main.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.main)

    def take_skipped(self) -> list[str]:
        """The images either loader could not read since the last call."""
        return [name for part in (self.main, self.extra) for name in getattr(part, "take_skipped", list)()]

    def close(self) -> None:
        """Close both loaders (their prefetch threads), where they can be."""
        close_loaders(self.main, self.extra)

    def _resumable(self) -> bool:
        return all(hasattr(side, "state_dict") and hasattr(side, "load_state_dict") for side in (self.main, self.extra))

    def state_dict(self) -> dict:
        """The batches handed out this epoch and both sides' own states; empty when a side has none (the
        training loop then replays the epoch's batches done)."""
        if not self._resumable():
            return {}
        return {"epoch": int(self.epoch), "position": int(self.position),
                "main": self.main.state_dict(), "extra": self.extra.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        """Continue from *state* (of this epoch): the main side after its batches done, the cycled side in the
        pass, and at the batch, where it stood."""
        if not state or not self._resumable():
            return
        self.epoch = int(state["epoch"])
        self.main.load_state_dict(state["main"])
        self._resume = {"position": int(state["position"]), "extra": state["extra"]}

    def _extra_batches(self, count: int, resume: dict | None):
        # the shorter labelled set is cycled; each pass gets its own augmentation seed (epoch * 1000 + cycle).
        # A resumed epoch starts at the pass it stood in, which continues from its own state.
        first = self.epoch * 1000
        if resume is not None and first <= int(resume["epoch"]) < first + 1000:
            first = int(resume["epoch"])
        else:
            resume = None
        passes = itertools.count(first)
        if hasattr(self.extra, "iter_epochs"):  # a device loader: no wait between passes, nor at the next epoch's
            return self.extra.iter_epochs(passes, count, then=(self.epoch + 1) * 1000, resume=resume)
        return self._each_pass(passes, resume)

    def _each_pass(self, passes, resume: dict | None):
        for epoch in passes:
            if hasattr(self.extra, "set_epoch"):
                self.extra.set_epoch(epoch)
            if resume is not None:
                self.extra.load_state_dict(resume)
                resume = None
            yield from self.extra

    def __iter__(self):
        resume, self._resume = self._resume, None
        self.position = resume["position"] if resume is not None else 0
        extra = self._extra_batches(max(0, len(self.main) - self.position), resume["extra"] if resume is not None else None)
        for x, y in self.main:
            x2, y2 = next(extra)
            if y.ndim != y2.ndim:
                y = y if y.ndim == 2 else torch.nn.functional.one_hot(y, self.num_classes).float()
                y2 = y2 if y2.ndim == 2 else torch.nn.functional.one_hot(y2, self.num_classes).float()
            self.position += 1
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
