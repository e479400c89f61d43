"""``vistrain augment list|preview|search``: inspect ops, see a pipeline on real images, search policies."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(no_args_is_help=True)


@app.command("list")
def augment_list(pattern: Optional[str] = typer.Argument(None, help="Wildcard, e.g. 'shear*'.")) -> None:
    """List augmentation ops, their parameters, and which join RandAugment's pool."""
    from vistrain.cli.lists import print_table
    from rich.table import Table

    from vistrain.plugins import is_builtin, registry

    entries = registry("augmentation").match(pattern)
    if not entries:
        typer.echo(f"no augmentations match {pattern!r}")
        return
    table = Table(box=None, pad_edge=False)
    for col in ("name", "source", "pool", "p", "params", "description"):
        table.add_column(col, style="bold" if col == "name" else None)
    for e in entries:
        source = "builtin" if is_builtin(e.plugin) else f"plugin:{e.plugin}"
        table.add_row(e.name, source, "yes" if e.meta.get("randaugment") else "", f"{e.meta.get('p', 1.0):g}",
                      str(e.meta.get("params", "")), e.description)
    print_table(table)
    typer.echo("spec: comma-separated ops, params as KEYvalue, e.g. 'flip-h,crop-pad4,rand-n2-m9'")


@app.command("preview")
def augment_preview(
    spec: Optional[str] = typer.Option(None, "--spec", "-a", help="Pipeline spec or policy YAML (default: run's default)."),
    data: str = typer.Option("mnist5k", "--data", "-d", help="Dataset to take images from."),
    out: Path = typer.Option(Path("augment-preview.png"), "--out", "-o", help="PNG file to write."),
    rows: int = typer.Option(4, "--rows", "-r", min=1, max=64, help="Images (rows)."),
    k: int = typer.Option(6, "--k", "-k", min=1, max=32, help="Augmented versions per image."),
    tile: int = typer.Option(96, "--tile", min=16, max=512, help="Tile side in pixels."),
    seed: int = typer.Option(0, "--seed", help="Seed for image choice and augmentation."),
) -> None:
    """Write a PNG grid: each row an original image then K augmented versions, captioned by op names."""
    import numpy as np

    from vistrain.augment.pipeline import build_pipeline
    from vistrain.augment.preview import preview_grid, save_png
    from vistrain.config import AugmentConfig, DataConfig
    from vistrain.data.prepare import load_source

    spec = AugmentConfig().spec if spec is None else spec
    pipeline = build_pipeline(spec)
    source = load_source(data, DataConfig(name=data))
    pick = np.random.default_rng(seed).choice(len(source.train), size=min(rows, len(source.train)), replace=False)
    images = [np.asarray(source.train.image(int(i))) for i in pick]
    images = [img[..., None] if img.ndim == 2 else img for img in images]
    grid = preview_grid(pipeline, images, k, seed=seed, tile=tile)
    path = save_png(out, grid)
    typer.echo(f"wrote {path} ({grid.shape[1]}x{grid.shape[0]}, {len(images)} rows x {k + 1} tiles, spec {spec!r})")


@app.command("search")
def augment_search(
    data: Optional[str] = typer.Option(None, "--data", "-d", help="Dataset (default: the config's)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Model (default: the config's)."),
    trials: int = typer.Option(8, "--trials", "-t", min=1, help="Policies to try."),
    epochs: int = typer.Option(2, "--epochs", "-e", min=1, help="Training epochs per trial."),
    out: Path = typer.Option(Path("runs/augment-search"), "--out", "-o", help="Search folder (rerun to resume)."),
    subset: bool = typer.Option(False, "--subset", help="Also sample a subset of RandAugment's ops per trial."),
    base: Optional[str] = typer.Option(None, "--base", help="Spec applied before the sampled RandAugment step."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML config for the trials."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed (fixes the sampled policies)."),
    set_: list[str] = typer.Option([], "--set", help="Override any config key, e.g. --set data.batch_size=128."),
    log_every: int = typer.Option(1000, "--log-every", help="Print a progress line every N steps."),
) -> None:
    """Sample RandAugment policies (N, M[, ops]), train each briefly, rank by val top-1, save policy.yaml."""
    from vistrain.policy_search import run_search
    from vistrain.config import resolve_config
    from vistrain.listeners.console import ConsoleReporter

    cfg = resolve_config(config, {"data.name": data, "model.name": model, "train.seed": seed}, set_)
    base_steps = [t for t in base.split(",") if t.strip()] if base else []
    result = run_search(cfg, trials=trials, epochs=epochs, out_dir=out, subset=subset, base=base_steps,
                        listeners=[ConsoleReporter(every=log_every)])
    if result.skipped:
        typer.echo(f"resumed: {result.skipped} trial(s) already in {out / 'trials.jsonl'} were skipped")
    typer.echo("leaderboard (val top-1):")
    for rank, row in enumerate(result.leaderboard, start=1):
        typer.echo(f"  {rank:2d}. trial {row['trial']:3d}  {row['label']:28s} {100 * row['score']:.2f}%")
    typer.echo(f"best policy: {result.policy_path}  (train with: vistrain run --augment {result.policy_path})")
