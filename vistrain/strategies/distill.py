"""``distill`` (Hinton, Vinyals, Dean 2015): a student learns from a teacher's softened outputs.

Loss α·T²·KL(softmax(z_t/T) ‖ softmax(z_s/T)) + (1−α)·CE(y, z_s). The teacher runs in eval mode
without gradients, on its own transform (input size, channels, normalisation) of the very batch
the student sees after augmentation, so every jittered image gets the teacher's soft targets.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from pydantic import Field
from torch import nn

from vistrain.data.pipeline import InputSpec

from vistrain.strategies.base import RunContext
from vistrain.strategies.params import StrategyParams
from vistrain.strategies.stages import Stage, build_stage_model, plan_resume, run_stage
from vistrain.strategies.teachers import model_config, obtain_teacher


def retarget(images: torch.Tensor, source: InputSpec, target: InputSpec) -> torch.Tensor:
    """The same (already augmented) batch as another model expects it: its channels, size and normalisation."""
    if source == target:
        return images
    mean_s = images.new_tensor(source.mean).view(1, -1, 1, 1)
    std_s = images.new_tensor(source.std).view(1, -1, 1, 1)
    x = images * std_s + mean_s  # back to [0, 1] pixels
    if target.channels != x.shape[1]:
        if target.channels == 1:  # ITU-R 601 luma, as cv2's RGB2GRAY
            w = x.new_tensor([0.299, 0.587, 0.114][: x.shape[1]]).view(1, -1, 1, 1)
            x = (x * w).sum(dim=1, keepdim=True) / w.sum()
        else:
            x = x[:, :1].expand(-1, target.channels, -1, -1) if x.shape[1] == 1 else x[:, : target.channels]
    if x.shape[-1] != target.size or x.shape[-2] != target.size:
        x = F.interpolate(x, size=(target.size, target.size), mode="bilinear", align_corners=False,
                          antialias=x.shape[-1] > target.size)
    mean_t = x.new_tensor(target.mean).view(1, -1, 1, 1)
    std_t = x.new_tensor(target.std).view(1, -1, 1, 1)
    return ((x - mean_t) / std_t).contiguous()


class TeacherView:
    """A frozen teacher: eval mode, no gradients, run on its own transform of the student's batch."""

    def __init__(self, model: nn.Module, input_spec: InputSpec, student_spec: InputSpec):
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.input_spec = input_spec
        self.student_spec = student_spec

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        self.model.eval()
        return self.model(retarget(images, self.student_spec, self.input_spec)).float()


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, targets: torch.Tensor,
                      temperature: float, alpha: float) -> torch.Tensor:
    """Hinton et al.: α·T²·KL(softmax(z_t/T) ‖ softmax(z_s/T)) + (1−α)·CE(y, z_s); targets hard or soft."""
    t = float(temperature)
    log_p_s = F.log_softmax(student_logits.float() / t, dim=1)
    p_t = F.softmax(teacher_logits.float() / t, dim=1)
    kl = F.kl_div(log_p_s, p_t, reduction="batchmean")
    ce = F.cross_entropy(student_logits.float(), targets)
    return alpha * t * t * kl + (1.0 - alpha) * ce


class DistillationLoss:
    """:func:`distillation_loss` with the teacher run on each batch (``sees_images``)."""

    sees_images = True

    def __init__(self, teacher: TeacherView, temperature: float = 4.0, alpha: float = 0.9):
        self.teacher, self.temperature, self.alpha = teacher, temperature, alpha

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        return distillation_loss(logits, self.teacher(images), targets, self.temperature, self.alpha)


class DistillParams(StrategyParams):
    """Parameters of ``distill``; the student is ``model``."""

    teacher: str | None = Field(None, description="teacher checkpoint; unset: train teacher_model first")
    teacher_model: str | None = Field(None, description="model trained as the teacher stage (default model.name)")
    teacher_kwargs: dict[str, Any] = Field(default_factory=dict)
    teacher_epochs: int | None = Field(None, ge=1, description="epochs of the teacher stage (default train.epochs)")
    temperature: float = Field(4.0, gt=0.0, description="softmax temperature T")
    alpha: float = Field(0.9, ge=0.0, le=1.0, description="weight of the soft (teacher) term")


def run_distill(ctx: RunContext) -> dict[str, Any]:
    """Teacher (a checkpoint or a first stage), then the student on the Hinton loss."""
    p: DistillParams = ctx.params
    cfg = ctx.config
    names = (["teacher"] if p.teacher is None else []) + ["student"]
    plan_resume(ctx, names)
    teacher, teacher_input, metrics = obtain_teacher(ctx, p.teacher, model_config(ctx, p.teacher_model, p.teacher_kwargs),
                                                     epochs=p.teacher_epochs or cfg.train.epochs, total=len(names))
    model, spec, input_spec = build_stage_model(ctx, cfg.model)
    loss = DistillationLoss(TeacherView(teacher, teacher_input, input_spec), p.temperature, p.alpha)
    result = run_stage(ctx, Stage("student", model, spec, input_spec, epochs=cfg.train.epochs, loss=loss,
                                  prefix="student-", index=len(names), total=len(names),
                                  description=f"distill: student {cfg.model.name} from the teacher "
                                              f"(T={p.temperature:g}, alpha={p.alpha:g})"))
    return {**result.metrics, **metrics}
