"""``vistrain attach RUN_DIR``: watch a run folder's events in the dashboard (live while it runs), or a tune study."""

from __future__ import annotations

from pathlib import Path

import typer


def attach(
    run_dir: Path = typer.Argument(..., help="A run folder (the one 'vistrain run' printed), e.g. runs/NAME, or a "
                                   "'vistrain tune' study folder, e.g. runs/tune."),
) -> None:
    """Open the dashboard on RUN_DIR/events.jsonl; follows a live run, replays a finished one. On a study folder:
    its trials, the best so far and the running trial's curves."""
    from vistrain.tui import attach_dashboard

    attach_dashboard(run_dir)
