"""Hook implementations of the example plugin; factories are lazy strings so importing this is cheap."""

from __future__ import annotations

from pathlib import Path

from vistrain.hookspecs import hookimpl


@hookimpl
def register_models(register):
    """Add a small CNN."""
    register("example-cnn", "vistrain_example.models:create_example_cnn", family="example", in_chans=3,
             input_size=32, min_size=8, max_size=512, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25),
             description="example plugin: two conv layers and global pooling")


@hookimpl
def register_datasets(register):
    """Add a generated dataset."""
    register("stripes", "vistrain_example.data:load_stripes", takes_arg=True,
             description="example plugin: stripes in 3 orientations; stripes:SIZE")


@hookimpl
def register_commands(register):
    """Add ``vistrain example-summary``."""
    register("example-summary", "vistrain_example.commands:summary", help="Best epoch of a run (example plugin).")


@hookimpl
def on_event(event):
    """Note the best checkpoint's metric next to it."""
    if event.kind == "checkpoint_saved" and event.is_best:
        run_dir = Path(event.path).parent.parent
        (run_dir / "example-best.txt").write_text(f"epoch {event.epoch}: val top-1 {event.metric}\n")
