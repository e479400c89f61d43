"""``vistrain lr-find``: an exponential learning-rate sweep on a run's own config (Smith 2017, fastai's lr_find).

The model, data, augmentation, optimizer and loss are the run's (its first stage trains the config's
model on the labelled training split, as ``supervised`` and every teacher stage do). The learning rate
grows geometrically from ``start_lr`` to ``end_lr`` over ``steps`` optimizer steps, one batch each; the
loss is smoothed with an exponential moving average (bias corrected, β = 0.98) and the sweep stops once it
exceeds 4× its minimum (divergence). Three suggestions, as fastai names them:

- ``valley``: the longest stretch over which the smoothed loss keeps decreasing, at 2/3 of the way
  down it (fastai's default, robust to the noisy start and the divergent end);
- ``steepest``: where the smoothed loss falls fastest against log lr, before its lowest point;
- ``minimum``: a tenth of the lr at the lowest smoothed loss.

Under ``torchrun`` every rank sweeps its shard of the data with the model in DDP and the losses are
averaged across ranks, so all ranks stop at the same step; rank 0 reports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch

SUGGESTIONS = ("valley", "steepest", "minimum")


@dataclass
class Sweep:
    """Learning rates tried, raw and smoothed losses, and the suggestions."""

    lrs: list[float]
    losses: list[float]
    smoothed: list[float]
    diverged: bool
    suggestions: dict[str, float] = field(default_factory=dict)


def lr_at(step: int, steps: int, start_lr: float, end_lr: float) -> float:
    """The geometric schedule: *start_lr* at step 0, *end_lr* at step ``steps - 1``."""
    return start_lr * (end_lr / start_lr) ** (step / max(1, steps - 1))


def suggest(lrs: list[float], smoothed: list[float]) -> dict[str, float]:
    """``valley``, ``steepest`` and ``minimum`` (see the module) from a sweep's smoothed losses."""
    lr = np.asarray(lrs, dtype=np.float64)
    loss = np.asarray(smoothed, dtype=np.float64)
    n = len(loss)
    if n < 3:
        return {}
    lowest = int(np.argmin(loss))
    out = {"minimum": float(lr[lowest] / 10)}
    slope = np.gradient(loss, np.log(lr))
    # the fastest fall before the lowest loss (past it the curve only rises or thrashes)
    out["steepest"] = float(lr[int(np.argmin(slope[: max(1, lowest)]))])
    # longest decreasing subsequence ending at each point (O(n^2), n is a few hundred at most); on a tie the
    # latest predecessor wins, so a fall starts where the plateau before it ends
    run = np.ones(n, dtype=np.int64)
    start = np.arange(n)
    for i in range(1, n):
        for j in range(i):
            if loss[i] < loss[j] and run[j] + 1 >= run[i] and (run[j] + 1 > run[i] or start[j] >= start[i]):
                run[i], start[i] = run[j] + 1, start[j]
    end = int(np.argmax(run))
    first = int(start[end])
    out["valley"] = float(lr[first + (end - first) * 2 // 3])
    return out


def sweep(model: torch.nn.Module, loader, optimizer: torch.optim.Optimizer, loss_fn, *, device: torch.device,
          start_lr: float = 1e-7, end_lr: float = 10.0, steps: int = 100, diverge: float = 4.0, beta: float = 0.98,
          batch_transform=None, amp_dtype: torch.dtype | None = None) -> Sweep:
    """Train *model* one batch per lr of the geometric schedule (the loader is cycled), stopping on divergence."""
    from vistrain.engine import distributed as dist
    from vistrain.engine.device import autocast

    model.train()
    lrs, losses, smoothed = [], [], []
    avg, best, diverged = 0.0, math.inf, False
    batches = iter(loader)
    for step in range(steps):
        try:
            images, targets = next(batches)
        except StopIteration:
            if hasattr(loader, "set_epoch"):
                loader.set_epoch(step)
            batches = iter(loader)
            images, targets = next(batches)
        lr = lr_at(step, steps, start_lr, end_lr)
        for group in optimizer.param_groups:
            group["lr"] = lr * group.get("lr_mult", 1.0)
        images, targets = images.to(device), targets.to(device)
        if batch_transform is not None:
            images, targets = batch_transform(images, targets)
        with autocast(device, amp_dtype):
            loss = loss_fn(model(images), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        value = float(dist.all_reduce_mean(loss.detach().float()).item()) if dist.is_distributed() else float(loss.detach())
        lrs.append(lr)
        losses.append(value)
        if not math.isfinite(value):
            diverged = True
            break
        avg = beta * avg + (1 - beta) * value
        smooth = avg / (1 - beta ** (step + 1))
        smoothed.append(smooth)
        best = min(best, smooth)
        if step > 5 and smooth > diverge * best:
            diverged = True
            break
    lrs = lrs[: len(smoothed)]
    return Sweep(lrs, losses[: len(smoothed)], smoothed, diverged, suggest(lrs, smoothed))


def terminal_plot(result: Sweep, width: int = 64, height: int = 12, mark: float | None = None) -> str:
    """The smoothed loss against log lr as text, *mark* shown as a column of ``|``."""
    if len(result.lrs) < 2:
        return ""
    x = np.log10(np.asarray(result.lrs))
    y = np.asarray(result.smoothed)
    hi = min(float(y.max()), float(np.min(y)) * 4 + 1e-12)
    lo = float(y.min())
    grid = [[" "] * width for _ in range(height)]
    col_of = lambda v: int(round((v - x[0]) / max(1e-12, x[-1] - x[0]) * (width - 1)))  # noqa: E731
    if mark is not None:
        c = col_of(math.log10(mark))
        if 0 <= c < width:
            for r in range(height):
                grid[r][c] = "|"
    for xi, yi in zip(x, y):
        r = height - 1 - int(round((min(yi, hi) - lo) / max(1e-12, hi - lo) * (height - 1)))
        grid[r][col_of(xi)] = "*"
    lines = [f"{hi if r == 0 else lo if r == height - 1 else '':>8.3g} |" + "".join(row) if r in (0, height - 1)
             else " " * 9 + "|" + "".join(row) for r, row in enumerate(grid)]
    lines.append(" " * 9 + "+" + "-" * width)
    lines.append(" " * 10 + f"{result.lrs[0]:<.0e}".ljust(width - 8) + f"{result.lrs[-1]:.0e}")
    return "\n".join(lines)


def plot_png(result: Sweep, path, chosen: str) -> None:
    """The sweep (raw and smoothed) with the three suggestions marked."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 4), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.plot(result.lrs, result.losses, color="#cccccc", linewidth=0.8, label="loss")
    ax.plot(result.lrs, result.smoothed, color="#4c72b0", label="smoothed")
    colours = {"valley": "#c44e52", "steepest": "#55a868", "minimum": "#8172b2"}
    for name, lr in result.suggestions.items():
        ax.axvline(lr, color=colours[name], linestyle="-" if name == chosen else "--", linewidth=1,
                   label=f"{name} {lr:.2e}")
    ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    top = min(max(result.smoothed), 4 * min(result.smoothed))
    ax.set_ylim(min(min(result.smoothed), min(result.losses)) * 0.9, top * 1.05)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(str(path))


def find_lr(cfg, *, start_lr: float, end_lr: float, steps: int) -> Sweep:
    """The sweep on *cfg*'s model, data, augmentation and optimizer (see the module)."""
    from vistrain.augment import build_augmentation
    from vistrain.engine import distributed as dist
    from vistrain.engine.device import amp_dtype
    from vistrain.runner import prepare_inputs
    from vistrain.strategies.base import RunContext
    from vistrain.strategies.stages import Stage, build_optimizer, build_stage_model, stage_loaders, stage_loss

    cfg, dinfo, device, _source, data, _line = prepare_inputs(cfg)  # threads, seeds, recipe: as a run has them
    ctx = RunContext(config=cfg, device=device, data=data, run_dir=None, emit=lambda event: None, dist=dinfo,
                     amp_dtype=amp_dtype(device, cfg.train.amp),
                     augmentation=build_augmentation(cfg.augment, len(data.classes)))
    model, spec, input_spec = build_stage_model(ctx, cfg.model)
    model.to(device)
    stage = Stage("lr-find", model, spec, input_spec, epochs=1)
    loader, _val, batch_aug = stage_loaders(ctx, stage)
    optimizer = build_optimizer(ctx, [p for p in model.parameters() if p.requires_grad])
    loss_fn = stage_loss(ctx, stage)  # the run's loss: class weights and label smoothing included

    try:
        return sweep(dist.wrap_model(model, device), loader, optimizer, loss_fn, device=device, start_lr=start_lr,
                     end_lr=end_lr, steps=steps, batch_transform=batch_aug, amp_dtype=ctx.amp_dtype)
    finally:
        dist.teardown()
