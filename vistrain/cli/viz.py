"""``vistrain viz weights`` and ``vistrain viz cam``: first-layer weights and Grad-CAM heat maps as PNG grids."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

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

    from vistrain.checkpoint import model_description
    from vistrain.errors import OutputError
    from vistrain.models.factory import load_model
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
    typer.echo(f"wrote {out} ({image.shape[1]}x{image.shape[0]}, first layer of "
               f"{model_description(ckpt)[0]['name']})")


@app.command("cam")
def viz_cam(
    checkpoint: Path = typer.Argument(..., help="A vistrain checkpoint (built-in CNN or timm model)."),
    images: list[Path] = typer.Argument(..., help="Image files."),
    out: Path = typer.Option(Path("gradcam"), "--out", "-o", help="Folder for the grid and one overlay per image."),
    layer: Optional[str] = typer.Option(None, "--layer", help="Layer to explain (default: the last Conv2d); "
                                        "names as in 'vistrain models info'."),
    class_: Optional[str] = typer.Option(None, "--class", help="Class name (or index) to explain; default: the "
                                         "predicted class of each image."),
    device: str = typer.Option("cpu", "--device"),
) -> None:
    """Grad-CAM heat maps over each image for its predicted (or the --class) class, as a grid PNG."""
    from vistrain.errors import OutputError

    if out.suffix.lower() in (".png", ".jpg", ".jpeg") and not out.is_dir():  # 'viz weights --out w.png' is a file
        raise OutputError(f"--out {str(out)!r} names an image file, but viz cam writes a folder (gradcam.png and one "
                          f"overlay per image)", hint=f"give a folder, e.g. --out {out.with_suffix('')}")
    import cv2
    import numpy as np
    import torch

    from vistrain.checkpoint import classes_of
    from vistrain.data.decode import ImageDecodeError, read_image_file
    from vistrain.data.pipeline import ImageTransform
    from vistrain.engine.device import select_device
    from vistrain.errors import DataError, UnknownNameError, suggest
    from vistrain.gradcam import grad_cam, overlay
    from vistrain.models.factory import load_model
    from vistrain.report.figures import image_grid_figure
    from vistrain.report.html import write_bytes

    dev = select_device(device)
    model, ckpt, spec = load_model(checkpoint, dev)
    classes = classes_of(ckpt)
    target = None
    if class_ is not None:
        if class_ in classes:
            target = classes.index(class_)
        elif class_.isdigit() and int(class_) < len(classes):
            target = int(class_)
        else:
            raise UnknownNameError(f"the checkpoint has no class {class_!r}." + suggest(class_, classes),
                                   hint=f"classes: {', '.join(classes[:10])}{'...' if len(classes) > 10 else ''}")
    transform = ImageTransform(spec)
    loaded, failed = [], []
    for path in images:
        try:
            loaded.append((path, transform.to_uint8(read_image_file(path))))
        except ImageDecodeError:
            failed.append(str(path))
    if failed:
        raise DataError(f"could not read {len(failed)} image(s): {', '.join(failed[:5])}",
                        hint="check the files are valid images")
    x = torch.stack([transform.normalise(img) for _, img in loaded]).to(dev)
    result = grad_cam(model, x, layer, target)
    tiles, captions = [], []
    for i, (path, img) in enumerate(loaded):
        cls = result.classes[i]
        pred = int(np.argmax(result.probs[i]))
        over = overlay(img, result.heatmaps[i])
        write_bytes(out / f"{i + 1:02d}-{path.stem}-cam.png", cv2.imencode(".png", cv2.cvtColor(over, cv2.COLOR_RGB2BGR))[1].tobytes())
        tiles += [img, over]
        captions += [f"{path.parent.name[-8:]}/{path.name[:12]}\npred {classes[pred]} {100 * result.probs[i, pred]:.0f}%",
                     f"Grad-CAM: {classes[cls]}\n({100 * result.probs[i, cls]:.0f}%)"]
    grid = write_bytes(out / "gradcam.png", image_grid_figure(tiles, captions, f"Grad-CAM at layer {result.layer}",
                                                               cols=min(8, 2 * len(loaded))))
    typer.echo(f"wrote {grid} and {len(loaded)} overlay(s) in {out} (layer {result.layer}, "
               f"{'class ' + classes[target] if target is not None else 'predicted classes'})")
