"""The DataLoader path: worker processes read, decode and augment images from files (or from memory when
the augmentation has no faster path), seeded per image, in an order that follows the epoch.

An image that cannot be read (corrupt, truncated, deleted while the run goes on) is skipped and named:
in training its place in the batch goes to the next readable image of the dataset, so batches keep their
size and DDP ranks their step count; in evaluation it is left out. The loader collects the names
(:meth:`EpochDataLoader.take_skipped`) for the training loop to report.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import sys
import warnings

import cv2
import numpy as np
import torch

from vistrain.data import worker_errors
from vistrain.data.decode import ImageDecodeError
from vistrain.data.sampling import ShardBatchSampler
from vistrain.data.source import ImageSet
from vistrain.errors import ConfigError, DataError


def target_tensor(images: ImageSet) -> torch.Tensor:
    """The set's training targets as a tensor: int64 labels, or float32 probability rows (soft targets)."""
    targets = np.asarray(images.targets())
    if targets.ndim == 2:
        return torch.from_numpy(np.ascontiguousarray(targets, dtype=np.float32))
    return torch.from_numpy(np.ascontiguousarray(targets, dtype=np.int64))


class TransformDataset(torch.utils.data.Dataset):
    """A torch Dataset over an :class:`ImageSet`; each image's augmentation draws from its own generator, seeded by
    (seed, epoch, index). *substitute*: an unreadable image is replaced by the next readable one (training);
    otherwise it is dropped (evaluation). Each item is (image, target, names of the unreadable images)."""

    def __init__(self, images: ImageSet, transform, seed: int = 0, substitute: bool = True):
        self.images = images
        self.targets = target_tensor(images)
        self.transform = transform
        self.seed = seed
        self.substitute = substitute
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.images)

    def load(self, index: int, rng: np.random.Generator | None) -> torch.Tensor:
        """Image *index* through the transform (decoded at the size it needs when the set holds files)."""
        raw = self.images.raw(index)
        if raw is not None:
            return self.transform.from_bytes(raw, repr(self.images.name(index)), rng)
        return self.transform(self.images.image(index), rng)

    def __getitem__(self, index):
        """*index* alone, or (epoch, index) as :class:`ShardBatchSampler` sends it: a worker's copy of ``epoch``
        is the one from when it started."""
        epoch = self.epoch
        if isinstance(index, tuple):
            epoch, index = index
        rng = None
        if self.transform.augment is not None or self.transform.crop_smin is not None:
            rng = np.random.default_rng([self.seed, int(epoch), int(index)])
        unreadable: list[str] = []
        i = int(index)
        for _ in range(min(len(self), 64)):
            try:
                return self.load(i, rng), self.targets[i], unreadable
            except ImageDecodeError:
                unreadable.append(self.images.name(i))
                if not self.substitute:
                    return None, self.targets[i], unreadable
                i = (i + 1) % len(self)
        raise DataError(f"{len(unreadable)} images in a row could not be read, from {unreadable[0]!r} on",
                        hint="check the dataset with 'vistrain datasets check'")


def _stack(tensors: list[torch.Tensor]) -> torch.Tensor:
    """``torch.stack``; in a worker process straight into shared memory, as torch's ``default_collate`` does. The
    batch then travels to the training process without another copy, and a full ``/dev/shm`` fails here, where
    the training process receives the error. Stacked privately, the batch is copied into shared memory by the
    worker queue's feeder thread, which only prints such a failure: the training process would wait for the
    batch forever."""
    if torch.utils.data.get_worker_info() is None:
        return torch.stack(tensors)
    first = tensors[0]
    storage = first._typed_storage()._new_shared(len(tensors) * first.numel(), device=first.device)
    return torch.stack(tensors, out=first.new(storage).resize_(len(tensors), *first.shape))


def collate(items):
    """Stack the readable images of a batch; returns (images, targets, unreadable names), the images None
    when none of the batch could be read (evaluation)."""
    unreadable = [name for _x, _y, names in items for name in names]
    kept = [(x, y) for x, y, _names in items if x is not None]
    if not kept:
        return None, None, unreadable
    return _stack([x for x, _ in kept]), _stack([y for _, y in kept]), unreadable


class EpochDataLoader(torch.utils.data.DataLoader):
    """A DataLoader over a :class:`ShardBatchSampler` whose order and augmentation follow :meth:`set_epoch`, and
    which collects the names of the images it could not read."""

    position = 0

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.skipped: list[str] = []

    def set_epoch(self, epoch: int) -> None:
        """Vary order and per-image augmentation across epochs, deterministically."""
        self.dataset.epoch = epoch
        self.batch_sampler.epoch = epoch
        if self.generator is not None:  # worker seeds, too, depend on the epoch alone
            self.generator.manual_seed(self.batch_sampler.seed * 100_003 + epoch)

    def state_dict(self) -> dict:
        """Epoch and batches already handed out in it."""
        return {"epoch": int(self.batch_sampler.epoch), "position": int(self.position)}

    def load_state_dict(self, state: dict) -> None:
        """Start the next iteration after the batches already handed out."""
        self.set_epoch(int(state["epoch"]))
        self.position = int(state.get("position", 0))
        self.batch_sampler.skip = self.position

    def take_skipped(self) -> list[str]:
        """The images found unreadable since the last call."""
        names, self.skipped = self.skipped, []
        return names

    def __iter__(self):
        self.position = self.batch_sampler.skip
        try:
            with warnings.catch_warnings():  # torch's own note on the failure below: the error says it in one line
                warnings.filterwarnings("ignore", message="Got pickle error", category=UserWarning)
                batches = super().__iter__()  # the sampler's iterators are made here, from its skip
        except (pickle.PicklingError, AttributeError, TypeError) as exc:
            if "pickle" not in str(exc).lower() or self.multiprocessing_context is None:
                raise
            method = self.multiprocessing_context.get_start_method()
            raise ConfigError(f"loader workers started by {method} receive the dataset and its augmentation by "
                              f"pickle, which failed: {exc}",
                              hint="define plugin augmentations and datasets as module-level classes and functions "
                                   "(no lambdas or local functions), or set data.worker_start=fork "
                                   "(Linux, Python 3.12+) or data.num_workers=0") from None
        self.batch_sampler.skip = 0  # the next epoch starts at its first batch
        try:
            for images, targets, unreadable in batches:
                self.position += 1
                self.skipped += unreadable
                if images is not None:
                    yield images, targets
        except Exception as exc:  # a worker's exception, with its traceback in the message (see worker_errors)
            readable = worker_errors.translate(exc)
            if readable is None:
                raise
            raise readable from exc


def auto_num_workers(augmenting: bool, in_memory: bool = True) -> int:
    """Workers for the DataLoader path. Files are read and decoded in workers: cores − 1 (at least 1, at most 8).
    In-memory images: none without augmentation or on ≤ 2 cores, else cores − 1 (max 8): on two cores a
    worker takes one of the cores the training step runs on, and the OpenCV ops cost far less than the step."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if not in_memory:
        return max(1, min(8, cores - 1))
    if not augmenting:
        return 0
    return 0 if cores <= 2 else min(8, cores - 1)


def _init_worker(worker_id: int) -> None:
    # Parallelism comes from the workers; OpenCV's own thread pool would oversubscribe the cores.
    cv2.setNumThreads(1)


# CPython before 3.12 can deadlock a child forked while another thread creates or ends a Python thread state
# (python/cpython#112275: the child waits on the runtime's HEAD_LOCK in PyOS_AfterFork_Child). A training process
# always runs such threads (queue feeders, the system sampler, checkpoint writes, gloo callbacks under DDP).
FORK_SAFE_WITH_THREADS = sys.version_info >= (3, 12)


def worker_start_method(requested: str = "auto") -> str:
    """How loader workers start. auto: ``fork`` on Linux where the interpreter forks safely beside other threads
    (Python 3.12 and later), so that workers start at once and share the training process's memory;
    ``forkserver`` on Linux before 3.12 (workers are forked from a small single-threaded server process, the
    dataset and augmentation sent to each by pickle); elsewhere the platform's default (``spawn``)."""
    available = multiprocessing.get_all_start_methods()
    if requested != "auto":
        if requested not in available:
            raise ConfigError(f"data.worker_start={requested!r} is not available on this platform",
                              hint=f"use one of: auto, {', '.join(available)}")
        return requested
    if sys.platform.startswith("linux"):
        return "fork" if FORK_SAFE_WITH_THREADS else "forkserver"
    return multiprocessing.get_start_method(allow_none=False)


def worker_context(method: str = "auto"):
    """The multiprocessing context of loader workers (:func:`worker_start_method`). OpenCV is made single-threaded
    in the process first: a fork while its thread pool is busy could leave a worker waiting on a lock no thread
    will release (torch itself makes its workers single-threaded). A forkserver imports this module (torch,
    OpenCV, NumPy) once, when it starts, instead of in every worker."""
    cv2.setNumThreads(1)
    method = worker_start_method(method)
    context = multiprocessing.get_context(method)
    if method == "forkserver":
        context.set_forkserver_preload(["vistrain.data.dataloader"])
    return context


def dataloader(images: ImageSet, transform, batch_size: int, *, shuffle: bool, seed: int, workers: int,
               drop_last: bool, pin_memory: bool, rank: int, world_size: int, pad: bool,
               worker_start: str = "auto") -> EpochDataLoader:
    """The DataLoader path for *images* (see the module)."""
    # the generator only seeds worker processes: the order comes from the sampler, a function of the epoch
    generator = torch.Generator().manual_seed(seed)
    sampler = ShardBatchSampler(len(images), batch_size, shuffle, seed=seed, rank=rank, world_size=world_size,
                                pad=pad, drop_last=drop_last)
    return EpochDataLoader(
        TransformDataset(images, transform, seed=seed, substitute=shuffle), batch_sampler=sampler, collate_fn=collate,
        # a training loader keeps its workers from epoch to epoch; an evaluation loader's exist while it runs
        num_workers=workers, generator=generator, pin_memory=pin_memory, persistent_workers=workers > 0 and shuffle,
        prefetch_factor=4 if workers > 0 else None, worker_init_fn=_init_worker if workers > 0 else None,
        multiprocessing_context=worker_context(worker_start) if workers > 0 else None,
    )
