"""``vistrain eval`` and ``vistrain predict``: use a checkpoint on a dataset or on image files."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def eval_command(
    checkpoint: Path = typer.Argument(..., help="A vistrain checkpoint, e.g. runs/NAME/checkpoints/best.pt."),
    data: str = typer.Option(..., "--data", "-d", help="Dataset spec, e.g. mnist5k or imagefolder:DIR."),
    split: str = typer.Option("auto", "--split", help="auto, val, test or all (auto: the training dataset's "
                              "held-out test split, or val when the run had none; another dataset's test split, else all)."),
    batch_size: int = typer.Option(512, "--batch-size", "-b", min=1),
    device: str = typer.Option("auto", "--device"),
    download: bool = typer.Option(False, "--download", help="Allow downloading the dataset."),
    tta: str = typer.Option("none", "--tta", help="Test-time augmentation: none, flip (image and mirror), crops "
                            "(five crops of the image at size/crop_pct) or crops-flip (ten)."),
    reliability: Optional[Path] = typer.Option(None, "--reliability", help="Write a reliability diagram (PNG)."),
    per_class: bool = typer.Option(False, "--per-class", help="Print each class's precision, recall, F1 and images."),
    workers: Optional[int] = typer.Option(None, "--workers", "-j", min=0, help="Loader workers reading and decoding "
                                          "images from files (default: one per core but one; 0: none)."),
) -> None:
    """Evaluate a checkpoint: top-1/top-5, loss, balanced top-1, macro-F1 and ECE, mapping dataset classes onto the
    checkpoint's by name."""
    from vistrain.inference import evaluate_checkpoint

    from vistrain.listeners.console import shows_top5

    result = evaluate_checkpoint(checkpoint, data, split=split, batch_size=batch_size, device=device, download=download,
                                 tta=tta, num_workers="auto" if workers is None else workers)
    top5 = f"  top-5 {100 * result['top5']:.2f}%" if shows_top5(result["num_classes"]) else ""
    with_tta = f", TTA {tta}" if tta != "none" else ""
    temp = f" at T={result['temperature']:.3g}" if result["temperature"] != 1.0 else ""
    typer.echo(f"{result['dataset']} [{result['split']}{with_tta}] {result['num_samples']} images: "
               f"top-1 {100 * result['top1']:.2f}%{top5}  loss {result['loss']:.4f}  ECE {100 * result['ece']:.2f}%{temp}")
    typer.echo(f"  balanced top-1 {100 * result['balanced_top1']:.2f}%  macro-F1 {100 * result['macro_f1']:.2f}%  "
               f"(mean over classes: recall, and F1 of precision and recall)")
    if per_class:
        from vistrain.metrics import TABLE_HEADER
        from vistrain.report.compare import format_table

        typer.echo(format_table(TABLE_HEADER, result["classes"].table(result["class_names"])))
    if reliability is not None:
        from vistrain.calibration import reliability_png

        reliability_png(result["reliability"], reliability, f"{result['dataset']} [{result['split']}]")
        typer.echo(f"wrote {reliability}")
    for note in result.get("notes", []):
        typer.echo(f"warning: {note}", err=True)
    if result["skipped"]:
        typer.echo(f"warning: skipped {len(result['skipped'])} unreadable image(s): "
                   + ", ".join(result["skipped"][:5]), err=True)


PREDICTION_FORMATS = (".csv", ".json", ".jsonl")


def _write_predictions(predictions, out: Path, bar, task) -> int:
    """Stream *predictions* into *out* (CSV: path, then class and probability of each rank; JSON Lines: one object
    per image; JSON: a list of them) through a temporary file renamed over it at the end. Returns the count."""
    import csv
    import json

    from vistrain.durable import atomic_text_file
    from vistrain.errors import OutputError

    fmt = out.suffix.lower()
    count = 0
    try:
        with atomic_text_file(out, newline="") as fh:
            writer = csv.writer(fh) if fmt == ".csv" else None
            if writer is not None:
                writer.writerow(["path", *(f"{field}_{rank}" for rank in range(1, predictions.top_k + 1)
                                           for field in ("class", "prob"))])
            for path, preds in predictions:
                if writer is not None:
                    writer.writerow([path, *(v for name, p in preds for v in (name, f"{p:.6f}"))])
                else:
                    record = json.dumps({"path": path, "classes": [name for name, _ in preds],
                                         "probs": [round(p, 6) for _, p in preds]})
                    if fmt == ".json":
                        record = ("[\n" if count == 0 else ",\n") + record
                    fh.write(record + ("\n" if fmt == ".jsonl" else ""))
                count += 1
                bar.advance(task)
            if fmt == ".json":
                fh.write("\n]\n" if count else "[]\n")
    except OSError as exc:
        raise OutputError(f"cannot write {out}: {exc.strerror or exc}",
                          hint="choose a writable --out path with room for the predictions") from None
    return count


def predict_command(
    checkpoint: Path = typer.Argument(..., help="A vistrain checkpoint."),
    images: list[Path] = typer.Argument(..., help="Image files and folders (every image below a folder)."),
    top_k: int = typer.Option(5, "--top-k", "-k", min=1, help="How many classes to print per image."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the predictions to a .csv, .json or .jsonl "
                                       "file instead of printing them."),
    batch_size: int = typer.Option(64, "--batch-size", "-b", min=1),
    workers: Optional[int] = typer.Option(None, "--workers", "-j", min=0, help="Loader workers reading and decoding "
                                          "the images (default: one per core but one; 0: none)."),
    tta: str = typer.Option("none", "--tta", help="Test-time augmentation: none, flip, crops or crops-flip "
                            "(as in 'vistrain eval')."),
    device: str = typer.Option("auto", "--device"),
) -> None:
    """Print (or write with --out) the top-k classes and probabilities of each image, in batches read by loader
    workers; the images of a folder in sorted order."""
    from vistrain.cli.datasets import progress_bar
    from vistrain.errors import ConfigError, DataError
    from vistrain.inference import Predictions, image_paths

    if out is not None and out.suffix.lower() not in PREDICTION_FORMATS:
        raise ConfigError(f"--out {str(out)!r}: the file name must end in .csv, .json or .jsonl",
                          hint="e.g. --out predictions.csv")
    paths = image_paths(images)
    predictions = Predictions(checkpoint, paths, top_k=top_k, device=device, batch_size=batch_size,
                              num_workers="auto" if workers is None else workers, tta=tta)
    if out is None:
        for path, preds in predictions:
            typer.echo(f"{path}: " + ", ".join(f"{name} {100 * p:.1f}%" for name, p in preds))
    else:
        out = out.expanduser()
        with progress_bar() as bar:
            count = _write_predictions(predictions, out, bar, bar.add_task("predicting", total=len(predictions)))
        typer.echo(f"wrote {count} prediction(s) to {out}")
    if predictions.failed:
        raise DataError(f"could not read {len(predictions.failed)} image(s): {', '.join(predictions.failed[:5])}"
                        + (" ..." if len(predictions.failed) > 5 else ""),
                        hint="check the files are valid images; the others' predictions are "
                             + ("above" if out is None else f"in {out}"))


def calibrate_command(
    checkpoint: Path = typer.Argument(..., help="A vistrain checkpoint, e.g. runs/NAME/checkpoints/best.pt."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the calibrated checkpoint here "
                                       "(default: the checkpoint itself, replaced atomically)."),
    device: str = typer.Option("auto", "--device"),
) -> None:
    """Fit a softmax temperature on the val split (never the test split) and store it in the checkpoint;
    print the val NLL and ECE before and after, and the test split's, which are only reported."""
    from vistrain.calibration import fit_temperature
    from vistrain.durable import atomic_torch_save
    from vistrain.inference import calibrate_checkpoint

    fit = calibrate_checkpoint(checkpoint, device=device, fit=fit_temperature)
    target = out or checkpoint
    atomic_torch_save(fit.ckpt, target)
    typer.echo(f"temperature {fit.temperature:.4g} fitted on {fit.val_count} val images; wrote {target}")
    for split, (before, after) in fit.report.items():
        typer.echo(f"  {split:<5} NLL {before['loss']:.4f} -> {after['loss']:.4f}   "
                   f"ECE {100 * before['ece']:.2f}% -> {100 * after['ece']:.2f}%   top-1 {100 * after['top1']:.2f}%")
