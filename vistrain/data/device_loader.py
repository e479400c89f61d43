"""In-memory images augmented a whole batch at a time with tensor ops, on the training device.

The uint8 images go to the device once; each step indexes a batch there, runs the pipeline's
batch functions (see ``vistrain.augment.tensor_ops``) and normalises, so the training process
spends microseconds per step on data instead of looping over images in Python and OpenCV.

Randomness is plain and resumable: the order comes from a CPU ``torch.Generator`` and the
augmentation parameters from an ``np.random.Generator``, both reseeded from (seed, epoch) at the
start of every epoch, so an epoch's batches depend only on the seed and the epoch number.
:meth:`state_dict` exposes both generators' states (and the batch position) for mid-epoch capture.

Batches are made one ahead in the loader's prefetch thread, an epoch's first batch too: it is made while the
previous epoch's last is in use (:meth:`DeviceAugmentLoader.prepare`, :meth:`DeviceAugmentLoader.iter_epochs`),
so a step does not wait for data at an epoch's start either.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import islice

import numpy as np
import torch

from vistrain.data.sampling import draw_order, rank_batch_count, rank_batches

BatchAugment = Callable[[torch.Tensor, np.random.Generator], torch.Tensor]

# Distinct streams for the order and the augmentation parameters of an epoch.
_ORDER_STREAM, _AUGMENT_STREAM = 0x5EED0, 0xA06


def epoch_seed(seed: int, epoch: int, stream: int) -> int:
    """A 63-bit seed for one (seed, epoch, stream), from NumPy's SeedSequence mixing."""
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(epoch), stream]).generate_state(1, np.uint64)[0] >> 1)


def pixel_scale(mean, std, device: torch.device | str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel *mean* and *std* (of 0..1 pixels) on the 0..255 scale, as (1, C, 1, 1) float32 tensors:
    a batch of 0..255 pixels is normalised as ``(x - mean) / std`` and brought back as ``x * std + mean``."""
    def column(values) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.float32, device=device).view(1, len(values), 1, 1) * 255.0

    return column(mean), column(std)

class DeviceAugmentLoader:
    """Batches of in-memory uint8 NHWC images, augmented by a tensor pipeline and normalised on *device*."""

    def __init__(self, images: np.ndarray, labels, augment: BatchAugment, *, mean, std,
                 batch_size: int, shuffle: bool, seed: int = 0, drop_last: bool = False,
                 device: torch.device | str | None = None, prefetch: bool = True, rank: int = 0,
                 world_size: int = 1, pad: bool = True):
        self.device = torch.device(device or "cpu")
        self.images = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous().to(self.device)
        # int64 labels, or float32 probability rows (soft targets) as ``target_tensor`` gives them
        self.labels = (labels if torch.is_tensor(labels) else torch.from_numpy(np.asarray(labels, dtype=np.int64))).to(self.device)
        self.augment = augment
        self._mean, scale = pixel_scale(mean, std, self.device)
        self._inv_std = 1.0 / scale
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.prefetch = prefetch
        self.seed, self.epoch = seed, 0
        self.rank, self.world_size, self.pad = rank, world_size, pad  # DDP: this rank's share of each epoch
        # every rank draws the same order; each augments its share with its own stream
        self._augment_stream = _AUGMENT_STREAM + (1000 * rank if world_size > 1 else 0)
        self.augment_rng = np.random.default_rng(epoch_seed(seed, 0, self._augment_stream))
        self.batch_index = 0  # batches yielded so far in the current epoch
        self._rng_before: dict[int, dict] = {}  # augment_rng state before batch i was made
        self._resume: dict | None = None
        self._ahead: tuple[_EpochPlan, Future] | None = None  # a next epoch's plan and its first batch, in the making
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None  # started on the first prefetch; ends with the loader
        self.dataset = self.images  # len(loader.dataset) works as with a DataLoader
        self.weights: torch.Tensor | None = None  # balanced sampling (set by build_loader)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order and augmentation the next iteration yields."""
        self.epoch = epoch

    def __len__(self) -> int:
        return rank_batch_count(len(self.images), self.batch_size, self.rank, self.world_size, pad=self.pad,
                                drop_last=self.drop_last)

    def state_dict(self) -> dict:
        """Where the stream stands: seed, epoch, batches yielded this epoch, and the augmentation
        generator's state before the next batch (the order follows from seed and epoch)."""
        with self._lock:  # the prefetch thread may be starting the next batch
            rng = self._rng_before.get(self.batch_index, self.augment_rng.bit_generator.state)
        return {"seed": self.seed, "epoch": self.epoch, "batch_index": self.batch_index, "augment_rng": rng}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`: the next iteration of that epoch continues after its
        ``batch_index`` batches with the same augmentation parameters an unbroken run would draw."""
        self.seed, self.epoch = int(state["seed"]), int(state["epoch"])
        self.batch_index = int(state.get("batch_index", 0))
        self._resume = dict(state) if self.batch_index > 0 else None

    def prepare(self, epoch: int) -> None:
        """Start making *epoch*'s first batch now, in the prefetch thread (no-op without prefetch).

        The next iteration uses it if it is of that epoch from its start, with the same seed and sampling
        weights; else it is dropped. Either way the batches are the same as unprepared.
        """
        self._drop_ahead()
        if self.prefetch and len(self) > 0:
            plan = self._plan(epoch)
            self._ahead = (plan, self._executor().submit(self._make, plan, 0))

    def _executor(self) -> ThreadPoolExecutor:
        """This loader's prefetch thread (Noisy Student's two sides have one each: measured on two cores, one
        thread shared by both left student 1 waiting 5-6 % of its steps, two 4 %)."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="vistrain-augment")
        return self._pool

    def close(self) -> None:
        """End the prefetch thread (a prepared batch is dropped). The loader still works: a later prefetch starts
        a new thread."""
        self._drop_ahead()
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def _drop_ahead(self) -> None:
        if self._ahead is not None:
            self._ahead[1].cancel()
            self._ahead = None

    def _take_ahead(self, epoch: int | None):
        """The prepared (plan, future) of *epoch*'s first batch, if one was prepared and still applies."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None and (ahead[0].key != (self.seed, epoch) or ahead[0].weights is not self.weights):
            ahead[1].cancel()
            return None
        return ahead

    def _plan(self, epoch: int) -> _EpochPlan:
        order = draw_order(len(self.images), self.shuffle,
                           torch.Generator().manual_seed(epoch_seed(self.seed, epoch, _ORDER_STREAM)), self.weights)
        batches = [b.to(self.device) for b in rank_batches(order, self.batch_size, self.rank, self.world_size,
                                                            pad=self.pad, drop_last=self.drop_last)]
        rng = np.random.default_rng(epoch_seed(self.seed, epoch, self._augment_stream))
        return _EpochPlan((self.seed, epoch), self.weights, batches, rng)

    def _make(self, plan: _EpochPlan, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        with self._lock:  # state_dict reads the generator's state between batches, never during one
            plan.before[i] = plan.rng.bit_generator.state
            for k in [k for k in plan.before if k < i - 1]:
                del plan.before[k]
        idx = plan.batches[i]
        x = self.augment(self.images.index_select(0, idx).float(), plan.rng)
        return (x - self._mean) * self._inv_std, self.labels.index_select(0, idx)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        resume, self._resume = self._resume, None
        # the loop's next epoch is this one's successor: its first batch is made during the last step and the
        # evaluation instead of at the next epoch's start (one batch wasted after a stage's last epoch)
        return self.iter_epochs([self.epoch], len(self), then=self.epoch + 1, resume=resume)

    def iter_epochs(self, epochs: Iterable[int], count: int, *, then: int | None = None, resume: dict | None = None
                    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """*count* batches of *epochs* in turn, each epoch from its start, with no pause between epochs: an
        epoch's first batch is made while the previous epoch's last is in use; after the last batch, *then*'s
        first is prepared (:meth:`prepare`). The batches are those of ``set_epoch(e)`` and iterating, e by e.
        *resume*, a :meth:`state_dict` of the first epoch, makes it continue after its batches done instead."""
        epochs = iter(epochs)
        first = next(epochs, None)
        if first is None:
            return iter(())
        start = int(resume["batch_index"]) if resume is not None and int(resume["epoch"]) == first else 0
        return self._stream(itertools.chain([first], epochs), start, resume["augment_rng"] if start else None,
                            then=then, count=count)

    def _stream(self, epochs: Iterator[int], start: int, rng_state: dict | None, *, then: int | None,
                count: int | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        def jobs():  # (plan, batch number, its future if prepared) in the order they are handed out
            first = True
            for epoch in epochs:
                if len(self) == 0:
                    return
                ahead = self._take_ahead(None if first and start else epoch)  # a resumed epoch drops it
                plan = ahead[0] if ahead is not None else self._plan(epoch)
                if first and rng_state is not None:
                    plan.rng.bit_generator.state = rng_state
                for i in range(start if first else 0, len(self)):
                    yield plan, i, ahead[1] if ahead is not None and i == 0 else None
                first = False

        def begin(job):
            plan, i, ready = job
            if ready is not None or not self.prefetch:
                return ready
            return self._executor().submit(self._make, plan, i)

        todo = islice(jobs(), count)
        job = next(todo, None)
        if job is not None:
            self._enter(job[0], job[1])
        # One batch ahead in the prefetch thread: torch's ops release the GIL, so on the CPU the next batch is
        # augmented while the step runs (on CUDA the ops are asynchronous launches anyway). Each loader's batches
        # are still made strictly in order from its epoch's generator, so the stream is the same as without.
        pending = begin(job) if job is not None else None
        try:
            while job is not None:
                plan, i, _ = job
                batch = pending.result() if pending is not None else self._make(plan, i)
                job = next(todo, None)
                pending = begin(job) if job is not None else None
                if job is None and then is not None:
                    self.prepare(then)
                self._enter(plan, i + 1)
                yield batch
        finally:
            if pending is not None:
                pending.cancel()

    def _enter(self, plan: _EpochPlan, batch_index: int) -> None:
        """Make *plan* the epoch that :meth:`state_dict` describes, *batch_index* batches in."""
        self.epoch, self.augment_rng, self._rng_before = plan.key[1], plan.rng, plan.before
        self.batch_index = batch_index


class _EpochPlan:
    """One epoch's batches of indices, its augmentation generator, and that generator's state before each batch
    made (kept for the last two, for :meth:`DeviceAugmentLoader.state_dict`)."""

    def __init__(self, key: tuple[int, int], weights, batches: list[torch.Tensor], rng: np.random.Generator):
        self.key, self.weights, self.batches, self.rng = key, weights, batches, rng
        self.before: dict[int, dict] = {}
