"""Hook implementations. TensorBoard is imported when a run starts, not when vistrain starts."""

from __future__ import annotations

from vistrain.hookspecs import hookimpl

_writer = None  # the ScalarWriter of the run in progress


@hookimpl
def on_event(event):
    """Write the run's scalars under RUN_DIR/tensorboard."""
    global _writer
    if event.kind == "run_started":
        from vistrain_tensorboard.scalars import ScalarWriter

        if _writer is not None:
            _writer.close()
        _writer = ScalarWriter.for_run(event.run_dir)
    if _writer is not None:
        _writer.write(event)
        if event.kind in ("run_finished", "run_failed"):
            _writer.close()
            _writer = None


@hookimpl
def register_commands(register):
    """Add ``vistrain tensorboard-export``; the help is given here so listing imports nothing more."""
    register("tensorboard-export", "vistrain_tensorboard.export:export",
             help="Write TensorBoard scalars for a finished run from its events.jsonl.")
