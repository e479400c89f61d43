"""Epoch order, DDP shards and resumable loader positions, for every training loader kind."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vistrain.augment import build_augmentation
from vistrain.config import AugmentConfig
from vistrain.data.pipeline import ImageTransform, InputSpec, build_loader
from vistrain.data.sampling import epoch_permutation, rank_batch_count, rank_batches
from vistrain.data.source import ArrayImageSet

SPEC = InputSpec(1, 12, (0.5,), (0.25,))


def images(n: int = 50) -> ArrayImageSet:
    rng = np.random.default_rng(0)
    return ArrayImageSet(rng.integers(0, 255, (n, 12, 12, 1), dtype=np.uint8), np.arange(n) % 3)


@pytest.mark.parametrize("n, batch, world", [(50, 8, 2), (49, 8, 3), (7, 2, 4), (33, 8, 2), (65, 8, 4), (3, 4, 4),
                                             (1024, 32, 2), (1259, 32, 2)])
def test_ranks_see_every_image_exactly_once_in_the_same_number_of_steps(n, batch, world):
    order = epoch_permutation(n, shuffle=True, seed=3, epoch=2)
    per_rank = [rank_batches(order, batch, r, world) for r in range(world)]
    steps = {len(b) for b in per_rank}
    assert steps == {rank_batch_count(n, batch, 0, world)}  # every rank takes the same number of steps
    seen = torch.cat([torch.cat(b) for b in per_rank]).tolist()
    if n >= world:
        assert sorted(seen) == list(range(n))  # every image exactly once
    else:  # fewer images than ranks: the one case that repeats images, each rank gets one
        assert set(seen) == set(range(n)) and len(seen) == world
    for i in range(len(per_rank[0]) - 1):  # full steps: DistributedSampler's interleaving of one global batch
        step = torch.stack([b[i] for b in per_rank], 1).flatten()
        assert torch.equal(step, order[i * batch * world:(i + 1) * batch * world])
    assert max(len(b) for r in per_rank for b in r) <= batch + 1


def test_evaluation_shards_take_every_world_th_image():
    order = epoch_permutation(10, shuffle=False, seed=0, epoch=0)
    shards = [rank_batches(order, 3, r, 3, pad=False) for r in range(3)]
    assert [torch.cat(s).tolist() for s in shards] == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]
    assert [len(s) for s in shards] == [rank_batch_count(10, 3, r, 3, pad=False) for r in range(3)] == [2, 1, 1]
    assert not torch.equal(epoch_permutation(50, shuffle=True, seed=3, epoch=2),
                           epoch_permutation(50, shuffle=True, seed=3, epoch=3))


LOADERS = {
    "tensor": dict(augment="none", num_workers=0),
    "augmented-array": dict(augment="rotate-deg10", num_workers=0, device_augment=False),
    "dataloader": dict(augment="none", num_workers=0, in_memory=False),
    "device-augment": dict(augment="rotate-deg10", num_workers="auto", device_augment=True),
}


@pytest.mark.parametrize("kind", list(LOADERS))
def test_a_loader_resumed_mid_epoch_yields_the_rest_of_the_epoch_exactly(kind):
    opts = dict(LOADERS[kind])
    aug, _ = build_augmentation(AugmentConfig(spec=opts.pop("augment")))
    data = images()
    if not opts.pop("in_memory", True):  # no as_array: the DataLoader path
        data.as_array = lambda: None

    def make():
        return build_loader(data, ImageTransform(SPEC, aug), 8, shuffle=True, seed=5, **opts)

    whole = make()
    whole.set_epoch(3)
    expected = list(whole)
    first = make()
    first.set_epoch(3)
    it = iter(first)
    for _ in range(3):
        next(it)
    state = first.state_dict()
    resumed = make()
    resumed.set_epoch(3)
    resumed.load_state_dict(state)
    rest = list(resumed)
    assert len(rest) == len(expected) - 3
    for (x, y), (ex, ey) in zip(rest, expected[3:]):
        assert torch.equal(x, ex) and torch.equal(y, ey)
