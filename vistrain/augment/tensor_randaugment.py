"""RandAugment on a batch: each image draws its own N ops and magnitudes, as the per-image version does.

At each of the N positions the images are grouped by the (op, magnitude) they drew, and each group goes
through that op's batch function (:mod:`vistrain.augment.tensor_ops`) at once, so a step costs a few
tensor calls per op of the pool instead of a Python loop over images. There is a batch form only when
every op of the pool has one; a pool holding a plugin op without one stays on the per-image path.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from vistrain.augment.randaugment import RandAugment

BatchFn = Callable[[torch.Tensor, np.random.Generator], torch.Tensor]
OpToBatch = Callable[[object], BatchFn | None]  # :func:`vistrain.augment.tensor_ops.batch_fn`, passed in


class BatchRandAugment:
    """``fn(batch, rng)`` form of a :class:`RandAugment`: per-image random choices, applied op by op to groups."""

    def __init__(self, ra: RandAugment, batch_fn: OpToBatch):
        self.ra, self.batch_fn = ra, batch_fn
        self._active = set(ra.active())
        self._fns: dict[tuple[int, float], BatchFn] = {}

    def _fn(self, i: int, magnitude: float) -> BatchFn:
        key = (i, magnitude)
        fn = self._fns.get(key)
        if fn is None:
            fn = self._fns[key] = self.batch_fn(self.ra.pool_op(i, magnitude))
        return fn

    def draw(self, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(n, N) pool indices drawn uniformly with replacement, and their magnitudes (M, or M plus
        Gaussian noise of ``mstd``, or uniform in [0, M] for ``mstd`` above 100, rounded to one of the 31 bins,
        as the per-image version draws)."""
        picks = rng.integers(0, len(self.ra.ops), (n, self.ra.n))
        return picks, self.ra.magnitudes(rng, picks.shape)

    def apply(self, x: torch.Tensor, picks: np.ndarray, magnitudes: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        """Apply the drawn ops position by position; an image that drew a left-out op keeps that position's input."""
        for pos in range(picks.shape[1]):
            groups, which = np.unique(np.stack([picks[:, pos], magnitudes[:, pos]], axis=1), axis=0, return_inverse=True)
            which = which.reshape(-1)
            if len(groups) == 1 and int(groups[0, 0]) in self._active:
                x = self._fn(int(groups[0, 0]), float(groups[0, 1]))(x, rng)
                continue
            out = x.clone()
            for g, (i, magnitude) in enumerate(groups):
                if int(i) not in self._active:
                    continue
                idx = torch.from_numpy(np.flatnonzero(which == g)).to(x.device)
                out.index_copy_(0, idx, self._fn(int(i), float(magnitude))(x.index_select(0, idx), rng))
            x = out
        return x

    def __call__(self, x: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        """Augment a float NCHW batch of 0..255 values; every random choice comes from *rng*."""
        return self.apply(x, *self.draw(x.shape[0], rng), rng)

    def __repr__(self) -> str:
        return f"BatchRandAugment({self.ra!r})"


def tensor_randaugment(ra: RandAugment, batch_fn: OpToBatch) -> BatchRandAugment | None:
    """The batch form of *ra*, or None when *batch_fn* finds no tensor form for an op of its pool (a plugin op, say)."""
    if any(batch_fn(ra.pool_op(i, ra.probe_magnitude)) is None for i in ra.active()):
        return None
    return BatchRandAugment(ra, batch_fn)
