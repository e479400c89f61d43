"""``vistrain tensorboard-export RUN_DIR``: scalars for runs made before the plugin was installed."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def export(
    run_dir: Path = typer.Argument(..., help="A run folder with events.jsonl."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Log folder (default RUN_DIR/tensorboard)."),
) -> None:
    """Replay a run's events.jsonl into TensorBoard scalars; view them with 'tensorboard --logdir RUN_DIR'."""
    from vistrain import runfolder
    from vistrain_tensorboard.scalars import SUBDIR, ScalarWriter

    folder = runfolder.existing(run_dir, hint="pass a run folder written by vistrain run")
    events, skipped = runfolder.read_events(folder.events)
    log_dir = out or folder.path / SUBDIR
    writer = ScalarWriter(log_dir)
    try:
        for event in events:
            writer.write(event)
    finally:
        writer.close()
    torn = f" ({skipped} unreadable line(s) skipped)" if skipped else ""
    typer.echo(f"wrote scalars of {len(events)} events to {log_dir}{torn}")
