"""``vistrain report`` and ``vistrain compare``: pictures and tables of finished (or running) runs."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer


def report_command(
    run_dir: Path = typer.Argument(..., help="A run folder, e.g. runs/NAME (finished, killed or still going)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="HTML file to write (default RUN_DIR/report.html)."),
    png: Optional[Path] = typer.Option(None, "--png", help="Also write each picture as a PNG into this folder "
                                       "(alone, without the HTML, unless --out is given)."),
    mistakes: int = typer.Option(24, "--mistakes", min=0, max=200, help="How many confidently wrong val images to show."),
    device: str = typer.Option("cpu", "--device", help="Device for predicting the val split."),
) -> None:
    """Write one self-contained HTML report: curves, confusion matrix, mistakes, stages, pseudo labels, config."""
    from vistrain.report.build import build_report

    doc = build_report(run_dir, device=device, mistakes=mistakes)
    if png is not None:
        written = doc.write_pngs(png)
        typer.echo(f"wrote {len(written)} picture(s) to {png}: " + ", ".join(p.name for p in written))
    if out is not None or png is None:
        path = doc.write(out if out is not None else Path(run_dir) / "report.html")
        sections = ", ".join(s.id for s in doc.sections)
        typer.echo(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB; sections: {sections})")


def compare_command(
    run_dirs: list[Path] = typer.Argument(..., help="Two or more run folders."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the overlaid curves: a .png, or an .html page "
                                       "with the table too."),
) -> None:
    """Print final and best metrics, wall time, samples/s and the config keys that differ."""
    from vistrain.errors import ConfigError
    from vistrain.report.compare import compare_runs

    if len(run_dirs) < 2:
        raise ConfigError("compare needs at least two run folders", hint="e.g. vistrain compare runs/A runs/B")
    if out is not None and out.suffix.lower() not in (".png", ".html", ".htm"):
        raise ConfigError(f"--out {out} must end in .png or .html")
    comparison = compare_runs(run_dirs)
    typer.echo(comparison.text())
    if out is not None:
        doc = comparison.document()
        if out.suffix.lower() == ".png":
            from vistrain.report.html import write_bytes

            path = write_bytes(out, doc.images()[0][1])
        else:
            path = doc.write(out)
        typer.echo(f"wrote {path}")
