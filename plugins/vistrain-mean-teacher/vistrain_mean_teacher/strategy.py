"""Mean Teacher (Tarvainen & Valpola 2017, "Mean teachers are better role models").

One stage of the stage toolkit: the student trains on batches that mix labelled images with
unlabelled ones (``unlabelled_ratio`` unlabelled per labelled image). Its loss is cross-entropy
on the labelled rows plus ``w(t)`` times the mean squared difference between the student's and
the teacher's softmax on every row. The teacher is an exponential moving average of the
student's weights (decay ``ema_decay``, and at most 1 - 1/(step + 1) early on, as in the paper),
run on the same augmented batch with extra Gaussian input noise (std ``noise``). ``w(t)`` ramps
up as ``consistency * exp(-5 (1 - t)^2)`` over ``rampup_epochs`` (Laine & Aila's sigmoid
ramp-up, which the paper uses). The run's checkpoints hold the student; the teacher's val
accuracy is reported at the end as ``teacher_val_top1``.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field

from vistrain.data.source import TargetImageSet
from vistrain.engine.loop import evaluate
from vistrain.strategies.params import StrategyParams
from vistrain.strategies.stages import Stage, build_stage_model, plan_resume, run_stage, stage_loaders

STAGE = "mean-teacher"


class MeanTeacherParams(StrategyParams):
    """``strategy.params`` of mean-teacher."""

    ema_decay: float = Field(0.99, ge=0.0, lt=1.0)
    consistency: float = Field(10.0, ge=0.0)
    rampup_epochs: float = Field(5.0, ge=0.0)
    unlabelled_ratio: float = Field(1.0, gt=0.0)
    noise: float = Field(0.15, ge=0.0)


def sigmoid_rampup(step: int, length: int) -> float:
    """exp(-5 (1 - t)^2) for t = step / length, clipped to [0, 1]; 1 when *length* is 0."""
    if length <= 0:
        return 1.0
    t = min(max(step / length, 0.0), 1.0)
    return math.exp(-5.0 * (1.0 - t) ** 2)


@torch.no_grad()
def ema_update(teacher: torch.nn.Module, student: torch.nn.Module, decay: float) -> None:
    """teacher <- decay * teacher + (1 - decay) * student for weights; buffers (BatchNorm stats) are copied."""
    for t, s in zip(teacher.parameters(), student.parameters()):
        t.mul_(decay).add_(s.detach(), alpha=1.0 - decay)
    for t, s in zip(teacher.buffers(), student.buffers()):
        t.copy_(s)


class MeanTeacherLoss:
    """The stage loss: CE on labelled rows + ramped consistency with the EMA teacher (updated every step).

    The loss is called once per optimizer step, before the step, so updating the teacher at the
    start of each call averages the student as the previous step left it. A resumed run starts
    the teacher from the resumed student and the ramp-up from zero.
    """

    sees_images = True

    def __init__(self, student, teacher, params: MeanTeacherParams, rampup_steps: int):
        self.student, self.teacher, self.params = student, teacher, params
        self.rampup_steps = rampup_steps
        self.step = 0
        self.last_weight = 0.0

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        p = self.params
        # decay 0 on the first call: the teacher starts as the student's current (e.g. resumed) weights
        ema_update(self.teacher, self.student, min(p.ema_decay, 1.0 - 1.0 / (self.step + 1)))
        self.step += 1
        logits = logits.float()
        if targets.ndim == 1:
            targets = F.one_hot(targets.long(), logits.shape[1]).float()
        labelled = targets.sum(dim=1) > 0  # unlabelled rows carry all-zero targets
        ce = -(targets * F.log_softmax(logits, dim=1)).sum(dim=1)
        ce = ce[labelled].mean() if labelled.any() else logits.sum() * 0.0
        with torch.no_grad():
            self.teacher.train()
            noisy = images + p.noise * torch.randn_like(images) if p.noise else images
            teacher_probs = F.softmax(self.teacher(noisy).float(), dim=1)
        consistency = F.mse_loss(F.softmax(logits, dim=1), teacher_probs)
        self.last_weight = p.consistency * sigmoid_rampup(self.step, self.rampup_steps)
        return ce + self.last_weight * consistency


def run_mean_teacher(ctx) -> dict:
    """Train the student with the Mean Teacher loss in one stage; report student and teacher accuracy."""
    params: MeanTeacherParams = ctx.params
    cfg = ctx.config
    plan_resume(ctx, [STAGE])
    student, spec, input_spec = build_stage_model(ctx, cfg.model)
    student.to(ctx.device)
    teacher = copy.deepcopy(student)
    for param in teacher.parameters():
        param.requires_grad_(False)
    num_classes = len(ctx.data.classes)
    unlabelled = ctx.data.unlabeled
    mix = None
    if unlabelled is not None and len(unlabelled):
        mix = TargetImageSet(unlabelled, np.zeros((len(unlabelled), num_classes), np.float32))
    else:
        ctx.log("mean-teacher: no unlabelled images (use --labels-per-class N): consistency on labelled images only",
                "warning")
    stage = Stage(STAGE, student, spec, input_spec, epochs=cfg.train.epochs, mix_set=mix,
                  mix_ratio=params.unlabelled_ratio if mix is not None else 0.0, label_smoothing=0.0,
                  description=f"mean teacher: {cfg.model.name} student, EMA teacher")
    train_loader, val_loader, batch_aug = stage_loaders(ctx, stage)
    if batch_aug is not None:
        ctx.log("mean-teacher: batch augmentations (CutMix/MixUp) are not used by this strategy", "warning")
    stage.loaders = (train_loader, val_loader)
    stage.loss = MeanTeacherLoss(student, teacher, params, round(params.rampup_epochs * len(train_loader)))
    result = run_stage(ctx, stage)
    teacher_val = evaluate(teacher, val_loader, device=ctx.device, amp_dtype=ctx.amp_dtype, stage=STAGE,
                           split="val-teacher", epoch=result.state.epoch, emit=ctx.emit)
    ctx.log(f"mean-teacher: student best val top-1 {100 * result.state.best_metric:.2f}%, "
            f"EMA teacher (final) {100 * teacher_val['top1']:.2f}%")
    return {**result.metrics, "teacher_val_top1": teacher_val["top1"]}
