"""In-memory images augmented a whole batch at a time with tensor ops, on the training device.

The uint8 images go to the device once; each step indexes a batch there, runs the pipeline's
batch functions (see ``vistrain.augment.tensor_ops``) and normalises, so the training process
spends microseconds per step on data instead of looping over images in Python and OpenCV.

Randomness is plain and resumable: the order comes from a CPU ``torch.Generator`` and the
augmentation parameters from an ``np.random.Generator``, both reseeded from (seed, epoch) at the
start of every epoch, so an epoch's batches depend only on the seed and the epoch number.
:meth:`state_dict` exposes both generators' states (and the batch position) for mid-epoch capture.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from vistrain.data.sampling import draw_order, rank_batch_count, rank_batches

BatchAugment = Callable[[torch.Tensor, np.random.Generator], torch.Tensor]

# Distinct streams for the order and the augmentation parameters of an epoch.
_ORDER_STREAM, _AUGMENT_STREAM = 0x5EED0, 0xA06


def epoch_seed(seed: int, epoch: int, stream: int) -> int:
    """A 63-bit seed for one (seed, epoch, stream), from NumPy's SeedSequence mixing."""
    return int(np.random.SeedSequence([int(seed) & 0xFFFFFFFF, int(epoch), stream]).generate_state(1, np.uint64)[0] >> 1)


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
        channels = self.images.shape[1]
        self._mean = torch.tensor(mean, dtype=torch.float32, device=self.device).view(1, channels, 1, 1) * 255.0
        self._inv_std = 1.0 / (torch.tensor(std, dtype=torch.float32, device=self.device).view(1, channels, 1, 1) * 255.0)
        self.batch_size, self.shuffle, self.drop_last = batch_size, shuffle, drop_last
        self.prefetch = prefetch
        self.seed, self.epoch = seed, 0
        self.rank, self.world_size, self.pad = rank, world_size, pad  # DDP: this rank's share of each epoch
        # every rank draws the same order; each augments its share with its own stream
        self._augment_stream = _AUGMENT_STREAM + (1000 * rank if world_size > 1 else 0)
        self.order_generator = torch.Generator()
        self.augment_rng = np.random.default_rng(epoch_seed(seed, 0, self._augment_stream))
        self.batch_index = 0  # batches yielded so far in the current epoch
        self._rng_before: dict[int, dict] = {}  # augment_rng state before batch i was made
        self._resume: dict | None = None
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
        rng = self._rng_before.get(self.batch_index, self.augment_rng.bit_generator.state)
        return {"seed": self.seed, "epoch": self.epoch, "batch_index": self.batch_index, "augment_rng": rng}

    def load_state_dict(self, state: dict) -> None:
        """Restore :meth:`state_dict`: the next iteration of that epoch continues after its
        ``batch_index`` batches with the same augmentation parameters an unbroken run would draw."""
        self.seed, self.epoch = int(state["seed"]), int(state["epoch"])
        self.batch_index = int(state.get("batch_index", 0))
        self._resume = dict(state) if self.batch_index > 0 else None

    def _batch(self, batches: list[torch.Tensor], i: int) -> tuple[torch.Tensor, torch.Tensor]:
        self._rng_before = {i: self.augment_rng.bit_generator.state, **{k: v for k, v in self._rng_before.items() if k >= i - 1}}
        idx = batches[i]
        x = self.augment(self.images.index_select(0, idx).float(), self.augment_rng)
        return (x - self._mean) * self._inv_std, self.labels.index_select(0, idx)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = len(self.images)
        self.order_generator.manual_seed(epoch_seed(self.seed, self.epoch, _ORDER_STREAM))
        self.augment_rng = np.random.default_rng(epoch_seed(self.seed, self.epoch, self._augment_stream))
        order = draw_order(n, self.shuffle, self.order_generator, self.weights)
        order = [b.to(self.device) for b in rank_batches(order, self.batch_size, self.rank, self.world_size,
                                                          pad=self.pad, drop_last=self.drop_last)]
        start, resume, self._resume = 0, self._resume, None
        if resume is not None and int(resume["epoch"]) == self.epoch:
            start = int(resume["batch_index"])
            self.augment_rng.bit_generator.state = resume["augment_rng"]
        self._rng_before = {}
        self.batch_index = start
        steps = range(start, len(self))
        if not self.prefetch or len(steps) < 2:
            for i in steps:
                batch = self._batch(order, i)
                self.batch_index = i + 1
                yield batch
            return
        # One batch ahead in a thread: torch's ops release the GIL, so on the CPU the next batch is
        # augmented while the step runs (on CUDA the ops are asynchronous launches anyway). Batches
        # are still made strictly in order from one generator, so the stream is the same as without.
        with ThreadPoolExecutor(1, thread_name_prefix="vistrain-augment") as pool:
            pending = pool.submit(self._batch, order, start)
            try:
                for i in steps:
                    batch = pending.result()
                    if i + 1 < len(self):
                        pending = pool.submit(self._batch, order, i + 1)
                    self.batch_index = i + 1
                    yield batch
            finally:
                pending.cancel()
