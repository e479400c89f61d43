"""The CIFAR ResNet schedule (He et al. 2016, section 4.2): lr / 10 at 32k and 48k of 64k iterations.

vistrain steps the scheduler once per optimizer step, so the milestones are 50% and 75% of the
run's total steps, whatever its length; the factor is ``sched.gamma`` (0.1 by default).
"""

from __future__ import annotations

import torch


def make_resnet_steps(optimizer, cfg, total_steps: int, steps_per_epoch: int):
    """MultiStepLR with milestones at 50% and 75% of *total_steps*."""
    milestones = sorted({max(1, total_steps // 2), max(1, (3 * total_steps) // 4)})
    return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=cfg.gamma)
