"""``vistrain models ...``."""

from __future__ import annotations

from typing import Optional

import typer

from vistrain.cli.lists import print_registry

app = typer.Typer(no_args_is_help=True)


@app.command("list")
def models_list(pattern: Optional[str] = typer.Argument(None, help="Wildcard, e.g. 'vgg*'.")) -> None:
    """List models, with wildcards."""
    print_registry("model", pattern)
