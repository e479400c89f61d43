"""The stage toolkit strategies compose: describe a :class:`Stage`, then :func:`run_stage` trains it.

A stage is one model trained once: its model spec and input spec, its own augmentation, its
training set (labelled, pseudo-labelled with hard or soft targets, optionally mixed per batch
with a second set), a loss that can see the batch, parameter groups with their own learning
rates, and a checkpoint prefix. :func:`run_stage` builds the loaders, optimizer, scheduler and
checkpoint writer and calls the engine's :func:`~vistrain.engine.loop.fit`; it never copies the
loop. Built-in strategies and plugins use the same functions::

    from vistrain.strategies.stages import Stage, build_stage_model, run_stage

    def run_mine(ctx):
        model, spec, input_spec = build_stage_model(ctx, ctx.config.model)
        result = run_stage(ctx, Stage("mine", model, spec, input_spec, epochs=ctx.config.train.epochs))
        return result.metrics

Resume: the checkpoint writer stores the stage name and ``Stage.state`` (round, pseudo-label
hash...) in every checkpoint. :func:`plan_resume` marks the stages a resumed run had already
finished, :func:`run_stage` then loads their ``best.pt`` instead of training them, and
:func:`restore_stage_state` is the one place that puts a checkpoint back into a stage.
"""

from __future__ import annotations

import copy
import functools

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vistrain.augment import build_augmentation
from vistrain.config import AugmentConfig, OptimConfig
from vistrain.data.balance import balanced_sample_weights, class_counts, class_weights
from vistrain.data.pipeline import ImageTransform, InputSpec, MixedBatchLoader, build_loader, close_loaders
from vistrain.data.source import ConcatImageSet, ImageSet
from vistrain import checkpoint
from vistrain.checkpoint import load_checkpoint
from vistrain.engine import distributed as dist
from vistrain.engine.control import StopRequested
from vistrain.engine.device import grad_scaler, prepare_model
from vistrain.engine.ema import WeightEma
from vistrain.engine.loop import StepCheckpoints, TrainState, fit, soft_cross_entropy
from vistrain.engine.resume import restore_training, saved_state
from vistrain.errors import CheckpointError
from vistrain.durable import atomic_torch_save
from vistrain.events import CheckpointSaved, StageStarted
from vistrain.models.factory import create_model, upscale_warning
from vistrain.plugins import registry
from vistrain.strategies.base import CheckpointWriter, RunContext

# (logits, targets) -> loss, or (logits, targets, images) -> loss when the callable has ``sees_images = True``
StageLoss = Callable[..., torch.Tensor]


@dataclass
class Stage:
    """One model trained once. Defaults come from the run's config; every field can be overridden."""

    name: str  # e.g. "teacher", "student2"; recorded in checkpoints
    model: nn.Module
    model_spec: dict
    input_spec: InputSpec
    epochs: int
    train_set: ImageSet | None = None  # default: the labelled training split
    augment: AugmentConfig | None = None  # default: ``config.augment``; AugmentConfig(spec="none") for none
    loss: StageLoss | None = None  # default: cross-entropy (hard or soft targets)
    label_smoothing: float | None = None  # default: ``train.label_smoothing``; applied to the targets any loss sees
    param_groups: list[dict] | None = None  # groups may carry ``lr_mult`` (× optim.lr) or their own ``lr``
    optim: OptimConfig | None = None  # default: ``config.optim``
    batch_size: int | None = None  # default: ``data.batch_size``
    mix_set: ImageSet | None = None  # a second set mixed into every batch (see ``mix_ratio``)
    mix_ratio: float = 0.0  # mix_set images per train_set image in each batch; 0 = concatenate the sets
    prefix: str = ""  # checkpoint prefix: checkpoints/<prefix>best.pt
    final: bool = True  # the run's best.pt is this stage's
    state: dict[str, Any] = field(default_factory=dict)  # saved with every checkpoint (round, label hash...)
    index: int = 1
    total: int = 1
    description: str = ""
    loaders: tuple[Any, Any] | None = None  # prebuilt (train, val) loaders, e.g. over cached features
    save_model: nn.Module | None = None  # the module checkpoints hold (default: ``model``)
    save_spec: tuple[dict, InputSpec] | None = None  # its (model_spec, input_spec) when it differs
    # trained modules beside the saved model (e.g. a distillation adapter): in every checkpoint, restored on resume
    extra_modules: dict[str, nn.Module] = field(default_factory=dict)
    # (images, targets) -> (images, targets) on the device after each batch is loaded; default: the augmentation's
    # (CutMix/MixUp). A stage with its own ``loaders`` gets none unless it sets this.
    batch_transform: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] | None = None
    ema_decay: float | None = None  # EMA of the weights for this stage (0: off); None: ``train.ema_decay``
    observer: Callable[[Any], None] | None = None  # sees every event the stage's training emits, after it is emitted


@dataclass
class StageResult:
    """What a finished (or restored) stage leaves: the model holds its best weights."""

    stage: Stage
    state: TrainState
    metrics: dict[str, Any]
    best_path: Path
    restored: bool = False  # loaded from an earlier run's checkpoint instead of trained


# --- models --------------------------------------------------------------------------------


def build_stage_model(ctx: RunContext, model_cfg, num_classes: int | None = None):
    """Build a model from a ``ModelConfig`` for this run's data; returns (model, model_spec, input_spec).

    Warns when the model's default input is much larger than the data's images (VGG's 224 px for
    8×8 digits): each step then costs the square of the factor, and a smaller size is one setting.
    """
    source = ctx.data.source
    data = ctx.config.data
    geometry = (data.resize if data.resize != "auto" else "squash", data.crop_pct)
    built = create_model(model_cfg, num_classes or len(ctx.data.classes), source.image_size, source.channels, geometry)
    warning = upscale_warning(model_cfg, source.image_size, built[2])
    if warning:
        ctx.log(warning, level="warning")
    return built


def smooth_targets(targets: torch.Tensor, num_classes: int, smoothing: float) -> torch.Tensor:
    """Label smoothing as a target distribution: (1−ε)·y + ε/classes, for hard or soft *targets*."""
    soft = targets.float() if targets.ndim == 2 else F.one_hot(targets.long(), num_classes).float()
    return soft * (1.0 - smoothing) + smoothing / num_classes if smoothing else soft


def weighted_loss(ctx: RunContext, stage: Stage) -> StageLoss:
    """*stage*'s loss (default: cross-entropy) with ``train.class_weights`` applied to its cross-entropy: the
    default loss takes them, a loss with a ``class_weight`` attribute (distillation's CE term) gets them set,
    any other loss is used as it is (with a warning)."""
    cfg = ctx.config
    weights = class_weights(class_counts(ctx.data.train.targets(), len(ctx.data.classes)), cfg.train.class_weights,
                            cfg.train.class_weights_beta)
    if weights is None:
        return stage.loss or soft_cross_entropy
    weights = weights.to(ctx.device)
    if stage.loss is None:
        return functools.partial(soft_cross_entropy, weight=weights)
    if hasattr(stage.loss, "class_weight"):
        stage.loss.class_weight = weights
    else:
        ctx.log(f"stage {stage.name}: its loss has no cross-entropy term to weight; train.class_weights does not "
                f"apply to it", "warning")
    return stage.loss


def stage_loss(ctx: RunContext, stage: Stage) -> StageLoss:
    """The loss *stage* trains with: its own (default: cross-entropy), class weights applied, label smoothing."""
    smoothing = ctx.config.train.label_smoothing if stage.label_smoothing is None else stage.label_smoothing
    return _with_smoothing(weighted_loss(ctx, stage), len(ctx.data.classes), smoothing)


def _with_smoothing(loss: StageLoss, num_classes: int, smoothing: float) -> StageLoss:
    """Apply label smoothing to the targets before *loss* sees them, so every loss gets it the same way."""
    if not smoothing:
        return loss
    if getattr(loss, "sees_images", False):
        def smoothed_batch(logits, targets, images):
            return loss(logits, smooth_targets(targets, num_classes, smoothing), images)

        smoothed_batch.sees_images = True  # type: ignore[attr-defined]
        return smoothed_batch

    def smoothed(logits, targets):
        return loss(logits, smooth_targets(targets, num_classes, smoothing))

    return smoothed


# --- loaders, optimizer, scheduler ---------------------------------------------------------


def build_optimizer(ctx: RunContext, params, optim: OptimConfig | None = None):
    """Optimizer from the registry, configured by ``optim`` (groups may set ``lr_mult`` or ``lr``)."""
    optim = optim or ctx.config.optim
    if isinstance(params, list) and params and isinstance(params[0], dict):
        groups = []
        for group in params:
            group = dict(group)
            mult = group.pop("lr_mult", None)
            if mult is not None:
                group["lr"] = optim.lr * float(mult)
            groups.append(group)
        params = groups
    return registry("optimizer").entry(optim.name).load()(params, optim)


def build_scheduler(ctx: RunContext, optimizer, epochs: int, steps_per_epoch: int):
    """Scheduler from the registry, stepped once per optimizer step."""
    factory = registry("scheduler").entry(ctx.config.sched.name).load()
    return factory(optimizer, ctx.config.sched, epochs * steps_per_epoch, steps_per_epoch)


def eval_loader(ctx: RunContext, images: ImageSet, input_spec: InputSpec, sharded: bool = False):
    """An unaugmented, unshuffled loader over *images* for *input_spec*; *sharded*: this DDP rank's share
    (for :func:`~vistrain.engine.loop.evaluate`, which all-reduces), never padded."""
    shard = {"rank": ctx.dist.rank, "world_size": ctx.dist.world_size, "pad": False} if sharded else {}
    return build_loader(images, ImageTransform(input_spec), ctx.config.data.eval_batch_size, shuffle=False,
                        num_workers=ctx.config.data.num_workers, pin_memory=ctx.device.type == "cuda",
                        worker_start=ctx.config.data.worker_start, **shard)


def train_loader(ctx: RunContext, images: ImageSet, transform: ImageTransform, batch_size: int, seed_offset: int = 0, *,
                 drop_last: bool = False, balanced: bool | None = None):
    """A shuffled training loader over *images* for this run: its seed (+ *seed_offset*), workers, device
    augmentation and DDP shard; ``data.sampler: balanced`` draws classes evenly (*balanced* overrides it, e.g.
    False for an unlabelled pool, whose targets are not classes)."""
    cfg = ctx.config
    if balanced is None:
        balanced = cfg.data.sampler == "balanced"
    weights = balanced_sample_weights(images.targets(), len(ctx.data.classes)) if balanced else None
    return build_loader(images, transform, batch_size, shuffle=True, seed=cfg.train.seed + seed_offset,
                        num_workers=cfg.data.num_workers, pin_memory=ctx.device.type == "cuda", device=ctx.device,
                        device_augment=cfg.data.device_augment, rank=ctx.dist.rank, world_size=ctx.dist.world_size,
                        sample_weights=weights, drop_last=drop_last, worker_start=cfg.data.worker_start)


def stage_loaders(ctx: RunContext, stage: Stage):
    """(train loader, val loader, batch transform) for *stage*: its own augmentation and training set."""
    cfg = ctx.config
    num_classes = len(ctx.data.classes)
    if stage.augment is None and ctx.augmentation is not None:
        image_aug, batch_aug = ctx.augmentation
    else:
        image_aug, batch_aug = build_augmentation(stage.augment or cfg.augment, num_classes=num_classes)
    train_tf = ImageTransform(stage.input_spec, image_aug)
    batch_size = stage.batch_size or cfg.data.batch_size
    train_set = stage.train_set if stage.train_set is not None else ctx.data.train

    def loader(images: ImageSet, size: int, seed_offset: int = 0):
        return train_loader(ctx, images, train_tf, size, seed_offset)

    if stage.mix_set is not None and stage.mix_ratio > 0:
        own = max(1, round(batch_size / (1.0 + stage.mix_ratio)))
        batches = MixedBatchLoader(loader(stage.mix_set, max(1, batch_size - own), 1), loader(train_set, own),
                                   num_classes)
    elif stage.mix_set is not None:
        batches = loader(ConcatImageSet(train_set, stage.mix_set, num_classes=num_classes), batch_size)
    else:
        batches = loader(train_set, batch_size)
    return batches, eval_loader(ctx, ctx.data.val, stage.input_spec, sharded=True), batch_aug


# --- resume ----------------------------------------------------------------------------------


def plan_resume(ctx: RunContext, names: Sequence[str]) -> dict[str, Any]:
    """Mark the stages before the resume checkpoint's stage as finished; returns that checkpoint's stage state.

    *names* are the strategy's stage names in order.
    """
    if ctx.resume is None:
        return {}
    name, state = checkpoint.stage_of(ctx.resume)
    if name not in names:
        raise CheckpointError(f"the resume checkpoint is from stage {name!r}, which strategy "
                              f"{ctx.config.strategy.name!r} does not have (its stages: {', '.join(names)})",
                              hint="resume with the same strategy and parameters, or start a new run")
    ctx.completed.update(names[: list(names).index(name)])
    return state


def restore_stage_state(ctx: RunContext, stage: Stage, optimizer, scheduler, scaler=None,
                        steps_per_epoch: int | None = None, ema=None, accum_steps: int = 1) -> TrainState:
    """Put the resume checkpoint back into *stage* (weights, optimizer, schedule, RNG, counters, and the
    position inside the epoch: see :func:`vistrain.engine.resume.restore_training`).

    Returns a fresh :class:`TrainState` when the run is not resuming or the checkpoint belongs to
    another stage. The checkpoint is consumed: later stages start fresh.
    """
    ck = ctx.resume
    if ck is None or checkpoint.stage_of(ck)[0] != stage.name:
        return TrainState()
    ctx.resume = None
    saved_hash = checkpoint.stage_of(ck)[1].get("labels_hash")
    if saved_hash and stage.state.get("labels_hash") not in (None, saved_hash):
        ctx.log(f"stage {stage.name}: the pseudo-labels differ from the interrupted run's; continuing with the new ones",
                "warning")
    state = restore_training(ck, model=stage.save_model or stage.model, optimizer=optimizer, scheduler=scheduler,
                             scaler=scaler, ema=ema, epochs=stage.epochs, steps_per_epoch=steps_per_epoch,
                             accum_steps=accum_steps, log=ctx.log)
    saved_extra = checkpoint.extra_modules(ck)
    for name, module in stage.extra_modules.items():
        if name not in saved_extra:
            raise CheckpointError(f"the resume checkpoint has no {name!r} for stage {stage.name!r}",
                                  hint="resume with the same strategy parameters, or start a new run")
        module.load_state_dict(saved_extra[name])
    where = (f"inside epoch {state.epoch + 1} after its step {state.epoch_step}" if state.epoch_step
             else f"from epoch {state.epoch}")
    ctx.log(f"resumed {where} (step {state.global_step}) of stage {stage.name}")
    return state


def _load_best(ctx: RunContext, stage: Stage, path: Path) -> dict:
    """Put the stage's best weights (``<prefix>best.pt``) into its model; returns that checkpoint."""
    if not path.exists():
        raise CheckpointError(f"stage {stage.name!r} finished before the interruption but {path} is missing",
                              hint="resume from a complete run folder, or start a new run")
    ck = load_checkpoint(path)
    (stage.save_model or stage.model).load_state_dict(checkpoint.weights(ck))
    return ck


# --- averaging the last epochs -----------------------------------------------------------


def average_last_epochs(ctx: RunContext, stage: Stage, state: TrainState, input_spec: InputSpec) -> dict[str, float]:
    """``checkpoint.average_last: K``: the uniform average of the stage's last K epochs' weights (the weights
    their checkpoints hold: the EMA when it is on), BatchNorm statistics recomputed over the training split
    (unaugmented), validated, written as ``<prefix>averaged.pt``, and ``best.pt`` when ``checkpoint.best`` picks
    it as the stage's final point (``1se``: within one standard error of the highest val top-1; ``max``: the
    highest; ``last``: always). Rank 0 does the work and writes; the other ranks wait for its result.
    Returns ``average_val_top1``, ``average_epochs`` and ``average_is_best``; nothing when off."""
    window = ctx.config.checkpoint.average_last
    if not window:
        return {}
    metrics = _average_on_main(ctx, stage, state, input_spec, window) if ctx.dist.is_main else None
    # every rank takes rank 0's metrics and its best-so-far, which the average may have changed
    metrics, best = dist.broadcast_object((metrics, (state.best_metric, state.best_epoch, state.best_seen)))
    state.best_metric, state.best_epoch, state.best_seen = best
    return metrics


def _average_on_main(ctx: RunContext, stage: Stage, state: TrainState, input_spec: InputSpec,
                     window: int) -> dict[str, float]:
    from torch.optim.swa_utils import update_bn

    from vistrain.engine.loop import evaluate, update_best

    folder = ctx.folder.checkpoints
    wanted = {e: folder / checkpoint.epoch_checkpoint_name(stage.prefix, e)
              for e in range(max(1, stage.epochs - window + 1), stage.epochs + 1)}
    found = [e for e, p in wanted.items() if p.exists()]
    present = [wanted[e] for e in found]
    if len(present) < 2:
        ctx.log(f"stage {stage.name}: checkpoint.average_last={window} found {len(present)} epoch checkpoint(s) of "
                f"its last {window} epochs; nothing averaged", "warning")
        return {}
    ckpts = [load_checkpoint(p) for p in present]
    model = copy.deepcopy(dist.unwrap(stage.save_model or stage.model)).to(ctx.device)
    model.load_state_dict(checkpoint.average_weights(ckpts, [p.name for p in present]))
    has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    if has_bn:
        update_bn(eval_loader(ctx, ctx.data.train, input_spec), model, device=ctx.device)
    ctx.log(f"stage {stage.name}: averaged the weights of epochs {', '.join(map(str, found))}"
            + (f", BatchNorm statistics recomputed on {len(ctx.data.train)} training images" if has_bn else ""))
    val = evaluate(model, eval_loader(ctx, ctx.data.val, input_spec), device=ctx.device, amp_dtype=ctx.amp_dtype,
                   epoch=stage.epochs, stage=stage.name, split="val-average", emit=ctx.emit, reduce=False)
    is_best = update_best(state, stage.epochs, val["top1"], int(val["num_samples"]), ctx.config.checkpoint.best)
    metrics = {f"val_{k}": v for k, v in val.items() if k != "num_samples" and isinstance(v, float)}
    metrics["epoch"] = stage.epochs
    ck = checkpoint.averaged_checkpoint(ckpts[-1], model.state_dict(), [p.name for p in present], metrics,
                                        best_metric=float(state.best_metric), best_epoch=int(state.best_epoch),
                                        best_seen=float(state.best_seen))
    averaged = folder / f"{stage.prefix}averaged.pt"
    targets = [averaged]
    if is_best:
        targets.append(ctx.folder.checkpoint(f"{stage.prefix}best.pt"))
        if stage.prefix and stage.final:
            targets.append(folder / "best.pt")
    atomic_torch_save(ck, *targets)
    ctx.emit(CheckpointSaved(path=str(averaged), epoch=stage.epochs, global_step=state.global_step, is_best=False,
                             metric=val["top1"], reason="average"))
    if is_best:
        ctx.emit(CheckpointSaved(path=str(targets[1]), epoch=stage.epochs, global_step=state.global_step,
                                 is_best=True, metric=val["top1"], reason="best"))
    return {"average_val_top1": val["top1"], "average_epochs": len(present), "average_is_best": float(is_best)}


# --- running a stage ---------------------------------------------------------------------


def run_stage(ctx: RunContext, stage: Stage) -> StageResult:
    """Train *stage* with the engine's :func:`fit`, or load it when a resumed run had finished it.

    Emits ``StageStarted``, writes ``<prefix>last.pt``/``<prefix>best.pt`` and leaves the best
    weights (by val top-1) in ``stage.model``.
    """
    cfg = ctx.config
    stage.model.to(ctx.device)
    best_path = ctx.folder.checkpoint(f"{stage.prefix}best.pt")
    if stage.name in ctx.completed:
        if stage.loaders is not None:  # prebuilt for a stage that is not trained: never iterated
            close_loaders(*stage.loaders)
        ck = _load_best(ctx, stage, best_path)
        ctx.log(f"stage {stage.name} finished before the interruption: loaded {best_path.name}")
        state = saved_state(ck)
        metrics = {**checkpoint.metrics_of(ck), "best_val_top1": state.best_metric, "best_epoch": state.best_epoch}
        return StageResult(stage, state, metrics, best_path, restored=True)
    if stage.loaders is not None:
        loader, val_loader = stage.loaders
        batch_aug = None
    else:
        loader, val_loader, batch_aug = stage_loaders(ctx, stage)
    if stage.batch_transform is not None:
        batch_aug = stage.batch_transform
    trainable = stage.param_groups if stage.param_groups is not None else [
        p for p in stage.model.parameters() if p.requires_grad]
    optimizer = build_optimizer(ctx, trainable, stage.optim)
    accum = cfg.train.accum_steps
    scheduler = build_scheduler(ctx, optimizer, stage.epochs, -(-len(loader) // accum))  # optimizer steps
    scaler = grad_scaler(ctx.device, ctx.amp_dtype)
    save_model = stage.save_model or stage.model
    ema_decay = cfg.train.ema_decay if stage.ema_decay is None else stage.ema_decay
    ema = WeightEma(save_model, ema_decay, cfg.train.ema_warmup) if ema_decay else None
    if ema is not None:
        ctx.log(f"stage {stage.name}: EMA of the weights (decay {ema_decay:g}"
                f"{', timm warm-up' if cfg.train.ema_warmup else ''}): validated, and the weights best.pt holds")
    state = restore_stage_state(ctx, stage, optimizer, scheduler, scaler, steps_per_epoch=len(loader), ema=ema,
                                accum_steps=accum)
    spec, input_spec = stage.save_spec or (stage.model_spec, stage.input_spec)
    writer = CheckpointWriter(ctx, model=save_model, model_spec=spec, input_spec=input_spec.to_dict(),
                              optimizer=optimizer, scheduler=scheduler, scaler=scaler, prefix=stage.prefix,
                              stage=stage.name, stage_state=stage.state, epochs=stage.epochs, final=stage.final,
                              extra_modules=stage.extra_modules, ema=ema)
    ctx.emit(StageStarted(stage=stage.name, index=stage.index, total=stage.total,
                          description=stage.description or stage.name, epochs=stage.epochs,
                          steps_per_epoch=-(-len(loader) // accum), model=spec["name"],
                          num_params=sum(p.numel() for p in save_model.parameters())))
    loss = stage_loss(ctx, stage)
    every = cfg.checkpoint
    emit = ctx.emit
    if stage.observer is not None:
        def emit(event, _observer=stage.observer):  # noqa: F811 - the stage's events, then its observer
            ctx.emit(event)
            _observer(event)
    try:
        trained = prepare_model(stage.model, channels_last=cfg.train.channels_last, compile=cfg.train.compile,
                                wrap=lambda m: dist.wrap_model(m, ctx.device))
        state = fit(trained, loader, val_loader, optimizer, device=ctx.device,
                    epochs=stage.epochs, state=state, stage=stage.name, scheduler=scheduler, save=writer,
                    eval_every=cfg.train.eval_every, emit=emit, best_rule=cfg.checkpoint.best, loss_fn=loss,
                    amp_dtype=ctx.amp_dtype, scaler=scaler, grad_clip=cfg.train.grad_clip, batch_transform=batch_aug,
                    log_interval=cfg.train.log_interval, control=ctx.control, max_bad_fraction=cfg.data.max_bad_fraction,
                    channels_last=cfg.train.channels_last, ema=ema, accum_steps=accum,
                    step_checkpoints=StepCheckpoints(every.every_steps, every.every_minutes))
    except StopRequested:
        writer.finish()  # a stop reports its checkpoint as saved: a failed write must say so instead
        raise
    except BaseException:
        writer.finish(quiet=True)  # the files on disk are whole either way; the first error is the one to show
        raise
    finally:
        close_loaders(loader, val_loader)  # their prefetch threads end with the stage
    writer.finish()
    averaged = average_last_epochs(ctx, stage, state, input_spec)
    metrics = dict(state.history[-1]) if state.history else {}
    metrics.update(averaged)
    if best_path.exists():
        metrics = {**checkpoint.metrics_of(_load_best(ctx, stage, best_path)), **metrics}
    metrics["best_val_top1"] = state.best_metric
    metrics["best_epoch"] = state.best_epoch
    if ema is not None:
        metrics["ema_decay"] = float(ema_decay)
    return StageResult(stage, state, metrics, best_path)
