"""``noisy-student`` (Xie et al. 2020): iterate teacher → pseudo-labels → a noised, equal-or-larger student.

The teacher labels the unlabelled pool without noise (eval mode, no augmentation). Each student is
noised with RandAugment, dropout and (timm models) stochastic depth, and trains on mixed batches of
pseudo-labelled and labelled images; it then becomes the next round's teacher. Stages are
``teacher``, ``student1``, ``student2``...; an interrupted run resumes in the right one.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from vistrain.augment.pipeline import extend_spec
from vistrain.config import AugmentConfig
from vistrain.errors import ConfigError
from vistrain.strategies.base import RunContext
from vistrain.strategies.labelling import check_confidence_cap, label_round, predict_probs, targets_hash, unlabelled_pool
from vistrain.strategies.params import StrategyParams
from vistrain.strategies.stages import Stage, build_stage_model, plan_resume, run_stage
from vistrain.strategies.teachers import model_config, obtain_teacher


class StudentSpec(StrategyParams):
    """A student model: a registered name and its kwargs (e.g. a wider variant)."""

    name: str
    kwargs: dict[str, Any] = Field(default_factory=dict)


class NoisyStudentParams(StrategyParams):
    """Parameters of ``noisy-student``; defaults follow the paper and the official code."""

    iterations: int = Field(2, ge=1, description="student rounds; each student becomes the next teacher")
    students: list[str | StudentSpec] = Field(default_factory=list,
                                              description="one model per round (the last repeats); default model.name")
    teacher: str | None = Field(None, description="teacher checkpoint; unset: train model.name on the labels first")
    teacher_epochs: int | None = Field(None, ge=1)
    student_epochs: int | None = Field(None, ge=1)
    threshold: float = Field(0.3, ge=0.0, le=1.0, description="keep pseudo-labels with confidence >= this")
    soft: bool = Field(True, description="soft pseudo-labels (the teacher's softmax); false: hard (argmax)")
    balance: bool = Field(True, description="per class: top-confidence up to a target, duplicates for rare classes")
    balance_target: int | None = Field(None, ge=1, description="images per class after balancing (default: mean)")
    ratio: float = Field(3.0, ge=0.0, description="unlabelled:labelled images per batch; 0 = one shuffled set")
    randaugment_n: int = Field(2, ge=0)
    randaugment_m: int = Field(9, ge=0, le=30)
    noise_augment: str | None = Field(None, description="the student's augmentation spec (default: augment.spec "
                                                         "+ rand-nN-mM)")
    dropout: float = Field(0.5, ge=0.0, lt=1.0, description="student dropout (classifier)")
    drop_path: float = Field(0.2, ge=0.0, lt=1.0, description="stochastic depth for timm students (survival 0.8)")
    noise_teacher_training: bool = Field(True, description="train the first teacher with the students' noise "
                                                            "(a strong teacher); it never labels with noise")


def noise_augment(ctx: RunContext, p: NoisyStudentParams) -> AugmentConfig:
    """The student's augmentation: the run's spec followed by RandAugment (N, M), unless given outright."""
    aug = ctx.config.augment.model_copy(deep=True)
    if p.noise_augment is not None:
        aug.spec = p.noise_augment
        return aug
    rand = f"rand-n{p.randaugment_n}-m{p.randaugment_m}" if p.randaugment_n > 0 else ""
    aug.spec = extend_spec(aug.spec, [rand], owner="noisy-student", adds="RandAugment", key="strategy.params.noise_augment")
    return aug


def _student_cfg(ctx: RunContext, p: NoisyStudentParams, round_: int):
    choice = p.students[min(round_, len(p.students)) - 1] if p.students else ctx.config.model.name
    name, kwargs = (choice, {}) if isinstance(choice, str) else (choice.name, choice.kwargs)
    return model_config(ctx, name, kwargs, drop_rate=p.dropout, drop_path_rate=p.drop_path)


def run_noisy_student(ctx: RunContext) -> dict[str, Any]:
    """Teacher, then ``iterations`` rounds of label → noised student → student becomes teacher."""
    p: NoisyStudentParams = ctx.params
    cfg = ctx.config
    pool = unlabelled_pool(ctx)
    noise = noise_augment(ctx, p)
    names = (["teacher"] if p.teacher is None else []) + [f"student{r}" for r in range(1, p.iterations + 1)]
    total = len(names)
    if p.teacher is None or p.iterations > 1:  # a teacher trained here labels a round
        check_confidence_cap(ctx, p.threshold)
    plan_resume(ctx, names)
    teacher_cfg = model_config(ctx, drop_rate=p.dropout if p.noise_teacher_training else None)
    teacher, teacher_input, metrics = obtain_teacher(ctx, p.teacher, teacher_cfg, epochs=p.teacher_epochs or cfg.train.epochs,
                                                     total=total, augment=noise if p.noise_teacher_training else None)
    teacher_params = sum(q.numel() for q in teacher.parameters())
    previous = None
    for r in range(1, p.iterations + 1):
        labels = label_round(ctx, r, pool, predict_probs(ctx, teacher, teacher_input, pool), threshold=p.threshold,
                             soft=p.soft, balance=p.balance, balance_target=p.balance_target, previous=previous)
        previous = labels.hard
        student_cfg = _student_cfg(ctx, p, r)
        model, spec, input_spec = build_stage_model(ctx, student_cfg)
        n_params = sum(q.numel() for q in model.parameters())
        if n_params < teacher_params:
            raise ConfigError(f"noisy-student round {r}: student {student_cfg.name} has {n_params:,} parameters, "
                              f"fewer than its teacher's {teacher_params:,}",
                              hint="students must be equal or larger, e.g. strategy.params.students=[lenet5, vgg11]")
        result = run_stage(ctx, Stage(
            f"student{r}", model, spec, input_spec, epochs=p.student_epochs or cfg.train.epochs, augment=noise,
            mix_set=labels.images, mix_ratio=p.ratio, prefix=f"student{r}-", final=r == p.iterations,
            index=total - p.iterations + r, total=total,
            state={"round": r, "labels_hash": targets_hash(labels.images.targets())},
            description=f"noisy-student {r}/{p.iterations}: training student {student_cfg.name} on "
                        f"{len(labels.images)} pseudo-labelled + {len(ctx.data.train)} labelled (noised)"))
        metrics[f"student{r}_val_top1"] = result.metrics["best_val_top1"]
        metrics[f"round{r}_pseudo_label_accuracy"] = labels.stats.accuracy or 0.0
        teacher, teacher_input, teacher_params = model.eval(), input_spec, n_params
    return {**result.metrics, **metrics}
