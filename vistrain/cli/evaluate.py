"""``vistrain eval`` and ``vistrain predict``: use a checkpoint on a dataset or on image files."""

from __future__ import annotations

from pathlib import Path

import typer


def eval_command(
    checkpoint: Path = typer.Argument(..., help="A vistrain checkpoint, e.g. runs/NAME/checkpoints/best.pt."),
    data: str = typer.Option(..., "--data", "-d", help="Dataset spec, e.g. mnist5k or imagefolder:DIR."),
    split: str = typer.Option("auto", "--split", help="auto, val, test or all (auto: the training dataset's "
                              "held-out test split, or val when the run had none; another dataset's test split, else all)."),
    batch_size: int = typer.Option(512, "--batch-size", "-b", min=1),
    device: str = typer.Option("auto", "--device"),
    download: bool = typer.Option(False, "--download", help="Allow downloading the dataset."),
) -> None:
    """Evaluate a checkpoint: top-1/top-5 and loss, mapping dataset classes onto the checkpoint's by name."""
    from vistrain.inference import evaluate_checkpoint

    from vistrain.listeners.console import shows_top5

    result = evaluate_checkpoint(checkpoint, data, split=split, batch_size=batch_size, device=device, download=download)
    top5 = f"  top-5 {100 * result['top5']:.2f}%" if shows_top5(result["num_classes"]) else ""
    typer.echo(f"{result['dataset']} [{result['split']}] {result['num_samples']} images: "
               f"top-1 {100 * result['top1']:.2f}%{top5}  loss {result['loss']:.4f}")
    for note in result.get("notes", []):
        typer.echo(f"warning: {note}", err=True)
    if result["skipped"]:
        typer.echo(f"warning: skipped {len(result['skipped'])} unreadable image(s): "
                   + ", ".join(result["skipped"][:5]), err=True)


def predict_command(
    checkpoint: Path = typer.Argument(..., help="A vistrain checkpoint."),
    images: list[Path] = typer.Argument(..., help="Image files."),
    top_k: int = typer.Option(5, "--top-k", "-k", min=1, help="How many classes to print per image."),
    device: str = typer.Option("auto", "--device"),
) -> None:
    """Print the top-k classes and probabilities for each image."""
    from vistrain.errors import DataError
    from vistrain.inference import predict_files

    results, failed = predict_files(checkpoint, images, top_k=top_k, device=device)
    for path, preds in results:
        typer.echo(f"{path}: " + ", ".join(f"{name} {100 * p:.1f}%" for name, p in preds))
    if failed:
        raise DataError(f"could not read {len(failed)} image(s): {', '.join(failed[:5])}",
                        hint="check the files are valid images")
