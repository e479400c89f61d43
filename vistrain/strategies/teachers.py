"""Where a teacher comes from: a finished checkpoint, or a model trained first as a stage of this run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from vistrain.config import AugmentConfig, ModelConfig
from vistrain.data.pipeline import InputSpec
from vistrain import checkpoint
from vistrain.errors import CheckpointError
from vistrain.models.factory import load_model
from vistrain.strategies.base import RunContext
from vistrain.strategies.stages import Stage, build_stage_model, run_stage


def check_classes(ctx: RunContext, classes: list[str], what: str) -> None:
    """Pre-flight: *what*'s class names must be the data's, in the same order."""
    data = list(ctx.data.classes)
    if list(classes) != data:
        missing = [c for c in data if c not in classes]
        extra = [c for c in classes if c not in data]
        detail = (f"the data has {', '.join(map(repr, missing[:5]))} that it lacks" if missing else
                  f"it has {', '.join(map(repr, extra[:5]))} that the data lacks" if extra else "they are in another order")
        raise CheckpointError(f"{what} and student class names differ: {detail} ({len(classes)} vs {len(data)} classes)",
                              hint="use a teacher trained on the same classes, or train one in this run "
                                   "(leave strategy.params.teacher unset)")


def load_teacher(ctx: RunContext, path: str) -> tuple[nn.Module, dict[str, Any], InputSpec]:
    """A teacher from a vistrain checkpoint, after checking its class names; returns (model, spec, input spec)."""
    path = str(Path(path).expanduser())
    try:
        model, ck, input_spec = load_model(path, ctx.device, what="teacher checkpoint")
    except CheckpointError as exc:
        message = exc.message if exc.message.startswith("teacher") else f"teacher {exc.message}"
        raise CheckpointError(message, hint="set strategy.params.teacher to a checkpoint such as "
                                            "runs/NAME/checkpoints/best.pt") from None
    spec, _input, classes = checkpoint.model_description(ck)
    check_classes(ctx, classes, f"teacher {path!r}")
    ctx.log(f"teacher: {spec['name']} from {path}")
    return model, spec, input_spec


def model_config(ctx: RunContext, name: str | None = None, kwargs: dict[str, Any] | None = None, *,
                 drop_rate: float | None = None, drop_path_rate: float | None = None) -> ModelConfig:
    """The run's model config with another name, kwargs or regularisation (for teachers and students)."""
    cfg = ctx.config.model.model_copy(deep=True)
    if name is not None and name != cfg.name:
        cfg.name, cfg.kwargs, cfg.pretrained = name, {}, None
    if kwargs:
        cfg.kwargs = {**cfg.kwargs, **kwargs}
    if drop_rate is not None:
        cfg.drop_rate = drop_rate
    if drop_path_rate is not None and (cfg.name.startswith("timm:") or cfg.name == "timm"):
        cfg.drop_path_rate = drop_path_rate  # stochastic depth: timm models; built-ins have dropout only
    return cfg


def train_teacher(ctx: RunContext, model_cfg: ModelConfig, *, epochs: int, augment: AugmentConfig | None = None,
                  index: int = 1, total: int = 2) -> tuple[nn.Module, dict[str, Any], InputSpec, dict[str, Any]]:
    """Train a teacher on the labelled split as stage ``teacher`` (``checkpoints/teacher-best.pt``)."""
    model, spec, input_spec = build_stage_model(ctx, model_cfg)
    result = run_stage(ctx, Stage("teacher", model, spec, input_spec, epochs=epochs, augment=augment,
                                  prefix="teacher-", final=False, index=index, total=total,
                                  description=f"teacher: training {model_cfg.name} on {len(ctx.data.train)} labelled images"))
    return model.eval(), spec, input_spec, result.metrics


def obtain_teacher(ctx: RunContext, checkpoint: str | None, model_cfg: ModelConfig, *, epochs: int, total: int,
                   augment: AugmentConfig | None = None) -> tuple[nn.Module, InputSpec, dict[str, Any]]:
    """The teacher from *checkpoint*, else trained from *model_cfg* as stage ``teacher``.

    Returns (model in eval mode, its input spec, ``{"teacher_val_top1": ...}`` when trained here).
    """
    if checkpoint is not None:
        model, _spec, input_spec = load_teacher(ctx, checkpoint)
        return model, input_spec, {}
    model, _spec, input_spec, metrics = train_teacher(ctx, model_cfg, epochs=epochs, augment=augment, total=total)
    return model, input_spec, {"teacher_val_top1": metrics["best_val_top1"]}
