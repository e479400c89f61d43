"""The example command."""

from __future__ import annotations

import csv
from pathlib import Path

import typer

from vistrain.errors import DataError


def summary(run_dir: Path = typer.Argument(..., help="A run folder.")) -> None:
    """Print the epoch with the best validation top-1."""
    path = run_dir / "metrics.csv"
    if not path.exists():
        raise DataError(f"{path} not found", hint="pass a run folder written by vistrain run")
    rows = [r for r in csv.DictReader(path.open()) if r.get("val_top1")]
    if not rows:
        raise DataError(f"{path} has no validation rows yet")
    best = max(rows, key=lambda r: float(r["val_top1"]))
    typer.echo(f"best epoch {best['epoch']}: val top-1 {100 * float(best['val_top1']):.2f}%")
