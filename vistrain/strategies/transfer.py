"""``transfer``: reuse a trained backbone for new classes, as a linear probe or by fine-tuning.

The source is a vistrain checkpoint (its architecture and input normalisation are kept) or a
weights file for ``model.name`` (a built-in or ``timm:NAME``). Either way the head is replaced for
the new classes; an RGB stem on grayscale data and other input sizes are adapted as ``--pretrained``
does. ``probe`` trains only the head (backbone frozen, BatchNorm statistics included), optionally
on cached backbone features; ``finetune`` trains everything with the backbone's LR scaled by
``backbone_lr_mult``, after ``freeze_epochs`` of head-only training.

The probe reads the penultimate features (LeNet-5's 84-d FC output, timm's pre-logits) and, by
default, trains its head on them cached without augmentation at ``probe_lr_mult`` (10) times
``optim.lr``: at the network's LR a fresh linear head underfits short schedules (LeNet-5 mnist5k ->
digits, 100 labels: 93 % train top-1 after 40 epochs), and jitter pushed through a frozen backbone
only moves the features a linear head cannot follow.
"""

from __future__ import annotations

from typing import Any, Literal

import torch
from pydantic import Field
from torch import nn

from vistrain.data.pipeline import InputSpec, TensorBatchLoader
from vistrain import checkpoint
from vistrain.errors import CheckpointError
from vistrain.models.factory import load_model
from vistrain.strategies.base import RunContext
from vistrain.strategies.params import StrategyParams
from vistrain.strategies.stages import Stage, build_stage_model, eval_loader, plan_resume, run_stage


class TransferParams(StrategyParams):
    """Parameters of ``transfer``."""

    source: str = Field(description="a vistrain checkpoint, or a weights file (.safetensors/.pth) for model.name")
    mode: Literal["probe", "finetune"] = "finetune"
    backbone_lr_mult: float = Field(0.1, ge=0.0, description="finetune: backbone LR = head LR x this")
    freeze_epochs: int = Field(0, ge=0, description="finetune: head-only epochs before everything trains")
    cache_features: bool = Field(True, description="probe: compute backbone features once (no augmentation); "
                                                   "false: every epoch through the frozen backbone, augmented")
    probe_lr_mult: float = Field(10.0, gt=0.0, description="probe: head LR = optim.lr x this (a fresh linear head "
                                                           "on frozen features needs a larger step than a network)")


class FrozenParts(nn.Module):
    """Wraps a model so *frozen* submodules get no gradients and stay in eval mode (BatchNorm stats kept).

    Checkpoints unwrap it (``.module``), so they hold the plain model.
    """

    def __init__(self, module: nn.Module, frozen: Sequence[nn.Module]):
        super().__init__()
        self.module = module
        self.frozen = list(frozen)
        for part in self.frozen:
            for p in part.parameters():
                p.requires_grad_(False)

    def train(self, mode: bool = True):
        super().train(mode)
        for part in self.frozen:
            part.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)


def split_head(model: nn.Module) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(backbone parameters, head parameters): the head is ``get_classifier()`` or ``classifier``."""
    head = model.get_classifier() if hasattr(model, "get_classifier") else getattr(model, "classifier", None)
    if not isinstance(head, nn.Module):
        raise CheckpointError(f"{type(model).__name__} has no classifier head to replace",
                              hint="use a model with reset_classifier() (every built-in and timm model has one)")
    head_ids = {id(p) for p in head.parameters()}
    backbone = [p for p in model.parameters() if id(p) not in head_ids]
    return backbone, list(head.parameters())


def _read_source(path: str) -> dict | None:
    """The checkpoint dict when *path* is a vistrain checkpoint, else None (a plain weights file)."""
    if path.endswith(".safetensors"):
        return None
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - not a torch file: load_pretrained reports it properly
        return None
    return ck if checkpoint.is_checkpoint(ck) else None


def source_model(ctx: RunContext, path: str) -> tuple[nn.Module, dict[str, Any], InputSpec]:
    """The source's backbone with a fresh head for this run's classes: (model, spec, input spec)."""
    from pathlib import Path

    if not Path(path).expanduser().is_file():
        raise CheckpointError(f"transfer source {path!r} not found",
                              hint="set strategy.params.source to runs/NAME/checkpoints/best.pt or a weights file")
    path = str(Path(path).expanduser())
    ck = _read_source(path)
    num_classes = len(ctx.data.classes)
    if ck is not None:  # keep the source's architecture and the input it was trained on
        model, ck, input_spec = load_model(checkpoint.upgrade(ck, repr(path)), what=f"transfer source {path!r}")
        spec = {**checkpoint.model_description(ck)[0], "num_classes": num_classes}
        ctx.log(f"transfer: {spec['name']} from checkpoint {path} ({len(checkpoint.classes_of(ck))} source classes)")
    else:
        model_cfg = ctx.config.model.model_copy(update={"pretrained": path})
        model, spec, input_spec = build_stage_model(ctx, model_cfg)
        ctx.log(f"transfer: {spec['name']} from weights {path}")
    if not hasattr(model, "reset_classifier"):
        raise CheckpointError(f"model {spec['name']!r} cannot replace its head (no reset_classifier)")
    model.reset_classifier(num_classes)  # always a fresh head, even for the same number of classes
    return model.to(ctx.device), spec, input_spec


def head_only(model: nn.Module) -> FrozenParts:
    """*model* with everything but its head frozen and kept in eval mode."""
    backbone, head = split_head(model)
    head_ids = {id(p) for p in head}
    frozen = [m for m in model.modules() if m is not model and not any(id(p) in head_ids for p in m.parameters())
              and not any(True for _ in m.children())]  # leaf modules outside the head
    wrapped = FrozenParts(model, frozen)
    for q in backbone:
        q.requires_grad_(False)
    return wrapped


@torch.no_grad()
def backbone_features(ctx: RunContext, model: nn.Module, input_spec: InputSpec, images) -> tuple[torch.Tensor, torch.Tensor]:
    """Penultimate features of every image (eval mode, no augmentation) and their labels."""
    model.eval()
    loader = eval_loader(ctx, images, input_spec)
    feats, labels = [], []
    for x, y in loader:
        x = x.to(ctx.device)
        if hasattr(model, "forward_head"):  # timm
            f = model.forward_head(model.forward_features(x), pre_logits=True)
        else:
            f = model.forward_features(x)
        feats.append(f.flatten(1).float().cpu())
        labels.append(y)
    return torch.cat(feats), torch.cat(labels)


def _cached_probe(ctx: RunContext, model, spec, input_spec, p: TransferParams) -> Stage:
    cfg = ctx.config
    head = model.get_classifier() if hasattr(model, "get_classifier") else model.classifier
    xtr, ytr = backbone_features(ctx, model, input_spec, ctx.data.train)
    xva, yva = backbone_features(ctx, model, input_spec, ctx.data.val)
    loaders = (TensorBatchLoader(xtr.to(ctx.device), ytr.to(ctx.device), cfg.data.batch_size, True, seed=cfg.train.seed),
               TensorBatchLoader(xva.to(ctx.device), yva.to(ctx.device), cfg.data.eval_batch_size, False))
    ctx.log(f"transfer: cached {len(xtr)}+{len(xva)} backbone features of width {xtr.shape[1]}")
    return Stage("probe", head, spec, input_spec, epochs=cfg.train.epochs, loaders=loaders, save_model=model,
                 param_groups=[{"params": list(head.parameters()), "lr_mult": p.probe_lr_mult}],
                 save_spec=(spec, input_spec), prefix="probe-",
                 description=f"transfer probe: head of {spec['name']} on cached features")


def run_transfer(ctx: RunContext) -> dict[str, Any]:
    """Probe or fine-tune the source model on this run's labelled split."""
    p: TransferParams = ctx.params
    cfg = ctx.config
    model, spec, input_spec = source_model(ctx, p.source)
    if p.mode == "probe":
        plan_resume(ctx, ["probe"])
        if p.cache_features:
            stage = _cached_probe(ctx, model, spec, input_spec, p)
        else:
            _, head = split_head(model)
            stage = Stage("probe", head_only(model), spec, input_spec, epochs=cfg.train.epochs, prefix="probe-",
                          save_model=model, param_groups=[{"params": head, "lr_mult": p.probe_lr_mult}], description=f"transfer probe: training the head of {spec['name']}")
        return run_stage(ctx, stage).metrics
    names = (["head"] if p.freeze_epochs else []) + ["finetune"]
    plan_resume(ctx, names)
    if p.freeze_epochs:
        run_stage(ctx, Stage("head", head_only(model), spec, input_spec, epochs=p.freeze_epochs, prefix="head-",
                             save_model=model, final=False, total=2,
                             description=f"transfer: {p.freeze_epochs} head-only epochs of {spec['name']}"))
        for q in model.parameters():
            q.requires_grad_(True)
    backbone, head = split_head(model)
    groups = [{"params": backbone, "lr_mult": p.backbone_lr_mult}, {"params": head}]
    result = run_stage(ctx, Stage("finetune", model, spec, input_spec, epochs=cfg.train.epochs, param_groups=groups,
                                  prefix="finetune-", index=len(names), total=len(names),
                                  description=f"transfer finetune: {spec['name']}, backbone LR x{p.backbone_lr_mult:g}"))
    return result.metrics
