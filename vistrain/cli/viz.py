"""``vistrain viz weights``: draw a checkpoint's first-layer weights as a PNG grid."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True)


@app.command("weights")
def viz_weights(
    checkpoint: Path = typer.Argument(..., help="A vistrain checkpoint, e.g. runs/NAME/checkpoints/best.pt."),
    out: Path = typer.Option(Path("weights.png"), "--out", "-o", help="Image file to write (.png)."),
    min_tile: int = typer.Option(32, "--tile", min=1, help="Enlarge each tile to at least this many pixels."),
) -> None:
    """Perceptron: one template image per class. CNN: the first conv layer's filters as a grid."""
    import cv2

    from vistrain.errors import OutputError
    from vistrain.inference import load_model
    from vistrain.models.weight_images import weight_image

    model, ckpt, spec = load_model(checkpoint)
    image = weight_image(model, (spec.channels, spec.size, spec.size), min_tile=min_tile)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        ok = cv2.imwrite(str(out), image)
    except (OSError, cv2.error) as exc:
        raise OutputError(f"cannot write {out}: {exc}", hint="choose a writable path ending in .png") from None
    if not ok:
        raise OutputError(f"cannot write {out}", hint="choose a writable path ending in .png")
    typer.echo(f"wrote {out} ({image.shape[1]}x{image.shape[0]}, first layer of {ckpt['model']['name']})")
