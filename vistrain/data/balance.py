"""Class imbalance: the training set's class counts, a class-balanced sampling order, and loss weights per class.

``data.sampler: balanced`` draws each epoch's images with replacement, every image with probability
proportional to 1 / (images of its class), so every class is drawn equally often on average (PyTorch's
``WeightedRandomSampler``; an epoch keeps the length of the training set). The draw is a pure function of
(seed, epoch), as the shuffled order is, so exact resume and DDP sharding work unchanged.

``train.class_weights`` weights the cross-entropy of each class:

- ``inverse`` (``auto``): n / (K · n_c), scikit-learn's ``class_weight="balanced"``: the weighted number of
  images of every class is the same, and a balanced training set gets weights of 1;
- ``effective``: (1 − β) / (1 − β^n_c) (Cui et al. 2019, "Class-Balanced Loss Based on Effective Number of
  Samples"), normalised to sum to K; β → 0 gives no weighting, β → 1 the inverse frequency.

Soft targets (pseudo-labels) count towards their most probable class. A class without images gets the
largest weight of the others (it cannot be weighted by a frequency of zero).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from vistrain.errors import ConfigError

CLASS_WEIGHT_MODES = ("none", "auto", "inverse", "effective")


def hard_labels(targets) -> np.ndarray:
    """Class indices of *targets*: int labels as they are, probability rows by their arg-max."""
    targets = np.asarray(targets)
    return targets.argmax(axis=1) if targets.ndim == 2 else targets.astype(np.int64)


def class_counts(targets, num_classes: int) -> np.ndarray:
    """Images per class (int64, length *num_classes*)."""
    return np.bincount(hard_labels(targets), minlength=num_classes)[:num_classes].astype(np.int64)


def balanced_sample_weights(targets, num_classes: int) -> torch.Tensor:
    """Per image: 1 / (images of its class), the sampling weights that draw every class equally often."""
    labels = hard_labels(targets)
    counts = class_counts(labels, num_classes)
    return torch.from_numpy(1.0 / np.maximum(counts[labels], 1)).double()


def imbalance_ratio(counts: Sequence[int]) -> float:
    """Images of the largest class over images of the smallest non-empty one (1.0 when balanced)."""
    present = [int(c) for c in counts if c > 0]
    return max(present) / min(present) if present else 1.0


def class_weights(counts: Sequence[int], mode: str | Sequence[float], beta: float = 0.999) -> torch.Tensor | None:
    """The loss weight of every class for *mode* (see the module); None for ``none``. A list of numbers is
    taken as the weights themselves (one per class)."""
    counts = np.asarray(counts, dtype=np.float64)
    k = len(counts)
    if not isinstance(mode, str):
        weights = np.asarray(list(mode), dtype=np.float64)
        if len(weights) != k:
            raise ConfigError(f"train.class_weights has {len(weights)} numbers but the dataset has {k} classes",
                              hint="give one weight per class, in the order 'vistrain datasets show' lists them, or use auto")
        if (weights < 0).any() or not np.isfinite(weights).all() or weights.sum() <= 0:
            raise ConfigError("train.class_weights must be finite, non-negative and not all zero",
                              hint="e.g. --set 'train.class_weights=[1, 1, 5]', or auto")
        return torch.from_numpy(weights).float()
    if mode == "none":
        return None
    if mode not in CLASS_WEIGHT_MODES:
        raise ConfigError(f"unknown train.class_weights {mode!r}",
                          hint=f"use one of {', '.join(CLASS_WEIGHT_MODES)}, or a list of one weight per class")
    present = counts > 0
    if not present.any():
        raise ConfigError("train.class_weights needs labelled training images", hint="check the dataset")
    if mode in ("auto", "inverse"):
        weights = np.zeros(k)
        weights[present] = counts.sum() / (present.sum() * counts[present])
    else:
        if not 0.0 <= beta < 1.0:
            raise ConfigError(f"train.class_weights_beta must be in [0, 1), got {beta:g}", hint="e.g. 0.999 or 0.9999")
        weights = np.zeros(k)
        weights[present] = (1.0 - beta) / (1.0 - np.power(beta, counts[present]))
        weights *= present.sum() / weights.sum()
    weights[~present] = weights[present].max()
    return torch.from_numpy(weights).float()


def balance_line(counts: Sequence[int], classes: Sequence[str], sampler: str, weights_mode) -> str | None:
    """The run's log line about class balance: what is done about an imbalanced training split, or a hint when
    nothing is (None when the split is balanced within a factor of 1.5 and nothing is asked for)."""
    ratio = imbalance_ratio(counts)
    asked = [f"data.sampler={sampler}"] if sampler != "shuffle" else []
    if not (isinstance(weights_mode, str) and weights_mode == "none"):
        asked.append(f"train.class_weights={weights_mode if isinstance(weights_mode, str) else 'list'}")
    if ratio < 1.5 and not asked:
        return None
    present = [(int(c), name) for c, name in zip(counts, classes) if c > 0]
    (big, big_name), (small, small_name) = max(present), min(present)
    shape = (f"the training split's classes range from {small} images ({small_name}) to {big} ({big_name}), "
             f"{ratio:.1f}x")
    if len(asked) == 2:
        return (f"{shape}; balancing with {' and '.join(asked)}: both correct the same imbalance, so the rare "
                f"classes count about twice over (usually one of the two is enough)")
    if asked:
        return f"{shape}; balancing with {asked[0]}"
    return (f"{shape}: data.sampler=balanced or train.class_weights=auto can help the rare classes; balanced "
            f"top-1 and macro-F1 (in eval and the report) weigh every class the same")
