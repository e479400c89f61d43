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


def average_command(
    checkpoints: list[Path] = typer.Argument(..., help="Two or more checkpoints of one model, e.g. a run's "
                                             "checkpoints/step-*.pt or the best.pt of several seeds."),
    out: Path = typer.Option(..., "--out", "-o", help="The averaged checkpoint to write."),
    data: Optional[str] = typer.Option(None, "--data", "-d", help="Dataset whose training split recomputes "
                                       "BatchNorm statistics (default: the checkpoints' own)."),
    update_bn: bool = typer.Option(True, "--update-bn/--no-update-bn", help="Recompute BatchNorm statistics."),
    device: str = typer.Option("auto", "--device"),
) -> None:
    """Average checkpoints' weights uniformly (BatchNorm statistics recomputed) and report the val top-1 of
    each input and of the average."""
    from vistrain.averaging import average_checkpoints
    from vistrain.checkpoint import trained_on
    from vistrain.durable import atomic_torch_save
    from vistrain.inference import evaluate_checkpoint

    result = average_checkpoints(list(checkpoints), data_spec=data, update_bn=update_bn, device=device)
    atomic_torch_save(result.ckpt, out)
    bn = (f"; BatchNorm statistics recomputed on {result.bn_images} training images" if result.bn_images
          else "" if update_bn else "; BatchNorm statistics averaged (--no-update-bn)")
    typer.echo(f"wrote {out}: the average of {len(result.sources)} checkpoints{bn}")
    spec = data or trained_on(result.ckpt)
    if spec:
        for path in [*checkpoints, out]:
            r = evaluate_checkpoint(path, spec, split="val", device=device)
            typer.echo(f"  val top-1 {100 * r['top1']:.2f}%  {path}")
