"""``vistrain export``: write a checkpoint's model as safetensors, TorchScript or ONNX, and check it."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def export_command(
    checkpoint: Path = typer.Argument(..., help="A vistrain checkpoint, e.g. runs/NAME/checkpoints/best.pt."),
    fmt: str = typer.Option("safetensors", "--format", "-f", help="safetensors, torchscript or onnx (onnx needs "
                            "the onnx extra: pip install 'vistrain[onnx]')."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="File to write (default: beside the checkpoint)."),
    batch: int = typer.Option(8, "--batch", min=1, max=256, help="Images in the batch the export is checked on."),
    atol: float = typer.Option(1e-4, "--atol", min=0.0, help="Absolute tolerance of the output check."),
    rtol: float = typer.Option(1e-4, "--rtol", min=0.0, help="Relative tolerance of the output check."),
) -> None:
    """Export, reload the file, and compare its outputs with the checkpoint's on a batch."""
    from vistrain.export import export_checkpoint

    r = export_checkpoint(checkpoint, fmt.lower(), out, batch=batch, atol=atol, rtol=rtol)
    size = r.path.stat().st_size / 1024
    typer.echo(f"wrote {r.path} ({r.format}, {size:.0f} KiB)")
    typer.echo(f"reloaded and checked on {r.batch_source}: max |difference| {r.max_abs_diff:.3g} "
               f"(tolerance atol {r.atol:g} + rtol {r.rtol:g})")
