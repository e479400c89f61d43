"""``pseudo-label`` (Lee 2013): a teacher labels the unlabelled pool; a student trains on labelled + confident pseudo-labels."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import Field
from torch import nn

from vistrain.data.pipeline import InputSpec
from vistrain.data.source import ImageSet
from vistrain.strategies.base import RunContext
from vistrain.strategies.labelling import PseudoLabels, check_confidence_cap, label_round, predict_probs, targets_hash, unlabelled_pool
from vistrain.strategies.params import StrategyParams
from vistrain.strategies.stages import Stage, StageResult, build_stage_model, plan_resume, run_stage
from vistrain.strategies.teachers import model_config, obtain_teacher


class PseudoLabelParams(StrategyParams):
    """Parameters of ``pseudo-label``."""

    teacher: str | None = Field(None, description="teacher checkpoint; unset: train model.name on the labels first")
    teacher_epochs: int | None = Field(None, ge=1, description="epochs of the teacher stage (default train.epochs)")
    threshold: float = Field(0.9, ge=0.0, le=1.0, description="keep pseudo-labels with confidence >= this")
    soft: bool = Field(False, description="train on the teacher's softmax instead of its argmax")
    balance: bool = Field(False, description="balance classes (top-confidence per class, duplicates for rare ones)")
    student_epochs: int | None = Field(None, ge=1, description="epochs of the student stage (default train.epochs)")


def run_pseudo_label(ctx: RunContext) -> dict[str, Any]:
    """Teacher (a checkpoint or a first stage) → pseudo-labels over the pool → student on both."""
    p: PseudoLabelParams = ctx.params
    cfg = ctx.config
    pool = unlabelled_pool(ctx)
    names = (["teacher"] if p.teacher is None else []) + ["student"]
    if p.teacher is None:
        check_confidence_cap(ctx, p.threshold)
    plan_resume(ctx, names)
    teacher, teacher_input, metrics = obtain_teacher(ctx, p.teacher, model_config(ctx),
                                                     epochs=p.teacher_epochs or cfg.train.epochs, total=len(names))
    result, labels = train_student(ctx, teacher, teacher_input, pool, threshold=p.threshold, soft=p.soft,
                                   balance=p.balance, epochs=p.student_epochs or cfg.train.epochs,
                                   index=len(names), total=len(names))
    return {**result.metrics, **metrics, "pseudo_label_accuracy": labels.stats.accuracy or 0.0,
            "pseudo_label_acceptance": labels.stats.acceptance_rate}


def train_student(ctx: RunContext, teacher: nn.Module, teacher_input: InputSpec, pool: ImageSet, *,
                  threshold: float, soft: bool, balance: bool, epochs: int | Callable[[int], int], index: int,
                  total: int, key: str = "strategy.params.threshold") -> tuple[StageResult, PseudoLabels]:
    """The student stage ``student``: *teacher* labels *pool*; a fresh ``model.name`` trains on the labelled split
    plus the accepted pseudo-labels, in one shuffled set (``checkpoints/student-best.pt``, and the run's best.pt).

    *epochs* may be a function of the student's training-set size (labelled + accepted images); *key* is the
    setting that holds *threshold*."""
    cfg = ctx.config
    labels = label_round(ctx, 1, pool, predict_probs(ctx, teacher, teacher_input, pool), threshold=threshold,
                         soft=soft, balance=balance, key=key)
    if callable(epochs):
        epochs = epochs(len(ctx.data.train) + len(labels.images))
    model, spec, input_spec = build_stage_model(ctx, cfg.model)
    result = run_stage(ctx, Stage(
        "student", model, spec, input_spec, epochs=epochs, mix_set=labels.images,
        prefix="student-", index=index, total=total,
        state={"round": 1, "labels_hash": targets_hash(labels.images.targets())},
        description=f"student: {cfg.model.name} on {len(ctx.data.train)} labelled + {len(labels.images)} pseudo-labelled"))
    return result, labels
