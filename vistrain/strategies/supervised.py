"""``supervised``: one stage of plain training on the labelled split."""

from __future__ import annotations

from vistrain.strategies.base import RunContext
from vistrain.strategies.params import StrategyParams
from vistrain.strategies.stages import Stage, build_stage_model, run_stage


class SupervisedParams(StrategyParams):
    """``supervised`` takes no parameters: everything is in the model, data, optim and train sections."""


def run_supervised(ctx: RunContext) -> dict:
    """Train the configured model on the labelled training split, selecting by val top-1."""
    cfg = ctx.config
    model, spec, input_spec = build_stage_model(ctx, cfg.model)
    if getattr(model, "nonparametric", False):  # k-NN memorises instead of descending a gradient
        from vistrain.strategies.nonparametric import fit_nonparametric

        return fit_nonparametric(ctx, model, spec, input_spec)
    result = run_stage(ctx, Stage("supervised", model, spec, input_spec, epochs=cfg.train.epochs,
                                  description=f"supervised: training {cfg.model.name}"))
    return result.metrics
