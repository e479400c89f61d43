"""``vistrain config show``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(no_args_is_help=True)


@app.command("show")
def show(
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML file to resolve on top of the defaults."),
    set_: list[str] = typer.Option([], "--set", help="Override a key: --set train.epochs=5"),
) -> None:
    """Print the configuration as YAML: the defaults, or a file and overrides resolved."""
    from vistrain.config import resolve_config

    typer.echo(resolve_config(config, None, set_).to_yaml(), nl=False)
