"""``vistrain compare``: several runs side by side: final and best metrics, time, throughput, config differences."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vistrain.report.rundata import RunData, load_run

IGNORED_KEYS = ("output.name", "output.dir")  # differ between any two runs and say nothing about them
HEADER = ["run", "status", "strategy", "model", "epochs", "final val top-1", "highest val top-1", "final val loss",
          "test top-1", "test balanced top-1", "test macro-F1", "wall", "samples/s"]


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    """Nested dicts as dotted keys: ``{"optim": {"lr": 1}}`` → ``{"optim.lr": 1}``."""
    if not isinstance(data, dict):
        return {prefix: data}
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            out.update(flatten(value, name))
        else:
            out[name] = value
    return out


def differing_keys(configs: Sequence[dict[str, Any]]) -> list[tuple[str, list[Any]]]:
    """Config keys whose values are not the same in every run (a missing key counts as different)."""
    flat = [flatten(c) for c in configs]
    keys = sorted({k for f in flat for k in f} - set(IGNORED_KEYS))
    missing = object()
    diffs = []
    for key in keys:
        values = [f.get(key, missing) for f in flat]
        if any(v != values[0] for v in values[1:]):
            diffs.append((key, ["(unset)" if v is missing else v for v in values]))
    return diffs


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.2f}%"


def run_row(run: RunData) -> list[str]:
    """One table row for *run*."""
    final, best = run.final_eval(), run.best_eval()
    sps = run.samples_per_s()
    strategy = run.started.strategy if run.started else (run.config.get("strategy") or {}).get("name", "?")
    model = run.started.model if run.started else (run.config.get("model") or {}).get("name", "?")
    best_text = f"{_pct(best.top1)} (ep {best.epoch})" if best else "n/a"
    test = run.tests[-1] if run.tests else None
    return [run.name, run.status, strategy, model, str(sum(len(s.epochs) for s in run.stages)), _pct(final.top1 if final else None),
            best_text, f"{final.loss:.4f}" if final else "n/a", _pct(test.top1 if test else None),
            _pct(test.balanced_top1 if test else None), _pct(test.macro_f1 if test else None),
            f"{run.wall_s:.1f} s" if run.wall_s is not None else "n/a", f"{sps:.0f}" if sps else "n/a"]


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain aligned text table (no colours, safe for pipes and logs)."""
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(header)]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(header, widths)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(str(v).ljust(w) for v, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join(lines)


@dataclass
class Comparison:
    """Runs, their table rows and the config keys that differ."""

    runs: list[RunData]
    rows: list[list[str]]
    diffs: list[tuple[str, list[Any]]]

    def text(self) -> str:
        """The table, then the differing config keys, as plain text."""
        out = [format_table(HEADER, self.rows), ""]
        if self.diffs:
            out.append(format_table(["config key"] + [r.name for r in self.runs],
                                    [[k] + [str(v) for v in vals] for k, vals in self.diffs]))
        else:
            out.append("the runs' configs are the same (apart from output.name/dir)")
        return "\n".join(out)

    def document(self):
        """The comparison as an HTML :class:`~vistrain.report.html.Document` with the overlay picture."""
        from vistrain.report.figures import overlay_figure
        from vistrain.report.html import Document

        doc = Document("vistrain compare: " + ", ".join(r.name for r in self.runs))
        doc.section("table", "Runs").table(HEADER, self.rows)
        sec = doc.section("config-diff", "Config keys that differ")
        if self.diffs:
            sec.table(["config key"] + [r.name for r in self.runs], [[k] + [str(v) for v in vals] for k, vals in self.diffs])
        else:
            sec.text("The runs' configs are the same (apart from output.name/dir).")
        doc.section("curves", "Curves").image("compare.png", overlay_figure(self.runs), "overlaid curves")
        return doc


def compare_runs(paths: Sequence[str | Path]) -> Comparison:
    """Read each run folder and compare them."""
    runs = [load_run(p) for p in paths]
    return Comparison(runs, [run_row(r) for r in runs], differing_keys([r.config for r in runs]))
