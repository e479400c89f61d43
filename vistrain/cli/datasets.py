"""``vistrain datasets list|check|pack``: what datasets there are, which images of one are broken, and shards."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

app = typer.Typer(no_args_is_help=True)


@app.command("list")
def datasets_list(pattern: Optional[str] = typer.Argument(None, help="Wildcard.")) -> None:
    """List datasets."""
    from vistrain.cli.lists import print_registry

    print_registry("dataset", pattern)


def _config(spec: str, set_: list[str], download: bool):
    from vistrain.config import resolve_config

    return resolve_config(None, {"data.name": spec, "data.download": True if download else None}, set_).data


def progress_bar():
    """A progress bar on stderr in a terminal; nothing when piped (plain result lines only)."""
    import sys

    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    transient=True, console=Console(stderr=True), disable=not sys.stderr.isatty())


_CHECKED = None


def _check_init(images) -> None:
    global _CHECKED
    import cv2

    cv2.setNumThreads(1)
    _CHECKED = images


def _check_chunk(bounds: tuple[int, int]) -> list[tuple[str, str]]:
    from vistrain.data.decode import ImageDecodeError, decode

    broken = []
    for i in range(*bounds):
        try:
            data = _CHECKED.raw(i)
            if data is None:
                _CHECKED.image(i)
            else:
                decode(data, repr(_CHECKED.name(i)))
        except ImageDecodeError as exc:
            broken.append((_CHECKED.name(i), str(exc)))
    return broken


@app.command("check")
def datasets_check(
    spec: str = typer.Argument(..., help="A dataset spec, e.g. imagefolder:DIR or webdataset:PATTERN."),
    workers: int = typer.Option(0, "--workers", "-j", min=0, help="Processes decoding (0: one per core)."),
    set_: list[str] = typer.Option([], "--set", help="Config keys of the data section, e.g. data.label_column=y."),
    download: bool = typer.Option(False, "--download", help="Allow downloading the dataset."),
) -> None:
    """Decode every image of a dataset (in parallel) and list the ones that cannot be read; exit 1 if any."""
    import multiprocessing
    import os
    import time
    from concurrent.futures import ProcessPoolExecutor

    from vistrain.data.prepare import load_source

    source = load_source(spec, _config(spec, set_, download))
    images = source.all_images()
    n = len(images)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    jobs = workers or cores
    chunk = max(16, min(1024, n // (jobs * 8) or 1))
    chunks = [(a, min(n, a + chunk)) for a in range(0, n, chunk)]
    broken: list[tuple[str, str]] = []
    t0 = time.perf_counter()
    ctx = multiprocessing.get_context("forkserver")
    with progress_bar() as bar, ProcessPoolExecutor(jobs, mp_context=ctx, initializer=_check_init,
                                                 initargs=(images,)) as pool:
        task = bar.add_task(f"checking {source.name}", total=n)
        for (a, b), found in zip(chunks, pool.map(_check_chunk, chunks)):
            broken += found
            bar.advance(task, b - a)
    seconds = time.perf_counter() - t0
    for name, why in broken:
        typer.echo(f"{name}: {why}")
    typer.echo(f"{source.name}: {n} images decoded in {seconds:.1f} s with {jobs} process(es); "
               f"{len(broken)} unreadable" + (" (listed above)" if broken else ""))
    if broken:
        raise typer.Exit(1)


@app.command("pack")
def datasets_pack(
    spec: str = typer.Argument(..., help="A dataset spec, e.g. imagefolder:DIR."),
    to: Path = typer.Option(..., "--to", help="Folder for the shards (train-000000.tar..., val-... and test-... "
                            "where the dataset has those splits, classes.txt)."),
    size: int = typer.Option(256, "--size", min=8, help="Shorter side in pixels at most (aspect ratio kept)."),
    quality: int = typer.Option(90, "--quality", min=1, max=100, help="JPEG quality."),
    shard_mb: float = typer.Option(256.0, "--shard-mb", min=0.01, help="Shard size in MB at most."),
    set_: list[str] = typer.Option([], "--set", help="Config keys of the data section."),
    download: bool = typer.Option(False, "--download", help="Allow downloading the dataset."),
) -> None:
    """Write a dataset as WebDataset shards, resized: the fast format for repeated training (webdataset:...)."""
    from vistrain.data.prepare import load_source
    from vistrain.data.shards import pack, shard_pattern
    from vistrain.errors import OutputError

    source = load_source(spec, _config(spec, set_, download))
    to = to.expanduser()
    try:
        to.mkdir(parents=True, exist_ok=True)
        (to / "classes.txt").write_text("".join(f"{c}\n" for c in source.classes), encoding="utf-8")
    except OSError as exc:
        raise OutputError(f"cannot write {to}: {exc.strerror or exc}", hint="choose a writable --to folder") from None
    parts = [(prefix, images) for prefix, images in (("train", source.train), ("val", source.val),
                                                     ("test", source.test)) if images is not None]
    with progress_bar() as bar:
        for prefix, images in parts:
            task = bar.add_task(f"packing {prefix}", total=len(images))
            paths = pack(images, to, prefix, size=size, quality=quality, shard_mb=shard_mb,
                         progress=lambda k, task=task: bar.advance(task, k))
            typer.echo(f"{prefix}: {len(images)} images in {len(paths)} shard(s): webdataset:{shard_pattern(paths)}")
    if len(parts) > 1:
        typer.echo(f"the shards with their {' and '.join(p for p, _ in parts[1:])} split(s): webdataset:{to}")
