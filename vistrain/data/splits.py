"""Deterministic, stratified splits: train/val, and labelled/unlabelled subsets."""

from __future__ import annotations

import numpy as np


def stratified_split(labels: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Split indices so each class gives ``fraction`` of its items to the second part.

    Returns (first, second), each sorted. The same labels and seed always give the same split.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    first, second = [], []
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        idx = idx[rng.permutation(len(idx))]
        n_second = int(round(len(idx) * fraction))
        if len(idx) > 1:
            n_second = min(max(n_second, 1), len(idx) - 1)
        else:
            n_second = 0
        second.append(idx[:n_second])
        first.append(idx[n_second:])
    return np.sort(np.concatenate(first)), np.sort(np.concatenate(second))


def labelled_subset(labels: np.ndarray, per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Pick ``per_class`` indices of every class as labelled; the rest form the unlabelled pool.

    Returns (labelled, unlabelled), each sorted. A class with fewer items keeps all of them.
    """
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed + 7919)
    chosen, rest = [], []
    for cls in np.unique(labels):
        idx = np.flatnonzero(labels == cls)
        idx = idx[rng.permutation(len(idx))]
        chosen.append(idx[:per_class])
        rest.append(idx[per_class:])
    return np.sort(np.concatenate(chosen)), np.sort(np.concatenate(rest))
