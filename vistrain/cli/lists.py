"""``vistrain strategies list`` and the registry tables every list command prints: fast, no torch import."""

from __future__ import annotations

from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

strategies_app = typer.Typer(no_args_is_help=True)


def print_table(table: Table) -> None:
    """Print a rich table: as wide as the terminal when interactive; never folded or cut when piped,
    so ``vistrain ... list | grep`` sees each row on one line whatever else is installed."""
    import sys

    Console(width=None if sys.stdout.isatty() else 100_000).print(table)


def _source(plugin: str) -> str:
    from vistrain.plugins import is_builtin

    return "builtin" if is_builtin(plugin) else f"plugin:{plugin}"


def print_registry(kind: str, pattern: str | None, extra_rows: list[tuple[str, str, str]] | None = None) -> None:
    """Print a registry as a table of name, source and description."""
    from vistrain.plugins import registry

    table = Table(box=None, pad_edge=False)
    table.add_column("name", style="bold")
    table.add_column("source")
    table.add_column("description")
    entries = registry(kind).match(pattern)
    for e in entries:
        table.add_row(e.name + (":ARG" if e.meta.get("takes_arg") else ""), _source(e.plugin), e.description)
    for row in extra_rows or []:
        table.add_row(*row)
    if not entries and not extra_rows:
        typer.echo(f"no {kind}s match {pattern!r}")
        return
    print_table(table)


@strategies_app.command("list")
def strategies_list(pattern: Optional[str] = typer.Argument(None, help="Wildcard.")) -> None:
    """List training strategies."""
    print_registry("strategy", pattern)
