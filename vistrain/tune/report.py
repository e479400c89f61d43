"""``vistrain tune report STUDY``: one self-contained HTML page about a study.

Sections: a summary (budget, counts, sampler, pruner, storage), the optimisation history (every trial's val
top-1 by trial number, pruned trials at their last reported epoch, the best so far as a line), the val top-1
of every trial by epoch (where the pruner cut), parameter importances (Optuna's fANOVA), the trials' table
and the best three trials' configs. Every figure is val top-1: the held-out test split is never read.
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.ticker import MaxNLocator

from vistrain.report.figures import to_png
from vistrain.report.html import Document
from vistrain.tune.summary import StudySummary


def history_figure(summary: StudySummary) -> bytes:
    """Val top-1 per trial number: completed (dots), pruned (crosses, their last epoch), best so far (a line)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 3.6))
    ax = fig.add_subplot(1, 1, 1)
    done = [t for t in summary.shown if t.state == "complete" and t.value is not None]
    pruned = [t for t in summary.shown if t.state == "pruned" and t.steps]
    ax.scatter([t.number for t in done], [100 * t.value for t in done], s=22, label="complete", color="#1f77b4")
    if pruned:
        ax.scatter([t.number for t in pruned], [100 * t.steps[-1] for t in pruned], s=26, marker="x",
                   label="pruned (last epoch)", color="#d62728")
    best, xs, ys = None, [], []
    for t in sorted(done, key=lambda t: t.number):
        best = t.value if best is None else max(best, t.value)
        xs.append(t.number)
        ys.append(100 * best)
    if xs:
        ax.step(xs, ys, where="post", color="#2ca02c", label="best so far")
    ax.set(xlabel="trial", ylabel="val top-1 (%)", title=f"study {summary.name}: optimisation history")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return to_png(fig)


def epochs_figure(summary: StudySummary) -> bytes:
    """Each trial's val top-1 by epoch: where the pruner stopped the ones it pruned."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 3.6))
    ax = fig.add_subplot(1, 1, 1)
    for t in summary.shown:
        if not t.steps:
            continue
        style = {"color": "#d62728", "alpha": 0.6} if t.state == "pruned" else {"color": "#1f77b4", "alpha": 0.5}
        ax.plot(range(1, len(t.steps) + 1), [100 * v for v in t.steps], marker=".", linewidth=1, **style)
    ax.set(xlabel="epoch", ylabel="val top-1 (%)", title="trials by epoch (red: pruned)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return to_png(fig)


def importance_figure(importances: dict[str, float]) -> bytes:
    from matplotlib.figure import Figure

    names = list(importances)[::-1]
    fig = Figure(figsize=(7, 0.5 + 0.35 * len(names)))
    ax = fig.add_subplot(1, 1, 1)
    ax.barh(names, [importances[n] for n in names], color="#1f77b4")
    ax.set(xlabel="importance (fANOVA, share of the val top-1 variance)", title="parameter importances")
    fig.tight_layout()
    return to_png(fig)


def _fmt(value) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def document(summary: StudySummary) -> Document:
    """The report as a :class:`~vistrain.report.html.Document`."""
    s = summary.settings
    doc = Document(f"vistrain tune: {summary.name}", f"study folder {summary.folder}")
    c = summary.counts()
    sec = doc.section("summary", "Summary")
    best = summary.best()
    rows = [["budget (complete or pruned)", s.get("trials", "?")],
            ["complete / pruned / failed / running", f"{c.get('complete', 0)} / {c.get('pruned', 0)} / "
                                                     f"{c.get('fail', 0)} / {c.get('running', 0)}"],
            ["sampler, pruner", f"{s.get('sampler')}, {s.get('pruner')}"],
            ["storage", s.get("storage") or f"{summary.folder / 'study.db'} (SQLite)"],
            ["best trial", f"{best[0].number}: val top-1 {100 * best[0].value:.2f}%" if best else "none yet"]]
    sec.table(["", ""], rows)
    sec.text("Trials are ranked by their val top-1 (the split best.pt is chosen on); the held-out test split is "
             "never used to rank them.", note=True)
    if summary.shown:
        hist = doc.section("history", "Optimisation history")
        hist.image("history.png", history_figure(summary), "val top-1 per trial")
        if any(t.steps for t in summary.shown):
            hist.image("epochs.png", epochs_figure(summary), "val top-1 per epoch of every trial")
    if summary.importances:
        imp = doc.section("importances", "Parameter importances")
        imp.image("importances.png", importance_figure(summary.importances), "parameter importances")
        imp.table(["parameter", "importance"], [[k, round(v, 4)] for k, v in summary.importances.items()])
    keys = sorted({k for t in summary.shown for k in t.params})
    table = doc.section("trials", "Trials")
    table.table(["trial", "state", "val top-1", "epochs", "time"] + keys,
                [[t.number, t.outcome, f"{100 * t.value:.2f}%" if t.value is not None else "-", len(t.steps),
                  f"{t.duration_s:.1f} s" if t.duration_s is not None else "-"]
                 + [_fmt(t.params.get(k, "")) for k in keys] for t in summary.shown])
    if best:
        cfg = doc.section("best-configs", "Best trials' configs")
        for t in summary.best(3):
            sub = cfg.sub(f"Trial {t.number}: val top-1 {100 * t.value:.2f}%", id=f"best-{t.number}")
            path = Path(t.run_dir) / "config.yaml"
            sub.text(f"Run folder {t.run_dir}: 'vistrain report {t.run_dir}' shows it in full.", note=True)
            sub.pre(path.read_text(encoding="utf-8") if path.exists() else f"({path} is missing)")
    return doc


def write_report(summary: StudySummary, path: str | Path) -> Path:
    """Write the study's report to *path*."""
    return document(summary).write(Path(path))
