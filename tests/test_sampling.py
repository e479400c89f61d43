"""Epoch order, DDP shards and resumable loader positions, for every training loader kind."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vistrain.augment import build_augmentation
from vistrain.config import AugmentConfig
from vistrain.data.pipeline import ImageTransform, InputSpec, build_loader
from vistrain.data.sampling import epoch_order
from vistrain.data.source import ArrayImageSet

SPEC = InputSpec(1, 12, (0.5,), (0.25,))


def images(n: int = 50) -> ArrayImageSet:
    rng = np.random.default_rng(0)
    return ArrayImageSet(rng.integers(0, 255, (n, 12, 12, 1), dtype=np.uint8), np.arange(n) % 3)


@pytest.mark.parametrize("n, world", [(50, 2), (49, 3), (7, 4)])
def test_shards_cover_the_epoch_like_distributed_sampler(n, world):
    full = epoch_order(n, shuffle=True, seed=3, epoch=2)
    shards = [epoch_order(n, shuffle=True, seed=3, epoch=2, rank=r, world_size=world) for r in range(world)]
    assert len({len(s) for s in shards}) == 1  # equal lengths: every rank takes the same number of steps
    assert set(torch.cat(shards).tolist()) == set(full.tolist())
    interleaved = torch.stack(shards, 1).flatten()[:n]
    assert torch.equal(interleaved, full)  # rank r takes every world-th index from r
    unpadded = [epoch_order(n, shuffle=False, seed=0, epoch=0, rank=r, world_size=world, pad=False) for r in range(world)]
    assert sorted(torch.cat(unpadded).tolist()) == list(range(n))  # evaluation: each image exactly once
    assert not torch.equal(full, epoch_order(n, shuffle=True, seed=3, epoch=3))


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
