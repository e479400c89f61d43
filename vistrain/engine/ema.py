"""An exponential moving average of a model's weights (``train.ema_decay``), on timm's ``ModelEmaV3``.

The average is updated after every optimizer step with timm's warm-up (decay 1 − (1 + step)^−2/3, capped
at ``ema_decay``), so early steps are not dominated by the random initial weights. Validation, ``best.pt``
and every later use of a checkpoint's ``state_dict`` (eval, predict, export, teachers) take the averaged
weights; the checkpoint keeps the training weights beside them (``train_state_dict``) so a resume
continues both exactly.
"""

from __future__ import annotations

import torch
from timm.utils.model_ema import ModelEmaV3


class WeightEma:
    """The EMA of *model* (the module checkpoints save, not a DDP or compiled wrapper around it)."""

    def __init__(self, model: torch.nn.Module, decay: float, warmup: bool = True):
        self.source = model
        self.ema = ModelEmaV3(model, decay=decay, use_warmup=warmup)

    @property
    def module(self) -> torch.nn.Module:
        """The averaged model (eval mode)."""
        return self.ema.module

    def update(self, global_step: int) -> None:
        """Fold the current weights in, after optimizer step *global_step* (1 for the first)."""
        self.ema.update(self.source, step=global_step)

    def decay(self, global_step: int) -> float:
        """The decay used at *global_step*."""
        return self.ema.get_decay(global_step)
