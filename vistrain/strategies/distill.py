"""``distill``: a student learns from a teacher's outputs (Hinton, Vinyals, Dean 2015) and, optionally, features.

Loss α·L_logits(z_s, z_t) + (1−α)·CE(y, z_s) + w·L_features, where L_logits is a registered
distillation loss (``kd``: T²·KL of the softened outputs, ``dkd``, ``dist`` or a plugin's, see
:mod:`vistrain.strategies.distill_losses`) and L_features FitNets' or attention transfer's. The
teacher runs in eval mode without gradients, on its own transform (input size, channels,
normalisation) of the very batch the student sees after augmentation, mixing included: every
jittered or mixed image gets the teacher's targets (Beyer et al. 2022, "consistent teaching";
``mix: mixup`` or ``cutmix`` is their "function matching").
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from pydantic import Field, field_validator
from torch import nn

from vistrain.data.pipeline import InputSpec

from vistrain.errors import ConfigError
from vistrain.strategies.base import RunContext
from vistrain.strategies.distill_losses import (FeatureAdapter, FeatureTap, LogitLoss, StudentWithTap, at_loss,
                                                fitnet_loss, kd_loss, logit_loss)
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

    def __init__(self, model: nn.Module, input_spec: InputSpec, student_spec: InputSpec, layer: str | None = None):
        self.model = model.eval()
        # *layer* ("" for the classifier's input): its output is kept in ``self.tap.features`` after each call
        self.tap = FeatureTap(model, layer, "teacher") if layer is not None else None
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.input_spec = input_spec
        self.student_spec = student_spec

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        self.model.eval()
        return self.model(retarget(images, self.student_spec, self.input_spec)).float()


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, targets: torch.Tensor,
                      temperature: float, alpha: float, logit: LogitLoss | None = None,
                      class_weight: torch.Tensor | None = None) -> torch.Tensor:
    """α·L(z_s, z_t) + (1−α)·CE(y, z_s), L being Hinton's T²·KL unless *logit* is given; targets hard or soft;
    *class_weight* weights the CE term per class (``train.class_weights``)."""
    if logit is None:
        soft = kd_loss(student_logits, teacher_logits, temperature)
    else:
        soft = logit(student_logits.float(), teacher_logits.float(), targets, float(temperature))
    if alpha >= 1.0:
        return alpha * soft
    return alpha * soft + (1.0 - alpha) * F.cross_entropy(student_logits.float(), targets, weight=class_weight)


class DistillationLoss:
    """:func:`distillation_loss` with the teacher run on each batch (``sees_images``), plus a feature loss when
    *student* (a :class:`StudentWithTap`) and the teacher's tap are given: ``fitnet`` or ``at``."""

    sees_images = True

    def __init__(self, teacher: TeacherView, temperature: float = 4.0, alpha: float = 0.9,
                 logit: LogitLoss | None = None, student: StudentWithTap | None = None, feature: str = "none",
                 feature_weight: float = 0.0):
        self.teacher, self.temperature, self.alpha, self.logit = teacher, temperature, alpha, logit
        self.student, self.feature, self.feature_weight = student, feature, feature_weight
        self.class_weight: torch.Tensor | None = None  # train.class_weights, for the labels' CE term

    def __call__(self, logits: torch.Tensor, targets: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        loss = distillation_loss(logits, self.teacher(images), targets, self.temperature, self.alpha, self.logit,
                                 self.class_weight)
        if self.feature != "none" and self.feature_weight:
            theirs = self.teacher.tap.features
            mine = self.student.features
            feat = fitnet_loss(mine, theirs) if self.feature == "fitnet" else at_loss(mine, theirs)
            loss = loss + self.feature_weight * feat
        return loss


FEATURE_WEIGHTS = {"fitnet": 1.0, "at": 1000.0}  # mdistiller's AT weight; FitNets' MSE on these models: see docs


class DistillParams(StrategyParams):
    """Parameters of ``distill``; the student is ``model``."""

    teacher: str | None = Field(None, description="teacher checkpoint; unset: train teacher_model first")
    teacher_model: str | None = Field(None, description="model trained as the teacher stage (default model.name)")
    teacher_kwargs: dict[str, Any] = Field(default_factory=dict)
    teacher_epochs: int | None = Field(None, ge=1, description="epochs of the teacher stage (default train.epochs)")
    temperature: float = Field(4.0, gt=0.0, description="softmax temperature T")
    alpha: float = Field(0.9, ge=0.0, le=1.0, description="weight of the teacher's logit term; 1 − alpha: the labels' CE")
    loss: str = Field("kd", description="logit loss: kd (Hinton), dkd (decoupled KD), dist (DIST) or a plugin's")
    dkd_alpha: float = Field(1.0, ge=0.0, description="dkd: weight of the target-class term (TCKD)")
    dkd_beta: float = Field(8.0, ge=0.0, description="dkd: weight of the non-target-class term (NCKD)")
    dist_beta: float = Field(1.0, ge=0.0, description="dist: weight of the inter-class relation")
    dist_gamma: float = Field(1.0, ge=0.0, description="dist: weight of the intra-class relation")
    loss_kwargs: dict[str, Any] = Field(default_factory=dict, description="arguments of a plugin's logit loss")
    feature: str = Field("none", pattern="^(none|fitnet|at)$",
                         description="feature loss: none, fitnet (learned adapter + MSE) or at (attention transfer)")
    feature_weight: float | None = Field(None, ge=0.0, description="weight of the feature loss (fitnet 1, at 1000)")
    student_layer: str = Field("", description="student layer whose output is matched; empty: the classifier's input")
    teacher_layer: str = Field("", description="teacher layer to match; empty: the classifier's input")
    mix: str = Field("none", pattern="^(none|mixup|cutmix)$",
                     description="function matching (Beyer 2022): mix every batch, the teacher labels the mixed images")
    mix_alpha: float = Field(1.0, gt=0.0, description="Beta(alpha, alpha) of the mixing ratio")

    @field_validator("loss")
    @classmethod
    def _known_loss(cls, name: str) -> str:
        from vistrain.plugins import registry

        registry("distill_loss").get(name)  # an unknown name: one line with the names there are
        return name

    def logit_kwargs(self) -> dict[str, Any]:
        """The arguments of the chosen logit loss."""
        if self.loss == "dkd":
            return {"alpha": self.dkd_alpha, "beta": self.dkd_beta, **self.loss_kwargs}
        if self.loss == "dist":
            return {"beta": self.dist_beta, "gamma": self.dist_gamma, **self.loss_kwargs}
        return dict(self.loss_kwargs)

    def describe(self) -> str:
        parts = ([] if self.loss == "kd" else [self.loss]) + [f"T={self.temperature:g}", f"alpha={self.alpha:g}"]
        if self.feature != "none":
            parts.append(f"{self.feature} x{self.weight():g}")
        if self.mix != "none":
            parts.append(f"function matching ({self.mix})")
        return ", ".join(parts)

    def weight(self) -> float:
        return self.feature_weight if self.feature_weight is not None else FEATURE_WEIGHTS.get(self.feature, 0.0)


def check_layers(ctx: RunContext, p: DistillParams) -> None:
    """Before any stage trains: the student and teacher layers exist (models built aside, RNG untouched)."""
    if p.feature == "none":
        return
    from vistrain.models.factory import create_model, load_model

    source = ctx.data.source
    with torch.random.fork_rng(devices=[]):
        student = create_model(ctx.config.model, len(ctx.data.classes), source.image_size, source.channels)[0]
        FeatureTap(student, p.student_layer, "student").remove()
        if p.teacher is None:
            teacher = create_model(model_config(ctx, p.teacher_model, p.teacher_kwargs), len(ctx.data.classes),
                                   source.image_size, source.channels)[0]
        else:
            teacher = load_model(str(Path(p.teacher).expanduser()), torch.device("cpu"), what="teacher checkpoint")[0]
        FeatureTap(teacher, p.teacher_layer, "teacher").remove()


def feature_student(ctx: RunContext, p: DistillParams, model: nn.Module, input_spec: InputSpec,
                    teacher: TeacherView) -> StudentWithTap:
    """The student with its feature tap and (FitNets) adapter, sized from one forward pass of each model."""
    tap = FeatureTap(model, p.student_layer, "student")
    probe = torch.zeros(2, input_spec.channels, input_spec.size, input_spec.size, device=ctx.device)
    was_training = model.training
    with torch.no_grad():
        model.eval()
        model(probe)
        teacher(probe)
    model.train(was_training)
    mine, theirs = tap.features, teacher.tap.features
    if p.feature == "at" and (mine.ndim != 4 or theirs.ndim != 4):
        raise ConfigError(f"attention transfer needs feature maps from both layers: the student's {tap.name} gives "
                          f"{tuple(mine.shape[1:])}, the teacher's {teacher.tap.name} {tuple(theirs.shape[1:])}",
                          hint="choose convolutional layers with strategy.params.student_layer and teacher_layer, "
                               "or use feature: fitnet")
    adapter = FeatureAdapter(tuple(mine.shape), tuple(theirs.shape)).to(ctx.device) if p.feature == "fitnet" else None
    ctx.log(f"distill features: student {tap.name} {tuple(mine.shape[1:])} -> teacher {teacher.tap.name} "
            f"{tuple(theirs.shape[1:])} ({p.feature}{', adapter ' + type(adapter.proj).__name__ if adapter else ''})")
    tap.features = None
    return StudentWithTap(model, tap, adapter)


def run_distill(ctx: RunContext) -> dict[str, Any]:
    """Teacher (a checkpoint or a first stage), then the student on the distillation loss."""
    p: DistillParams = ctx.params
    cfg = ctx.config
    names = (["teacher"] if p.teacher is None else []) + ["student"]
    logit = logit_loss(p.loss, p.logit_kwargs())
    check_layers(ctx, p)
    plan_resume(ctx, names)
    teacher, teacher_input, metrics = obtain_teacher(ctx, p.teacher, model_config(ctx, p.teacher_model, p.teacher_kwargs),
                                                     epochs=p.teacher_epochs or cfg.train.epochs, total=len(names))
    model, spec, input_spec = build_stage_model(ctx, cfg.model)
    view = TeacherView(teacher, teacher_input, input_spec, layer=p.teacher_layer if p.feature != "none" else None)
    trained, extra = model, {}
    if p.feature != "none":
        trained = feature_student(ctx, p, model.to(ctx.device), input_spec, view)
        if trained.adapter is not None:
            extra["distill_adapter"] = trained.adapter
    augment = None
    if p.mix != "none":  # every batch mixed; the teacher labels the mixed images
        key = "mixup" if p.mix == "mixup" else "cutmix"
        augment = cfg.augment.model_copy(update={f"{key}_alpha": p.mix_alpha, f"{key}_prob": 1.0,
                                                 ("cutmix" if key == "mixup" else "mixup") + "_alpha": 0.0})
    loss = DistillationLoss(view, p.temperature, p.alpha, logit, student=trained if p.feature != "none" else None,
                            feature=p.feature, feature_weight=p.weight())
    result = run_stage(ctx, Stage("student", trained, spec, input_spec, epochs=cfg.train.epochs, loss=loss,
                                  augment=augment, prefix="student-", index=len(names), total=len(names),
                                  save_model=model if trained is not model else None, extra_modules=extra,
                                  description=f"distill: student {cfg.model.name} from the teacher ({p.describe()})"))
    return {**result.metrics, **metrics}
