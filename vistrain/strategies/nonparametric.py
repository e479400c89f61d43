"""Training for non-parametric models (k-NN): memorise the training split, then evaluate.

It emits the same events as a one-epoch gradient run (StageStarted, EpochEnd, EvalEnd,
CheckpointSaved), so the console, ``events.jsonl`` and ``metrics.csv`` need nothing special.
"""

from __future__ import annotations

import time

from vistrain.engine.loop import TrainState, evaluate
from vistrain.events import EpochEnd, StageStarted
from vistrain.strategies.base import CheckpointWriter, RunContext
from vistrain.strategies.stages import eval_loader


def fit_nonparametric(ctx: RunContext, model, model_spec: dict, input_spec, *, stage: str = "supervised") -> dict:
    """Store the training split in *model* (``model.fit(loader, device)``), evaluate on val, checkpoint."""
    # no augmentation: the references are the data itself
    train_loader, val_loader = eval_loader(ctx, ctx.data.train, input_spec), eval_loader(ctx, ctx.data.val, input_spec)
    model.to(ctx.device)
    ctx.emit(StageStarted(stage=stage, description=f"{stage}: memorising {len(ctx.data.train)} images for "
                          f"{model_spec['name']}", epochs=1, steps_per_epoch=len(train_loader),
                          model=model_spec["name"], num_params=0))
    t0 = time.perf_counter()
    stored = model.fit(train_loader, ctx.device)
    # Accuracy on the references themselves: what "train accuracy" means for a memorising model.
    train = evaluate(model, train_loader, device=ctx.device)
    ctx.emit(EpochEnd(stage=stage, epoch=1, epochs=1, train_loss=train["loss"], train_top1=train["top1"], lr=0.0,
                      duration_s=time.perf_counter() - t0, samples=stored))
    val = evaluate(model, val_loader, device=ctx.device, epoch=1, stage=stage, emit=ctx.emit)
    state = TrainState(epoch=1, best_metric=val["top1"], best_epoch=1)
    metrics = {"train_loss": train["loss"], "train_top1": train["top1"], "epoch": 1,
               **{f"val_{k}": v for k, v in val.items() if k != "num_samples" and isinstance(v, float)}}
    state.history.append(metrics)
    writer = CheckpointWriter(ctx, model=model, model_spec=model_spec, input_spec=input_spec.to_dict(), stage=stage)
    writer(state, metrics, True, "epoch")
    writer.finish()
    return {**metrics, "best_val_top1": val["top1"], "best_epoch": 1}
