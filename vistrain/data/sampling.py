"""Which images each step sees: the epoch's order, its share per DDP rank, and a resumable position.

The order of an epoch is a pure function of (seed, epoch), with ``DistributedSampler`` semantics
under DDP, so a resumed run replays it exactly without saved generator state.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch


def batch_count(n: int, batch_size: int, drop_last: bool) -> int:
    """Batches in an epoch of *n* items."""
    return n // batch_size if drop_last else (n + batch_size - 1) // batch_size


def epoch_order(n: int, *, shuffle: bool, seed: int, epoch: int, rank: int = 0, world_size: int = 1,
                pad: bool = True) -> torch.Tensor:
    """The dataset indices one rank visits in one epoch, with ``DistributedSampler`` semantics.

    The order is a pure function of (seed, epoch), so a resumed run replays it exactly without any
    saved generator state. Every rank draws the same permutation, pads it by wrapping around until
    it divides by the world size, and takes every ``world_size``-th index from its rank. Without
    *pad* (evaluation, where a duplicate would count twice) the last shards are one shorter.
    """
    if shuffle:
        order = torch.randperm(n, generator=torch.Generator().manual_seed(int(seed) * 100_003 + int(epoch)))
    else:
        order = torch.arange(n)
    return shard(order, rank, world_size, pad)


def shard(order: torch.Tensor, rank: int, world_size: int, pad: bool = True) -> torch.Tensor:
    """*rank*'s share of an epoch's *order*, as :func:`epoch_order` takes it (the order itself when alone)."""
    n = len(order)
    if world_size <= 1 or not n:
        return order
    total = -(-n // world_size) * world_size if pad else n
    if total > n:
        order = torch.cat([order, order.repeat(-(-(total - n) // n))[: total - n]])
    return order[rank:total:world_size]


def shard_size(n: int, rank: int, world_size: int, pad: bool = True) -> int:
    """How many indices :func:`epoch_order` gives *rank*."""
    if world_size <= 1:
        return n
    return -(-n // world_size) if pad else len(range(rank, n, world_size))


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
        return batch_count(shard_size(self.n, self.rank, self.world_size, self.pad), self.batch_size, self.drop_last)

    def _order(self) -> torch.Tensor:
        return epoch_order(self.n, shuffle=self.shuffle, seed=self.seed, epoch=self.epoch, rank=self.rank,
                           world_size=self.world_size, pad=self.pad)

    def _batches(self) -> Iterator[tuple[int, torch.Tensor]]:
        """(batch number, indices) from the resume point on; counts what was handed out."""
        order = self._order()
        start, self._skip = self._skip, 0
        self.position = start
        for i in range(start, len(self)):
            self.position = i + 1  # counted when handed out, as the loop's step count is
            yield i, order[i * self.batch_size:(i + 1) * self.batch_size]

class ShardSampler(torch.utils.data.Sampler):
    """:func:`epoch_order` as a sampler for the DataLoader path, able to start after *skip* samples."""

    def __init__(self, n: int, shuffle: bool, seed: int = 0, rank: int = 0, world_size: int = 1, pad: bool = True):
        self.n, self.shuffle, self.seed, self.rank, self.world_size, self.pad = n, shuffle, seed, rank, world_size, pad
        self.epoch = 0
        self.skip = 0

    def __len__(self) -> int:
        return shard_size(self.n, self.rank, self.world_size, self.pad)

    def __iter__(self):
        order = epoch_order(self.n, shuffle=self.shuffle, seed=self.seed, epoch=self.epoch, rank=self.rank,
                            world_size=self.world_size, pad=self.pad)
        start, self.skip = self.skip, 0
        return iter(order[start:].tolist())
