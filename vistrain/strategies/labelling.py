"""Pseudo-labels: a teacher's predictions on the unlabelled pool, filtered, class-balanced and reported.

Used by ``pseudo-label`` and ``noisy-student``; every labelling round emits one
:class:`~vistrain.events.PseudoLabelStats` (the dashboard panel, the console line and ``events.jsonl``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from vistrain.data.pipeline import InputSpec
from vistrain.data.source import ImageSet, TargetImageSet
from vistrain.engine.loop import predict_logits
from vistrain.errors import ConfigError, DataError
from vistrain.events import PseudoLabelStats
from vistrain.strategies.base import RunContext
from vistrain.strategies.stages import eval_loader

HIST_BINS = 20


def unlabelled_pool(ctx) -> ImageSet:
    """The run's unlabelled images; a one-line error when the data has none."""
    pool = ctx.data.unlabeled
    if pool is None or len(pool) == 0:
        raise DataError(f"strategy {ctx.config.strategy.name!r} needs unlabelled images, and dataset "
                        f"{ctx.config.data.name!r} has none",
                        hint="point it at a folder of them with --set data.unlabelled=images:DIR, or hold labels back "
                             "with --labels-per-class N (e.g. 50)")
    return pool


def smoothing_cap(smoothing: float, num_classes: int) -> float:
    """The largest probability a label-smoothed target asks of a class: 1 − ε + ε/K."""
    return 1.0 - smoothing + smoothing / num_classes


# a threshold this close below a smoothed teacher's cap passes few images: the teacher must be all but certain
CAP_MARGIN = 0.005


def check_confidence_cap(ctx, threshold: float, key: str = "strategy.params.threshold") -> None:
    """Pre-flight, for teachers trained in this run: with ``train.label_smoothing`` ε their targets ask at most
    1 − ε + ε/K of a class, so their confidence stays at or below that cap. A threshold above the cap is an error
    before any training (nearly nothing would pass, found only once the teacher has trained); one within
    :data:`CAP_MARGIN` below it is a warning (the default 0.9 under ε 0.1 with 100 classes or more: caps of 0.901
    and less)."""
    smoothing = ctx.config.train.label_smoothing
    if not smoothing:
        return
    classes = len(ctx.data.classes)
    cap = smoothing_cap(smoothing, classes)
    said = (f"train.label_smoothing {smoothing:g} caps the teachers' targets at {cap:.4f} ({classes} classes), "
            f"{'below' if threshold > cap else 'just above'} {key} {threshold:g}")
    fix = f"lower {key} (e.g. to {max(0.0, np.floor((cap - 0.05) * 20) / 20):.2f}) or train.label_smoothing (e.g. 0)"
    if threshold > cap:
        raise ConfigError(said, hint=fix)
    if threshold > cap - CAP_MARGIN:
        ctx.log(f"{said}: few pseudo-labels will pass ({fix})", "warning")


@dataclass
class PseudoLabels:
    """One round's result: the training set and the statistics."""

    images: TargetImageSet
    stats: PseudoLabelStats
    hard: np.ndarray  # the teacher's argmax over the whole pool (for the next round's flip rate)


def select_confident(probs: np.ndarray, threshold: float) -> np.ndarray:
    """Indices of the pool whose top probability is at least *threshold*."""
    return np.flatnonzero(probs.max(axis=1) >= threshold) if len(probs) else np.zeros(0, np.int64)


def balance_classes(indices: np.ndarray, probs: np.ndarray, num_classes: int, target: int | None = None) -> np.ndarray:
    """Noisy Student's class balancing: per class keep the *target* most confident, duplicating rare classes.

    *target* defaults to the mean accepted count per class (rounded up). A class with no accepted
    image stays empty. Returns indices into the pool (with repeats), grouped by class.
    """
    hard = probs[indices].argmax(axis=1)
    conf = probs[indices].max(axis=1)
    if target is None:
        target = int(np.ceil(len(indices) / num_classes)) if len(indices) else 0
    out = []
    for c in range(num_classes):
        mine = indices[hard == c]
        if len(mine) == 0 or target == 0:
            continue
        mine = mine[np.argsort(-conf[hard == c], kind="stable")]
        if len(mine) >= target:
            out.append(mine[:target])
        else:  # duplicate: whole copies, then the most confident for the remainder
            reps, rest = divmod(target, len(mine))
            out.append(np.concatenate([np.tile(mine, reps), mine[:rest]]))
    return np.concatenate(out).astype(np.int64) if out else np.zeros(0, np.int64)


def label_round(ctx, round_: int, pool: ImageSet, probs: np.ndarray, *, threshold: float, soft: bool,
                balance: bool, balance_target: int | None = None, previous: np.ndarray | None = None,
                key: str = "strategy.params.threshold") -> PseudoLabels:
    """Filter and (optionally) balance a teacher's *probs* over *pool*, emit the round's statistics; *key* is the
    setting that holds *threshold* (the error's hint names it)."""
    num_classes = probs.shape[1]
    accepted = select_confident(probs, threshold)
    conf = probs.max(axis=1)
    if len(accepted) == 0:
        best = float(conf.max()) if len(conf) else 0.0
        raise ConfigError(f"pseudo-label threshold {threshold:g} accepted none of {len(pool)} unlabelled images "
                          f"(the teacher's highest confidence is {best:.3f})",
                          hint=f"lower {key}, e.g. to {max(0.0, np.floor(best * 20) / 20 - 0.05):.2f}")
    chosen = balance_classes(accepted, probs, num_classes, balance_target) if balance else accepted
    hard = probs.argmax(axis=1)
    targets = probs[chosen] if soft else hard[chosen]
    images = TargetImageSet(pool.subset(chosen), targets)
    truth = np.asarray(pool.labels)[accepted]
    known = truth >= 0
    stats = PseudoLabelStats(
        round=round_,
        counts_before=np.bincount(hard[accepted], minlength=num_classes).tolist(),
        counts_after=np.bincount(hard[chosen], minlength=num_classes).tolist(),
        confidence_hist=np.histogram(conf, bins=HIST_BINS, range=(0.0, 1.0))[0].tolist(),
        threshold=float(threshold),
        acceptance_rate=len(accepted) / len(pool),
        mean_confidence=float(conf[accepted].mean()),
        flip_rate=None if previous is None else float((previous != hard).mean()),
        accuracy=float((hard[accepted][known] == truth[known]).mean()) if known.any() else None,
        class_names=list(ctx.data.classes),
    )
    ctx.emit(stats)
    return PseudoLabels(images, stats, hard)


def predict_probs(ctx: RunContext, model: nn.Module, input_spec: InputSpec, images: ImageSet) -> np.ndarray:
    """Softmax of *model* over *images* (eval mode, no augmentation) as an (N, classes) float32 array."""
    logits, _ = predict_logits(model, eval_loader(ctx, images, input_spec), device=ctx.device,
                               amp_dtype=ctx.amp_dtype)
    # a teacher from a calibrated checkpoint (vistrain calibrate) labels with its fitted temperature
    t = float(getattr(model, "vistrain_temperature", 1.0))
    return torch.softmax(logits.float() / t, dim=1).numpy().astype(np.float32) if len(logits) else np.zeros(
        (0, len(ctx.data.classes)), np.float32)


def targets_hash(targets: np.ndarray) -> str:
    """A short hash of a pseudo-label set (stored with checkpoints to notice a changed set on resume)."""
    arr = np.ascontiguousarray(np.round(np.asarray(targets, dtype=np.float64), 4))
    return hashlib.sha256(arr.tobytes() + str(arr.shape).encode()).hexdigest()[:16]
