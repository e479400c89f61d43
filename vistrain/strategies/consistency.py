"""Consistency training on the stage toolkit: ``fixmatch`` (Sohn et al. 2020) and ``flexmatch`` (Zhang et al. 2021).

Each step sees B labelled images (the run's augmentation: the weak view) and μ·B unlabelled ones. The
unlabelled images arrive unaugmented; :class:`TwoViews` (the stage's batch transform, on the training
device) makes a weak view (the run's augmentation) and a strong one (the weak view's ops, then RandAugment
and Cutout) of each. One forward pass over [weak | strong | labelled] gives :class:`ConsistencyLoss`
everything: cross-entropy on the labels, plus λ × the cross-entropy of the strong view against the weak
view's argmax, for the images whose weak-view confidence passes a threshold (FixMatch: τ for every class;
FlexMatch: τ·M(β(c)), β(c) being class c's learning status, from the pseudo-labels each unlabelled image last
had above τ). The weights' EMA (0.999) is what is validated and kept, as in the paper.

The unlabelled images' targets are ``-(pool index + 1)``: negative, so the engine's top-1 leaves them out,
and the loss learns which pool images a batch holds (FlexMatch's per-image state; the statistics' true
labels) without their labels ever reaching the loss. Randomness: the loaders' own (seed, epoch) streams and,
for the views, one draw of torch's global generator per step, which checkpoints hold: resume is exact.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import nn

from vistrain.augment.pipeline import build_pipeline, extend_spec
from vistrain.augment.randaugment import UNIFORM_MSTD
from vistrain.data.balance import class_counts
from vistrain.data.device_loader import pixel_scale
from vistrain.data.pipeline import ImageTransform, InputSpec, MixedBatchLoader
from vistrain.data.sampling import rank_batch_count
from vistrain.data.source import TargetImageSet
from vistrain.engine import distributed as dist
from vistrain.errors import ConfigError, DataError
from vistrain.events import BatchEnd, ConsistencyStats, Event
from vistrain.strategies.base import RunContext
from vistrain.strategies.labelling import smoothing_cap, unlabelled_pool
from vistrain.strategies.params import StrategyParams
from vistrain.strategies.pseudo_label import train_student
from vistrain.strategies.stages import Stage, build_stage_model, eval_loader, plan_resume, run_stage, train_loader


class FixMatchParams(StrategyParams):
    """Parameters of ``fixmatch``; defaults are the paper's."""

    threshold: float = Field(0.95, gt=0.0, le=1.0, description="tau: a pseudo-label counts when the weak view's "
                                                               "confidence is at least this")
    mu: int = Field(7, ge=1, description="unlabelled images per labelled image in each batch")
    lambda_u: float = Field(1.0, ge=0.0, description="weight of the unlabelled loss")
    ema_decay: float | None = Field(None, ge=0.0, lt=1.0, description="EMA of the weights, validated and kept "
                                                                      "(default train.ema_decay, else 0.999; 0: off)")
    randaugment_n: int = Field(2, ge=0, description="RandAugment ops per image in the strong view")
    randaugment_m: int = Field(30, ge=0, le=30, description="their largest magnitude (of 30)")
    randaugment_sample: bool = Field(True, description="each op draws its magnitude uniformly from [0, m], as the "
                                                       "paper (false: always m)")
    cutout: float = Field(0.5, ge=0.0, le=1.0, description="Cutout square's largest side, a fraction of the image's "
                                                           "(0: no Cutout)")
    cutout_min: float = Field(0.0, ge=0.0, le=1.0, description="its smallest: each image draws the side from "
                                                               "[cutout_min, cutout], as the paper (= cutout: fixed)")
    strong_augment: str | None = Field(None, description="the strong view's full augmentation spec (default: the "
                                                         "weak view's, then rand-nN-mM and cutout)")
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0, description="label smoothing of the labelled term (not "
                                                                    "train.label_smoothing: a smoothed target caps "
                                                                    "confidence below tau)")
    selftrain: Literal["none", "pseudo-label"] = Field("none", description="then a self-training round: the best "
                                                                        "(EMA) model labels the pool, and a fresh "
                                                                        "model.name trains on the labels plus its "
                                                                        "pseudo-labels (pseudo-label's student)")
    selftrain_threshold: float = Field(0.9, ge=0.0, le=1.0, description="the round keeps pseudo-labels with "
                                                                        "confidence >= this")
    selftrain_epochs: int | None = Field(None, ge=1, description="the student's epochs (default: about as many "
                                                                 "optimizer steps as this strategy's stage took)")

    @model_validator(mode="after")
    def _cutout_range(self) -> FixMatchParams:
        if self.cutout_min > self.cutout:
            raise ValueError(f"cutout_min {self.cutout_min:g} is above cutout {self.cutout:g}: Cutout's side is drawn "
                             f"from [cutout_min, cutout]")
        return self


class FlexMatchParams(FixMatchParams):
    """Parameters of ``flexmatch``: FixMatch's, plus curriculum pseudo-labelling's."""

    warmup: bool = Field(True, description="threshold warm-up: unused images count as a class of their own")
    mapping: Literal["convex", "linear", "concave"] = Field("convex", description="M(x): x/(2-x), x, or log2(x+1)")


# --- FlexMatch's learning status ---------------------------------------------------------------


def mapped(beta: torch.Tensor, mapping: str) -> torch.Tensor:
    """FlexMatch's mapping function M: convex x/(2−x) (the paper's default), linear x, concave log2(x+1)."""
    if mapping == "convex":
        return beta / (2.0 - beta)
    if mapping == "concave":
        return torch.log2(beta + 1.0)
    return beta


def learning_status(selected: torch.Tensor, num_classes: int, warmup: bool) -> torch.Tensor:
    """β(c): σ(c) (unlabelled images whose latest above-τ pseudo-label is c) normalised by the largest σ, or,
    with the warm-up, by max(max σ, the number of images never above τ). All zeros while nothing was."""
    used = selected >= 0
    sigma = torch.bincount(selected[used], minlength=num_classes).to(torch.float64)
    denominator = sigma.max()
    if warmup:
        denominator = torch.maximum(denominator, (~used).sum().to(torch.float64))
    return sigma / denominator if float(denominator) > 0 else torch.zeros_like(sigma)


class FlexMatchState(nn.Module):
    """The pool's latest above-τ pseudo-labels (−1: never above τ); a buffer, so checkpoints hold it."""

    def __init__(self, pool_size: int, num_classes: int, *, threshold: float, warmup: bool, mapping: str):
        super().__init__()
        self.register_buffer("selected", torch.full((pool_size,), -1, dtype=torch.long))
        self.num_classes, self.threshold, self.warmup, self.mapping = num_classes, threshold, warmup, mapping

    def thresholds(self) -> torch.Tensor:
        """τ·M(β(c)) for every class."""
        return self.threshold * mapped(learning_status(self.selected, self.num_classes, self.warmup), self.mapping)

    def update(self, index: torch.Tensor, pseudo: torch.Tensor, over: torch.Tensor) -> None:
        """Record the pseudo-labels of the images above τ (every rank's, in rank order, under DDP)."""
        rows = dist.all_gather_rows(torch.stack([index, pseudo, over.long()], dim=1))
        keep = rows[:, 2] > 0
        self.selected[rows[keep, 0]] = rows[keep, 1]


# --- views and loss ------------------------------------------------------------------------------


class TwoViews:
    """Batch transform: [unlabelled (n) | labelled] → [weak view (n) | strong view (n) | labelled].

    The views are the run's tensor ops on the device when every op has a tensor form, else the per-image ops
    on the CPU; each step's parameters come from one draw of torch's global generator.
    """

    def __init__(self, unlabelled: int, weak, strong, spec: InputSpec, device: torch.device):
        self.n = unlabelled
        self.weak, self.strong = weak, strong
        self.weak_t = weak.on_tensors() if weak is not None else None
        self.strong_t = strong.on_tensors() if strong is not None else None
        self.mean, self.std = pixel_scale(spec.mean, spec.std, device)

    @staticmethod
    def _per_image(pipeline, raw: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        arr = raw.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
        out = np.stack([np.asarray(pipeline(img.copy(), rng)).reshape(img.shape) for img in arr]) if len(arr) else arr
        return torch.from_numpy(out).permute(0, 3, 1, 2).to(raw.device, torch.float32)

    def _view(self, pipeline, on_tensors, images: torch.Tensor, raw: torch.Tensor,
              rng: np.random.Generator) -> torch.Tensor:
        if pipeline is None:  # no ops: the images as they came
            return images
        out = on_tensors(raw, rng) if on_tensors is not None else self._per_image(pipeline, raw, rng)
        return ((out - self.mean) / self.std).to(images.dtype)

    def __call__(self, images: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        n = self.n
        unlabelled = images[:n]
        raw = unlabelled.float() * self.std + self.mean
        rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,))))
        weak = self._view(self.weak, self.weak_t, unlabelled, raw, rng)
        strong = self._view(self.strong, self.strong_t, unlabelled, raw, rng)
        codes = targets[:n]
        return torch.cat([weak, strong, images[n:]]), torch.cat([codes, codes, targets[n:]])


def pool_index(codes: torch.Tensor) -> torch.Tensor:
    """Pool indices from unlabelled targets ``-(index + 1)``."""
    return -codes - 1


# statistics accumulated between logging intervals, in one device tensor
_IMAGES, _MASKED, _LOSS, _CALLS, _KNOWN, _RIGHT, _KNOWN_MASKED, _RIGHT_MASKED = range(8)


class ConsistencyLoss:
    """``loss(logits, targets)`` over [weak (n) | strong (n) | labelled]: CE(labelled) + λ·mean(mask·CE(strong,
    argmax weak)). ``class_weight`` (``train.class_weights``) and *label_smoothing* apply to the labelled term.

    It also accumulates the pseudo-labels' statistics; :meth:`observe`, called with each event the stage emits,
    sends them as one :class:`~vistrain.events.ConsistencyStats` after every ``BatchEnd`` (the progress line's
    cadence; one device sync per interval)."""

    def __init__(self, unlabelled: int, num_classes: int, *, threshold: float, lambda_u: float,
                 label_smoothing: float = 0.0, truth: torch.Tensor | None = None, flex: FlexMatchState | None = None,
                 emit=None, class_names: list[str] | None = None):
        self.n, self.num_classes = unlabelled, num_classes
        self.threshold, self.lambda_u, self.label_smoothing = float(threshold), float(lambda_u), float(label_smoothing)
        self.truth = truth  # the pool's true labels (-1 unknown), for the statistics only
        self.flex = flex
        self.emit = emit
        self.class_names = list(class_names or [])
        self.class_weight: torch.Tensor | None = None
        self._sums: torch.Tensor | None = None
        self._accepted: torch.Tensor | None = None

    def class_thresholds(self, device: torch.device) -> torch.Tensor:
        """The threshold each class's pseudo-labels must reach now."""
        if self.flex is not None:
            return self.flex.thresholds().to(device)
        return torch.full((self.num_classes,), self.threshold, dtype=torch.float64, device=device)

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        n = self.n
        labelled, label = logits[2 * n:].float(), targets[2 * n:]
        supervised = (F.cross_entropy(labelled, label, weight=self.class_weight, label_smoothing=self.label_smoothing)
                      if len(label) else logits.new_zeros(()))
        with torch.no_grad():
            confidence, pseudo = torch.softmax(logits[:n].detach().float(), dim=1).max(dim=1)
            mask = confidence >= self.class_thresholds(logits.device)[pseudo]
            index = pool_index(targets[:n])
            if self.flex is not None:
                self.flex.update(index, pseudo, confidence >= self.threshold)
        per_image = F.cross_entropy(logits[n:2 * n].float(), pseudo, reduction="none")
        unsupervised = (per_image * mask.float()).mean() if n else logits.new_zeros(())
        self._accumulate(mask, pseudo, index, unsupervised.detach())
        return supervised + self.lambda_u * unsupervised

    def _accumulate(self, mask: torch.Tensor, pseudo: torch.Tensor, index: torch.Tensor, loss: torch.Tensor) -> None:
        device = mask.device
        if self._sums is None:
            self._sums = torch.zeros(8, dtype=torch.float64, device=device)
            self._accepted = torch.zeros(self.num_classes, dtype=torch.long, device=device)
        sums = self._sums
        sums[_IMAGES] += mask.numel()
        sums[_MASKED] += mask.sum()
        sums[_LOSS] += loss.double()
        sums[_CALLS] += 1
        if self.truth is not None:
            truth = self.truth.to(device)[index]
            known = truth >= 0
            right = (pseudo == truth) & known
            sums[_KNOWN] += known.sum()
            sums[_RIGHT] += right.sum()
            sums[_KNOWN_MASKED] += (known & mask).sum()
            sums[_RIGHT_MASKED] += (right & mask).sum()
        self._accepted += torch.bincount(pseudo[mask], minlength=self.num_classes)

    def observe(self, event: Event) -> None:
        """After a ``BatchEnd``: the interval's statistics as one ``ConsistencyStats`` (all ranks summed)."""
        if not isinstance(event, BatchEnd) or self._sums is None or self.emit is None:
            return
        packed = dist.all_reduce_sum_tensor(torch.cat([self._sums, self._accepted.double()]))
        values = packed.tolist()
        sums, accepted = values[:8], [int(v) for v in values[8:]]
        self._sums.zero_()
        self._accepted.zero_()
        images = max(1.0, sums[_IMAGES])
        self.emit(ConsistencyStats(
            stage=event.stage, epoch=event.epoch, global_step=event.global_step, images=int(sums[_IMAGES]),
            mask_rate=sums[_MASKED] / images, unlabelled_loss=sums[_LOSS] / max(1.0, sums[_CALLS]),
            threshold=self.threshold,
            accuracy=sums[_RIGHT_MASKED] / sums[_KNOWN_MASKED] if sums[_KNOWN_MASKED] else None,
            accuracy_all=sums[_RIGHT] / sums[_KNOWN] if sums[_KNOWN] else None,
            class_thresholds=[float(t) for t in self.class_thresholds(self._sums.device).tolist()],
            class_accepted=accepted, class_names=self.class_names))


# --- the strategies ------------------------------------------------------------------------------


def strong_spec(ctx: RunContext, p: FixMatchParams) -> str:
    """The strong view's augmentation: ``strong_augment``, or the weak view's spec, RandAugment (N ops, magnitudes
    drawn from [0, M] or M), Cutout (side drawn from [cutout_min, cutout] or fixed)."""
    if p.strong_augment is not None:
        return p.strong_augment
    rand = f"rand-n{p.randaugment_n}-m{p.randaugment_m}" + (f"-mstd{UNIFORM_MSTD + 1:g}" if p.randaugment_sample else "")
    cutout = f"cutout-frac{p.cutout:g}" + (f"-fmin{p.cutout_min:g}" if p.cutout_min < p.cutout else "")
    return extend_spec(ctx.config.augment.spec, [
        rand if p.randaugment_n > 0 else "", cutout if p.cutout > 0 else ""], owner=ctx.config.strategy.name,
        adds="RandAugment and Cutout", key="strategy.params.strong_augment")


def check_smoothing(ctx: RunContext, p: FixMatchParams, num_classes: int) -> None:
    """A labelled term smoothed to a cap below τ trains the model never to reach τ: few pseudo-labels pass."""
    name = ctx.config.strategy.name
    cap = smoothing_cap(p.label_smoothing, num_classes)
    if cap < p.threshold:
        raise ConfigError(f"{name}: label_smoothing {p.label_smoothing:g} caps the labelled target at {cap:.3f} "
                          f"({num_classes} classes), below the threshold tau {p.threshold:g}",
                          hint="lower strategy.params.label_smoothing (0 is the paper's) or strategy.params.threshold")
    if ctx.config.train.label_smoothing > 0:
        ctx.log(f"{name}: train.label_smoothing {ctx.config.train.label_smoothing:g} is not applied (a smoothed "
                f"target caps confidence at {smoothing_cap(ctx.config.train.label_smoothing, num_classes):.3f}, "
                f"against tau {p.threshold:g}); the labelled term uses strategy.params.label_smoothing "
                f"{p.label_smoothing:g}")


def check_labelled(ctx: RunContext) -> None:
    """Every class needs a labelled image: a class without one could only ever be pseudo-labelled by chance."""
    classes = ctx.data.classes
    counts = class_counts(ctx.data.train.labels, len(classes))
    empty = [classes[c] for c in np.flatnonzero(counts == 0)]
    if empty:
        names = ", ".join(map(repr, empty[:5])) + (f" (+{len(empty) - 5} more)" if len(empty) > 5 else "")
        raise DataError(f"strategy {ctx.config.strategy.name!r}: the labelled training split has no image of "
                        f"class {names}", hint="label at least one image of every class (e.g. --labels-per-class 4), "
                                               "or leave the class out of the dataset")


def run_consistency(ctx: RunContext, *, flex: bool) -> dict[str, Any]:
    """One stage of FixMatch (or, *flex*, FlexMatch) on the labelled split and the unlabelled pool."""
    p: FixMatchParams = ctx.params
    cfg = ctx.config
    name = cfg.strategy.name
    pool = unlabelled_pool(ctx)
    check_labelled(ctx)
    num_classes = len(ctx.data.classes)
    check_smoothing(ctx, p, num_classes)
    selftrain = p.selftrain != "none"
    names = [name] + (["student"] if selftrain else [])
    plan_resume(ctx, names)
    model, spec, input_spec = build_stage_model(ctx, cfg.model)

    batch = cfg.data.batch_size
    unlabelled = p.mu * batch
    world = ctx.dist.world_size
    if len(pool) < unlabelled * world:
        raise ConfigError(f"{name}: the unlabelled pool has {len(pool)} images, fewer than one step's "
                          f"mu x batch = {p.mu} x {batch}{f' x {world} processes' if world > 1 else ''}",
                          hint="lower strategy.params.mu or data.batch_size, or add unlabelled images")
    weak, batch_aug = ctx.augmentation if ctx.augmentation is not None else (None, None)
    if batch_aug is not None:
        ctx.log(f"{name}: CutMix/MixUp of augment.spec are not used; the views are the per-image ops", "warning")
    strong = build_pipeline(strong_spec(ctx, p))
    # the pool's images, unaugmented, with targets -(index + 1); the views are made on the device
    coded = TargetImageSet(pool, -(np.arange(len(pool), dtype=np.int64) + 1))
    pool_loader = train_loader(ctx, coded, ImageTransform(input_spec), unlabelled, 1, drop_last=True, balanced=False)
    labelled = train_loader(ctx, ctx.data.train, ImageTransform(input_spec, weak), batch)
    loader = MixedBatchLoader(pool_loader, labelled, num_classes)

    truth = np.asarray(getattr(pool, "labels", np.full(len(pool), -1)), dtype=np.int64)
    state = (FlexMatchState(len(pool), num_classes, threshold=p.threshold, warmup=p.warmup, mapping=p.mapping)
             .to(ctx.device) if flex else None)
    loss = ConsistencyLoss(unlabelled, num_classes, threshold=p.threshold, lambda_u=p.lambda_u,
                           label_smoothing=p.label_smoothing,
                           truth=torch.from_numpy(truth).to(ctx.device) if (truth >= 0).any() else None,
                           flex=state, emit=ctx.emit, class_names=list(ctx.data.classes))
    ema = p.ema_decay if p.ema_decay is not None else (cfg.train.ema_decay or 0.999)
    views = TwoViews(unlabelled, weak, strong, input_spec, ctx.device)
    result = run_stage(ctx, Stage(
        name, model, spec, input_spec, epochs=cfg.train.epochs, loss=loss, label_smoothing=0.0,
        loaders=(loader, eval_loader(ctx, ctx.data.val, input_spec, sharded=True)), batch_transform=views,
        observer=loss.observe, ema_decay=ema, extra_modules={"flexmatch": state} if state is not None else {},
        prefix=f"{name}-" if selftrain else "", final=not selftrain, total=len(names),
        description=f"{name}: {cfg.model.name} on {len(ctx.data.train)} labelled + {len(pool)} unlabelled images "
                    f"({batch} + {p.mu} x {batch} per step, tau {p.threshold:g})"))
    if not selftrain:
        return result.metrics
    return self_training_round(ctx, p, model.eval(), input_spec, pool, result,
                               steps=cfg.train.epochs * -(-len(loader) // cfg.train.accum_steps))


def student_epochs(ctx: RunContext, steps: int, images: int) -> int:
    """Whole epochs over *images* (the student's training set) that come nearest to *steps* optimizer steps, at the
    run's batch size, process count and gradient accumulation."""
    cfg = ctx.config
    batches = rank_batch_count(images, cfg.data.batch_size, ctx.dist.rank, ctx.dist.world_size)  # the train loader's
    per_epoch = -(-batches // cfg.train.accum_steps)
    return max(1, round(steps / per_epoch))


def self_training_round(ctx: RunContext, p: FixMatchParams, teacher: nn.Module, teacher_input: InputSpec, pool,
                        result, *, steps: int) -> dict[str, Any]:
    """``selftrain: pseudo-label``: the stage's best (EMA) model labels the pool and pseudo-label's student trains
    on the labels plus the accepted pseudo-labels: the two-command recipe of docs/strategies.md in one run."""
    name = ctx.config.strategy.name

    def epochs(images: int) -> int:
        if p.selftrain_epochs is not None:
            return p.selftrain_epochs
        chosen = student_epochs(ctx, steps, images)
        ctx.log(f"{name}: the self-training student trains {chosen} epochs over {images} images, about the "
                f"{steps} optimizer steps of stage {name} (strategy.params.selftrain_epochs sets them)")
        return chosen

    student, labels = train_student(ctx, teacher, teacher_input, pool, threshold=p.selftrain_threshold, soft=False,
                                    balance=False, epochs=epochs, index=2, total=2,
                                    key="strategy.params.selftrain_threshold")
    return {**student.metrics, f"{name}_val_top1": result.metrics["best_val_top1"],
            "pseudo_label_accuracy": labels.stats.accuracy or 0.0,
            "pseudo_label_acceptance": labels.stats.acceptance_rate}


def run_fixmatch(ctx: RunContext) -> dict[str, Any]:
    """FixMatch: a fixed confidence threshold τ for every class."""
    return run_consistency(ctx, flex=False)


def run_flexmatch(ctx: RunContext) -> dict[str, Any]:
    """FlexMatch: class-wise thresholds τ·M(β(c)) from each class's learning status."""
    return run_consistency(ctx, flex=True)

