"""``vistrain models list|info|knn-eval``."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from vistrain.cli.lists import print_registry

app = typer.Typer(no_args_is_help=True)


@app.command("list")
def models_list(
    pattern: Optional[str] = typer.Argument(None, help="Wildcard, e.g. 'vgg*' or 'timm:*resnet*'."),
    timm: Optional[bool] = typer.Option(None, "--timm/--no-timm",
                                        help="Also search timm's models (default: when a PATTERN is given)."),
) -> None:
    """List built-in, plugin and timm models, with wildcards."""
    search_timm = bool(pattern) if timm is None else timm
    local = None if pattern and pattern.startswith("timm:") else pattern
    rows: list[tuple[str, str, str]] = []
    if search_timm:
        try:  # importing timm imports torch: done only when asked, so the plain list stays fast
            from vistrain.models.timm_backbones import list_timm

            rows = [(f"timm:{name}", "timm", "") for name in list_timm(pattern)]
        except ImportError:
            rows = []
    if local is None and pattern:
        print_registry("model", "timm", rows)
    else:
        print_registry("model", local, rows)


def _parse_input(text: str) -> tuple[int, int, int]:
    try:
        parts = tuple(int(p) for p in text.lower().split("x"))
    except ValueError:
        parts = ()
    if len(parts) != 3 or min(parts) < 1:
        from vistrain.errors import ConfigError

        raise ConfigError(f"--input {text!r} is not CxHxW", hint="e.g. --input 3x224x224")
    return parts  # type: ignore[return-value]


def _fmt(n: int) -> str:
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)


@app.command("info")
def models_info(
    name: str = typer.Argument(..., help="Model name, e.g. vgg16 or timm:resnet18."),
    input: Optional[str] = typer.Option(None, "--input", help="Input shape CxHxW (default: the model's)."),
    classes: int = typer.Option(10, "--classes", min=1, help="Number of classes (sets the head)."),
    set_: list[str] = typer.Option([], "--set", help="Model kwargs, e.g. --set lrn=false"),
) -> None:
    """Per-layer table: output shape, parameters, FLOPs, receptive field and jump; totals at the end."""
    from vistrain.cli.lists import print_table
    from rich.table import Table

    from vistrain.errors import ConfigError
    from vistrain.plugins import registry

    entry, _arg = registry("model").get(name)
    meta = entry.meta
    if input:
        c, h, w = _parse_input(input)
    else:
        c, h = int(meta.get("in_chans") or 3), int(meta.get("input_size") or 28)
        w = h
    import yaml

    kwargs = {}
    for item in set_:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--set {item!r} is not KEY=VALUE", hint="e.g. --set lrn=false")
        kwargs[key.removeprefix("model.kwargs.")] = yaml.safe_load(value)
    if meta.get("family") == "knn":
        raise ConfigError("k-NN has no layers: it stores the training images and compares against all of them",
                          hint="inspect the backbone instead, e.g. 'vistrain models info lenet5'")
    import torch

    from vistrain.models.factory import build_from_spec
    from vistrain.models.inspect import GLOBAL, summarize

    # The meta device gives shapes and FLOPs without allocating weights (VGG-16 at 224 in a second).
    with torch.device("meta"):
        model = build_from_spec({"name": name, "num_classes": classes, "in_chans": c, "input_size": h,
                                 "kwargs": kwargs})
    summary = summarize(model, (c, h, w))
    table = Table(box=None, pad_edge=False)
    for col in ("layer", "type", "output", "params", "FLOPs", "RF", "jump"):
        table.add_column(col, justify="right" if col in ("params", "FLOPs", "RF", "jump") else "left")
    for row in summary.layers:
        rf = "all" if row.rf == GLOBAL else str(row.rf)
        table.add_row(row.name, row.kind, "x".join(map(str, row.out_shape)), f"{row.params:,}" if row.params else "",
                      _fmt(row.flops) if row.flops else "", rf, str(row.jump))
    print_table(table)
    typer.echo(f"{name} on {c}x{h}x{w}, {classes} classes: {summary.total_params:,} params "
               f"({summary.trainable_params:,} trainable), {_fmt(summary.total_flops)} FLOPs per image "
               f"(a multiply-add counts 2); RF 'all' = every output sees the whole input")


@app.command("knn-eval")
def models_knn_eval(
    checkpoint: Path = typer.Argument(..., help="A vistrain checkpoint whose model has forward_features()."),
    data: Optional[str] = typer.Option(None, "--data", "-d", help="Dataset (default: the checkpoint's)."),
    k: int = typer.Option(3, "--k", min=1, help="Neighbours that vote."),
    metric: str = typer.Option("l2", "--metric", help="l2 or cosine."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda..."),
) -> None:
    """k-NN accuracy of a checkpoint's embeddings: memorise the train split, classify the val split."""
    from vistrain.inference import knn_eval_checkpoint
    from vistrain.listeners.console import shows_top5

    r = knn_eval_checkpoint(checkpoint, data, k=k, metric=metric, device=device)
    top5 = f"  top-5 {100 * r['top5']:.2f}%" if shows_top5(r["num_classes"]) else ""
    typer.echo(f"{r['dataset']} [val] {r['num_samples']} images, k={r['k']} {r['metric']} on "
               f"{r['embedding_dim']}-d features of {r['references']} references: top-1 {100 * r['top1']:.2f}%{top5}")
