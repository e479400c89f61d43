"""Built-in optimizers and LR schedulers, registered like any plugin's."""

from __future__ import annotations

import math

from vistrain.hookspecs import hookimpl


def make_sgd(params, cfg):
    """SGD with momentum (Nesterov by default)."""
    import torch

    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0,
                           weight_decay=cfg.weight_decay)


def make_adamw(params, cfg):
    """AdamW with decoupled weight decay."""
    import torch

    return torch.optim.AdamW(params, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)


def make_adam(params, cfg):
    """Adam (L2 weight decay)."""
    import torch

    return torch.optim.Adam(params, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)


def make_cosine(optimizer, cfg, total_steps: int, steps_per_epoch: int):
    """Linear warm-up over ``warmup_fraction`` of the steps, then cosine decay to ``min_lr_ratio``."""
    import torch

    warmup = int(total_steps * cfg.warmup_fraction)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / max(1, warmup)
        progress = (step - warmup) / max(1, total_steps - warmup)
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def make_onecycle(optimizer, cfg, total_steps: int, steps_per_epoch: int):
    """torch's OneCycleLR peaking at each group's configured lr after ``warmup_fraction``."""
    import torch

    max_lrs = [g["lr"] for g in optimizer.param_groups]
    total = max(total_steps, 4)
    # each phase needs at least one step, or torch divides by zero on very short runs
    pct = min(max(cfg.warmup_fraction, 2.0 / total), 1.0 - 1.0 / total)
    return torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=max_lrs, total_steps=total, pct_start=pct,
        cycle_momentum=False, div_factor=25.0, final_div_factor=1e4,
    )


def make_step(optimizer, cfg, total_steps: int, steps_per_epoch: int):
    """Multiply the lr by ``gamma`` every ``step_epochs`` epochs."""
    import torch

    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(1, cfg.step_epochs * steps_per_epoch), gamma=cfg.gamma)


def make_constant(optimizer, cfg, total_steps: int, steps_per_epoch: int):
    """Keep the lr fixed."""
    import torch

    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)


@hookimpl
def register_optimizers(register):
    """SGD, Adam and AdamW."""
    register("sgd", make_sgd, description="SGD with (Nesterov) momentum")
    register("adam", make_adam, description="Adam")
    register("adamw", make_adamw, description="AdamW, decoupled weight decay")


@hookimpl
def register_schedulers(register):
    """One-cycle, cosine with warm-up, step and constant."""
    register("onecycle", make_onecycle, description="one-cycle: warm up to lr, anneal to lr/2.5e5")
    register("cosine", make_cosine, description="linear warm-up then cosine decay")
    register("step", make_step, description="multiply by gamma every step_epochs")
    register("constant", make_constant, description="fixed learning rate")
