"""``vistrain config show``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(no_args_is_help=True)


@app.command("show")
def show(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML file to resolve on top of the defaults."),
    data: Optional[str] = typer.Option(None, "--data", "-d", help="Dataset, e.g. imagefolder:DIR: show the recipe "
                                       "it gets (augment.spec and data.resize left to vistrain)."),
    set_: list[str] = typer.Option([], "--set", help="Override a key: --set train.epochs=5"),
) -> None:
    """Print the configuration as YAML: the defaults, or a file and overrides resolved.

    ``augment.spec: auto`` and ``data.resize: auto`` are the dataset's recipe: with ``--data`` (or
    ``data.name`` from the file or ``--set``) the dataset is read and the values picked are shown, and why.
    """
    from vistrain.config import resolve_config

    cfg = resolve_config(config, {"data.name": data}, set_)
    line = None
    if cfg.augment.spec == "auto" or cfg.data.resize == "auto":
        from vistrain.data import recipes
        from vistrain.data.prepare import load_source
        from vistrain.data.source import DataSource

        kind = recipes.declared(cfg.data.name)  # no need to read a dataset that says what it is
        source = (DataSource(cfg.data.name, [], None, recipe=kind) if kind else load_source(cfg.data.name, cfg.data))
        cfg, line = recipes.resolve(cfg, source)
    typer.echo(cfg.to_yaml(), nl=False)
    if line:
        typer.echo(f"# {line}")
