"""``vistrain lr-find``: an exponential learning-rate sweep on the run's own config (see :mod:`vistrain.lr_find`)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def lr_find_command(
    ctx: typer.Context,
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="The run's YAML config (then flags, then --set)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model name."),
    data: Optional[str] = typer.Option(None, "--data", "-d", help="Dataset spec."),
    batch_size: Optional[int] = typer.Option(None, "--batch-size", "-b", help="Training batch size."),
    optimizer: Optional[str] = typer.Option(None, "--optimizer", help="sgd, adam, adamw, or a plugin's."),
    set_: list[str] = typer.Option([], "--set", help="KEY=VALUE config override (repeatable)."),
    start_lr: float = typer.Option(1e-7, "--start-lr", min=0.0, help="First learning rate."),
    end_lr: float = typer.Option(10.0, "--end-lr", min=0.0, help="Last learning rate (the sweep stops earlier on divergence)."),
    steps: int = typer.Option(100, "--steps", min=5, max=10000, help="Optimizer steps (one batch each)."),
    suggestion: str = typer.Option("valley", "--suggestion", help="Which suggestion --apply uses: valley, steepest or minimum."),
    out: Path = typer.Option(Path("lr-find.png"), "--out", "-o", help="The plot (PNG)."),
    apply: Optional[Path] = typer.Option(None, "--apply", help="Write the suggestion as optim.lr into this YAML config "
                                         "file (created if missing, other keys kept)."),
    nproc: Optional[int] = typer.Option(None, "--nproc", min=1, help="Sweep with DDP on N local processes."),
) -> None:
    """Sweep the learning rate exponentially on the run's model, data, augmentation and optimizer; print the
    suggestions (valley, steepest, minimum), draw the curve in the terminal and as a PNG."""
    from vistrain.config import build_config, config_layers
    from vistrain.errors import ConfigError

    if suggestion not in ("valley", "steepest", "minimum"):
        raise ConfigError(f"unknown suggestion {suggestion!r}", hint="use valley, steepest or minimum")
    if not 0 < start_lr < end_lr:
        raise ConfigError(f"--start-lr {start_lr:g} must be above 0 and below --end-lr {end_lr:g}")
    flags = {"model.name": model, "data.name": data, "data.batch_size": batch_size, "optim.name": optimizer}
    cfg = build_config(config_layers(config, {k: v for k, v in flags.items() if v is not None}, set_))
    from vistrain.engine.launchenv import env_rank, launched_by_torchrun

    if nproc and nproc > 1 and not launched_by_torchrun():
        from vistrain.cli.run import PREEMPTED_EXIT_CODE, _typed_arguments
        from vistrain.engine import distributed as dist

        argv = _typed_arguments(ctx, exclude={"nproc"})
        raise typer.Exit(dist.launch(nproc, ["lr-find", *argv[1:]], PREEMPTED_EXIT_CODE))
    from vistrain.lr_find import find_lr, plot_png, terminal_plot

    result = find_lr(cfg, start_lr=start_lr, end_lr=end_lr, steps=steps)
    if env_rank() != 0:
        return
    if not result.suggestions:
        raise ConfigError(f"the loss diverged after {len(result.lrs)} step(s), before any suggestion could be made",
                          hint="lower --start-lr, or check the data and model with a short vistrain run")
    chosen = result.suggestions[suggestion]
    how = "diverged" if result.diverged else "reached --end-lr"
    typer.echo(f"lr-find: {len(result.lrs)} steps from {result.lrs[0]:.1e} to {result.lrs[-1]:.1e} ({how}); "
               f"{cfg.model.name} on {cfg.data.name}, {cfg.optim.name}")
    typer.echo(terminal_plot(result, mark=chosen))
    for name in ("valley", "steepest", "minimum"):
        star = "  <- --suggestion" if name == suggestion else ""
        typer.echo(f"  {name:<9} {result.suggestions[name]:.2e}{star}")
    out.parent.mkdir(parents=True, exist_ok=True)
    plot_png(result, out, suggestion)
    typer.echo(f"wrote {out}")
    if apply is not None:
        import os

        import yaml

        doc = yaml.safe_load(apply.read_text()) if apply.exists() else {}
        if not isinstance(doc, dict):
            raise ConfigError(f"{apply} is not a YAML mapping", hint="give a vistrain config file to --apply")
        doc.setdefault("optim", {})["lr"] = float(f"{chosen:.3g}")
        tmp = apply.with_name(f".{apply.name}.tmp-{os.getpid()}")
        tmp.write_text(yaml.safe_dump(doc, sort_keys=False))
        os.replace(tmp, apply)  # the config is whole before and after
        typer.echo(f"wrote optim.lr: {chosen:.3g} to {apply}")
