"""``vistrain attach RUN_DIR``: watch a run folder's events in the dashboard (live while it runs)."""

from __future__ import annotations

from pathlib import Path

import typer


def attach(
    run_dir: Path = typer.Argument(..., help="A run folder (the one 'vistrain run' printed), e.g. runs/NAME."),
) -> None:
    """Open the dashboard on RUN_DIR/events.jsonl; follows a live run, replays a finished one."""
    from vistrain.tui import attach_dashboard

    attach_dashboard(run_dir)
