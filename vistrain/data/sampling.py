"""Which images each step sees: the epoch's order, its batches on each DDP rank, and a resumable position.

The order of an epoch is a pure function of (seed, epoch), so a resumed run replays it exactly without
saved generator state. Under DDP every rank draws the same permutation and cuts it into *global*
batches of ``world_size × batch_size``; rank r takes every ``world_size``-th image of each, from r
(``DistributedSampler``'s interleaving: two ranks of 32 see at each step exactly the images one process
of 64 sees). The last global batch is shared out without padding, so every image is seen exactly once
per epoch and every rank takes the same number of steps: when fewer images than ranks are left over,
they join the global batch before (a rank then has one image more in that step).
"""

from __future__ import annotations

from collections.abc import Iterator

import torch


def batch_count(n: int, batch_size: int, drop_last: bool) -> int:
    """Batches in an epoch of *n* items."""
    return n // batch_size if drop_last else (n + batch_size - 1) // batch_size


def draw_order(n: int, shuffle: bool, generator: torch.Generator, weights: torch.Tensor | None = None) -> torch.Tensor:
    """An order of *n* indices from *generator*: every index once (shuffled, or in order), or with *weights*
    (shuffled training only) *n* indices drawn with replacement in proportion to them
    (:mod:`vistrain.data.balance`)."""
    if not shuffle:
        return torch.arange(n)
    if weights is not None:
        return torch.multinomial(weights, n, replacement=True, generator=generator)
    return torch.randperm(n, generator=generator)


def epoch_permutation(n: int, *, shuffle: bool, seed: int, epoch: int,
                      weights: torch.Tensor | None = None) -> torch.Tensor:
    """The epoch's order (:func:`draw_order`), a pure function of (seed, epoch)."""
    generator = torch.Generator().manual_seed(int(seed) * 100_003 + int(epoch)) if shuffle else None
    return draw_order(n, shuffle, generator, weights)


def _global_bounds(n: int, batch_size: int, world_size: int, drop_last: bool) -> list[int]:
    """Where the global batches of a training epoch of *n* images start, and *n* at the end."""
    step = batch_size * world_size
    full, tail = divmod(n, step)
    if drop_last or tail == 0:
        return [i * step for i in range(full + 1)]
    if tail >= world_size or full == 0:
        return [i * step for i in range(full + 1)] + [n]
    return [i * step for i in range(full)] + [n]  # fewer left than ranks: they join the last full batch


def rank_batches(order: torch.Tensor, batch_size: int, rank: int = 0, world_size: int = 1, *, pad: bool = True,
                 drop_last: bool = False) -> list[torch.Tensor]:
    """*rank*'s batches of an epoch in *order* (see the module). Training (*pad*) gives every rank the same
    number of batches and every image once; evaluation (no *pad*) takes every ``world_size``-th image from
    *rank*, so the ranks' batch counts may differ. Fewer images than ranks repeat some (the one case)."""
    n = len(order)
    if world_size > 1 and not pad:
        order, n, world_size = order[rank::world_size], len(order[rank::world_size]), 1
    if world_size <= 1:
        end = n - n % batch_size if drop_last else n
        return [order[i:i + batch_size] for i in range(0, end, batch_size)]
    if 0 < n < world_size:
        order = order.repeat(-(-world_size // n))[:world_size]
        n = world_size
    bounds = _global_bounds(n, batch_size, world_size, drop_last)
    return [order[a:b][rank::world_size] for a, b in zip(bounds, bounds[1:])]


def rank_batch_count(n: int, batch_size: int, rank: int = 0, world_size: int = 1, *, pad: bool = True,
                     drop_last: bool = False) -> int:
    """``len(rank_batches(...))`` without building them."""
    if world_size > 1 and not pad:
        return batch_count(len(range(rank, n, world_size)), batch_size, drop_last)
    if world_size <= 1:
        return batch_count(n, batch_size, drop_last)
    return len(_global_bounds(max(n, world_size if n else 0), batch_size, world_size, drop_last)) - 1


class ResumableLoader:
    """What the in-memory loaders share: epoch-seeded order, rank sharding and a resumable position.

    ``state_dict()`` is the epoch and the number of batches already handed out in it;
    ``load_state_dict()`` makes the next iteration start after those batches without producing them.
    """

    def _init_position(self, n: int, batch_size: int, shuffle: bool, seed: int, drop_last: bool,
                       rank: int, world_size: int, pad: bool) -> None:
        self.n, self.batch_size, self.shuffle, self.drop_last = n, batch_size, shuffle, drop_last
        self.seed, self.rank, self.world_size, self.pad = seed, rank, world_size, pad
        self.epoch = 0
        self.position = 0  # batches handed out in the current epoch
        self._skip = 0
        self.weights: torch.Tensor | None = None  # balanced sampling (set by build_loader)

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order (and augmentation) the next iteration uses."""
        self.epoch = epoch

    def state_dict(self) -> dict:
        """Where the loader is: epoch and batches already handed out."""
        return {"epoch": int(self.epoch), "position": int(self.position)}

    def load_state_dict(self, state: dict) -> None:
        """Continue from *state*: the next iteration skips the batches already handed out."""
        self.epoch = int(state["epoch"])
        self._skip = int(state.get("position", 0))

    def __len__(self) -> int:
        return rank_batch_count(self.n, self.batch_size, self.rank, self.world_size, pad=self.pad,
                                drop_last=self.drop_last)

    def _batches(self) -> Iterator[tuple[int, torch.Tensor]]:
        """(batch number, indices) from the resume point on; counts what was handed out."""
        order = epoch_permutation(self.n, shuffle=self.shuffle, seed=self.seed, epoch=self.epoch, weights=self.weights)
        batches = rank_batches(order, self.batch_size, self.rank, self.world_size, pad=self.pad,
                               drop_last=self.drop_last)
        start, self._skip = self._skip, 0
        self.position = start
        for i in range(start, len(batches)):
            self.position = i + 1  # counted when handed out, as the loop's step count is
            yield i, batches[i]


class ShardBatchSampler(torch.utils.data.Sampler):
    """:func:`rank_batches` as a batch sampler for the DataLoader path, able to start after *skip* batches.

    *skip* holds until its owner clears it: torch's multi-process iterator calls ``iter()`` on the sampler twice
    when it starts (in ``__init__`` and in ``_reset``), so a sampler that cleared it on the first call would
    replay the skipped batches with loader workers."""

    def __init__(self, n: int, batch_size: int, shuffle: bool, seed: int = 0, rank: int = 0, world_size: int = 1,
                 pad: bool = True, drop_last: bool = False):
        self.n, self.batch_size, self.shuffle, self.seed = n, batch_size, shuffle, seed
        self.rank, self.world_size, self.pad, self.drop_last = rank, world_size, pad, drop_last
        self.epoch = 0
        self.skip = 0
        self.weights: torch.Tensor | None = None  # balanced sampling (set by build_loader)

    def __len__(self) -> int:
        return rank_batch_count(self.n, self.batch_size, self.rank, self.world_size, pad=self.pad,
                                drop_last=self.drop_last)

    def __iter__(self):
        order = epoch_permutation(self.n, shuffle=self.shuffle, seed=self.seed, epoch=self.epoch, weights=self.weights)
        batches = rank_batches(order, self.batch_size, self.rank, self.world_size, pad=self.pad,
                               drop_last=self.drop_last)
        # each index travels with its epoch: persistent workers hold a copy of the dataset made when they started
        return iter([[(self.epoch, i) for i in b.tolist()] for b in batches[self.skip:]])
