"""Lion (Chen et al. 2023, "Symbolic Discovery of Optimization Algorithms", Algorithm 2).

    c = beta1 * m + (1 - beta1) * g;  w -= lr * (sign(c) + wd * w);  m = beta2 * m + (1 - beta2) * g

Every coordinate moves by exactly lr, so Lion wants a learning rate 3-10x smaller than AdamW's
and a weight decay 3-10x larger. vistrain's ``optim.betas`` are used as (beta1, beta2).
"""

from __future__ import annotations

import torch


class Lion(torch.optim.Optimizer):
    """The Lion optimizer with decoupled weight decay."""

    def __init__(self, params, lr: float = 1e-4, betas: tuple[float, float] = (0.9, 0.99), weight_decay: float = 0.0):
        if lr <= 0:
            raise ValueError(f"Lion needs lr > 0, got {lr}")
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure=None):
        """One update of every parameter that has a gradient."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["exp_avg"] = torch.zeros_like(p)
                m = state["exp_avg"]
                p.mul_(1 - group["lr"] * group["weight_decay"])
                update = m.mul(beta1).add_(p.grad, alpha=1 - beta1).sign_()
                p.add_(update, alpha=-group["lr"])
                m.mul_(beta2).add_(p.grad, alpha=1 - beta2)
        return loss


def make_lion(params, cfg) -> Lion:
    """The factory vistrain calls with ``optim.lr``, ``optim.betas`` and ``optim.weight_decay``."""
    return Lion(params, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)
