"""``supervised``: one stage of plain training on the labelled split."""

from __future__ import annotations

import math
import warnings

import torch

from vistrain.augment import build_augmentation
from vistrain.data.pipeline import ImageTransform, build_loader
from vistrain.engine.device import set_rng_state
from vistrain.engine.loop import TrainState, evaluate, fit, soft_cross_entropy
from vistrain.events import StageStarted
from vistrain.models.factory import create_model
from vistrain.plugins import registry
from vistrain.strategies.base import CheckpointWriter, RunContext


def build_optimizer(ctx: RunContext, params):
    """Optimizer from the registry, configured by ``optim``."""
    return registry("optimizer").entry(ctx.config.optim.name).load()(params, ctx.config.optim)


def build_scheduler(ctx: RunContext, optimizer, epochs: int, steps_per_epoch: int):
    """Scheduler from the registry, stepped once per optimizer step."""
    factory = registry("scheduler").entry(ctx.config.sched.name).load()
    return factory(optimizer, ctx.config.sched, epochs * steps_per_epoch, steps_per_epoch)


def make_loaders(ctx: RunContext, input_spec, train_images=None, augment: bool = True):
    """Train loader (augmented as configured) and val loader for *input_spec*."""
    cfg = ctx.config
    image_aug, batch_aug = build_augmentation(cfg.augment, num_classes=len(ctx.data.classes)) if augment else (None, None)
    train_tf = ImageTransform(input_spec, image_aug)
    eval_tf = ImageTransform(input_spec)
    pin = ctx.device.type == "cuda"
    train_loader = build_loader(train_images if train_images is not None else ctx.data.train, train_tf,
                                cfg.data.batch_size, shuffle=True, seed=cfg.train.seed,
                                num_workers=cfg.data.num_workers, pin_memory=pin)
    val_loader = build_loader(ctx.data.val, eval_tf, cfg.data.eval_batch_size, shuffle=False,
                              num_workers=cfg.data.num_workers, pin_memory=pin)
    return train_loader, val_loader, batch_aug


def train_model(ctx: RunContext, model, model_spec: dict, input_spec, *, stage: str, index: int = 1, total: int = 1,
                description: str = "", epochs: int | None = None, train_images=None, param_groups=None,
                prefix: str = "", loss_fn=None) -> tuple[TrainState, dict]:
    """One training stage: loaders, optimizer, scheduler, checkpoints, then :func:`fit`."""
    cfg = ctx.config
    epochs = epochs or cfg.train.epochs
    model.to(ctx.device)
    train_loader, val_loader, batch_aug = make_loaders(ctx, input_spec, train_images)
    optimizer = build_optimizer(ctx, param_groups if param_groups is not None else model.parameters())
    scheduler = build_scheduler(ctx, optimizer, epochs, len(train_loader))
    scaler = torch.amp.GradScaler("cuda") if ctx.amp_dtype == torch.float16 else None
    state = TrainState()
    if ctx.resume is not None and ctx.resume.get("stage", stage) == stage:
        ck = ctx.resume
        model.load_state_dict(ck["state_dict"])
        if "optimizer" in ck:
            optimizer.load_state_dict(ck["optimizer"])
        saved_epochs = (ck.get("config") or {}).get("train", {}).get("epochs")
        if "scheduler" in ck and saved_epochs == epochs:
            scheduler.load_state_dict(ck["scheduler"])
        else:  # a different length (or no saved state): replay the new schedule up to the saved step
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                for _ in range(int(ck["global_step"])):
                    scheduler.step()
            if saved_epochs != epochs:
                ctx.log(f"epochs changed from {saved_epochs} to {epochs}: the LR schedule was stretched to the new length")
        if scaler is not None and "scaler" in ck:
            scaler.load_state_dict(ck["scaler"])
        if "rng" in ck:
            set_rng_state(ck["rng"])
        state = TrainState(epoch=int(ck["epoch"]), global_step=int(ck["global_step"]),
                           best_metric=float(ck.get("best_metric", -math.inf)), best_epoch=int(ck.get("best_epoch", 0)))
        ctx.log(f"resumed from epoch {state.epoch} (step {state.global_step})")
    writer = CheckpointWriter(ctx, model=model, model_spec=model_spec, input_spec=input_spec.to_dict(),
                              optimizer=optimizer, scheduler=scheduler, scaler=scaler, prefix=prefix)
    ctx.emit(StageStarted(stage=stage, index=index, total=total, description=description or stage,
                          epochs=epochs, steps_per_epoch=len(train_loader), model=model_spec["name"],
                          num_params=sum(p.numel() for p in model.parameters())))
    base_loss = loss_fn or soft_cross_entropy
    smoothing = cfg.train.label_smoothing
    loss = (lambda logits, target: base_loss(logits, target, smoothing)) if smoothing and loss_fn is None else base_loss
    state = fit(model, train_loader, val_loader, optimizer, device=ctx.device, epochs=epochs, state=state, stage=stage,
                scheduler=scheduler, save=writer, eval_every=cfg.train.eval_every, emit=ctx.emit,
                loss_fn=loss, amp_dtype=ctx.amp_dtype, scaler=scaler, grad_clip=cfg.train.grad_clip,
                batch_transform=batch_aug, log_interval=cfg.train.log_interval, control=ctx.control)
    metrics = dict(state.history[-1]) if state.history else {}
    metrics["best_val_top1"] = state.best_metric
    metrics["best_epoch"] = state.best_epoch
    return state, metrics


def run_supervised(ctx: RunContext) -> dict:
    """Train the configured model on the labelled training split, selecting by val top-1."""
    cfg = ctx.config
    source = ctx.data.source
    model, spec, input_spec = create_model(cfg.model, len(ctx.data.classes), source.image_size, source.channels)
    if getattr(model, "nonparametric", False):  # k-NN memorises instead of descending a gradient
        from vistrain.strategies.nonparametric import fit_nonparametric

        return fit_nonparametric(ctx, model, spec, input_spec)
    _state, metrics = train_model(ctx, model, spec, input_spec, stage="supervised",
                                  description=f"supervised: training {cfg.model.name}")
    return metrics


def evaluate_checkpoint_model(ctx: RunContext, model, input_spec):
    """Evaluate *model* on the val split (used by strategies that end with a summary)."""
    _, val_loader, _ = make_loaders(ctx, input_spec, augment=False)
    return evaluate(model, val_loader, device=ctx.device, amp_dtype=ctx.amp_dtype, emit=ctx.emit)
