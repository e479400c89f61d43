"""``distill`` (Hinton, Vinyals, Dean 2015): a student learns from a teacher's softened outputs.

Loss α·T²·KL(softmax(z_t/T) ‖ softmax(z_s/T)) + (1−α)·CE(y, z_s). The teacher runs in eval mode
without gradients, on its own transform (input size, channels, normalisation) of the very batch
the student sees after augmentation, so every jittered image gets the teacher's soft targets.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from vistrain.strategies.base import RunContext
from vistrain.strategies.params import StrategyParams
from vistrain.strategies.stages import DistillationLoss, Stage, TeacherView, build_stage_model, plan_resume, run_stage
from vistrain.strategies.teachers import model_config, obtain_teacher


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
