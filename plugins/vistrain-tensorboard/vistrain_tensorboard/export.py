"""``vistrain tensorboard-export RUN_DIR``: scalars for runs made before the plugin was installed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer

from vistrain.errors import DataError


def export(
    run_dir: Path = typer.Argument(..., help="A run folder with events.jsonl."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Log folder (default RUN_DIR/tensorboard)."),
) -> None:
    """Replay a run's events.jsonl into TensorBoard scalars; view them with 'tensorboard --logdir RUN_DIR'."""
    from vistrain.events import from_dict
    from vistrain_tensorboard.scalars import SUBDIR, ScalarWriter

    path = run_dir / "events.jsonl"
    if not path.is_file():
        raise DataError(f"{path} not found", hint="pass a run folder written by vistrain run")
    log_dir = out or run_dir / SUBDIR
    writer = ScalarWriter(log_dir)
    count = 0
    try:
        with path.open(encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    event = from_dict(json.loads(line))
                except (ValueError, TypeError) as exc:
                    raise DataError(f"{path}:{number}: not a vistrain event ({exc})") from None
                writer.write(event)
                count += 1
    finally:
        writer.close()
    typer.echo(f"wrote scalars of {count} events to {log_dir}")
