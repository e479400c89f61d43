"""The report's pictures, drawn with matplotlib's object API on the Agg canvas, returned as PNG bytes.

No pyplot: figures are plain ``Figure`` objects, so nothing touches a global backend or a display.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from vistrain.report.axes import focus_range
from vistrain.report.rundata import RunData, StageData

TRAIN, VAL, STEP = "tab:blue", "tab:orange", "0.75"


def to_png(fig: Figure, dpi: int = 100) -> bytes:
    """Render *fig* to PNG bytes."""
    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _stage_series(stage: StageData, offset: float) -> dict[str, tuple[list[float], list[float]]]:
    steps = [(offset + b.epoch - 1 + b.step / b.steps_per_epoch, b.loss) for b in stage.steps if b.steps_per_epoch]
    return {
        "step_loss": ([x for x, _ in steps], [y for _, y in steps]),
        "train_loss": ([offset + e.epoch for e in stage.epochs], [e.train_loss for e in stage.epochs]),
        "val_loss": ([offset + e.epoch for e in stage.evals], [e.loss for e in stage.evals]),
        "train_acc": ([offset + e.epoch for e in stage.epochs], [100 * e.train_top1 for e in stage.epochs]),
        "val_acc": ([offset + e.epoch for e in stage.evals], [100 * e.top1 for e in stage.evals]),
    }


def _stage_length(stage: StageData) -> float:
    last = [e.epoch for e in stage.epochs] + [e.epoch for e in stage.evals]
    last += [b.epoch - 1 + b.step / b.steps_per_epoch for b in stage.steps if b.steps_per_epoch]
    return max(last, default=0)


def _merged(stages: Sequence[StageData]) -> tuple[dict[str, tuple[list[float], list[float]]], list[float]]:
    """Every stage's series on one epoch axis (stages end to end), and where each stage starts."""
    offset, starts = 0.0, []
    merged: dict[str, tuple[list[float], list[float]]] = {
        k: ([], []) for k in ("step_loss", "train_loss", "val_loss", "train_acc", "val_acc")}
    for stage in stages:
        starts.append(offset)
        for key, (xs, ys) in _stage_series(stage, offset).items():
            merged[key][0].extend(xs)
            merged[key][1].extend(ys)
        offset += _stage_length(stage)
    return merged, starts


def _finish(ax_loss, ax_acc, acc_series, loss_title: str, acc_title: str) -> None:
    """Accuracy axis fitted to the later epochs (capped at 100 %), labels, grids and legends."""
    ylim = focus_range(acc_series, floor=0.0, cap=100.0)
    if ylim:
        ax_acc.set_ylim(*ylim)
        if min((y for _, ys in acc_series for y in ys if math.isfinite(y)), default=ylim[0]) < ylim[0]:
            acc_title += " (zoomed on the later epochs)"
    ax_loss.set(xlabel="epoch", ylabel="loss", title=loss_title)
    ax_acc.set(xlabel="epoch", ylabel="top-1 %", title=acc_title)
    for ax in (ax_loss, ax_acc):
        lo, hi = ax.get_xlim()
        if hi - lo < 2:  # one or two epochs: widen so the ticks are whole epochs
            ax.set_xlim((lo + hi) / 2 - 1, (lo + hi) / 2 + 1)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8 if len(ax.lines) < 6 else 7)
        else:
            ax.text(0.5, 0.5, "no finished epoch yet", ha="center", va="center", transform=ax.transAxes, color="0.4")


def curves_figure(stages: Sequence[StageData], title: str = "") -> bytes:
    """Loss and accuracy against epochs; several stages follow each other, split by dashed lines."""
    fig = Figure(figsize=(10, 3.6), layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    _, starts = _merged(stages)
    styles = {"step_loss": (ax_loss, "train (steps)", STEP, {"linewidth": 0.8}),
              "train_loss": (ax_loss, "train", TRAIN, {"marker": "."}),
              "val_loss": (ax_loss, "val", VAL, {"marker": "."}),
              "train_acc": (ax_acc, "train", TRAIN, {"marker": "."}),
              "val_acc": (ax_acc, "val", VAL, {"marker": "."})}
    labelled: set[str] = set()
    acc_series = []  # per stage, so the zoom keeps every stage's later epochs in view
    for i, (stage, start) in enumerate(zip(stages, starts)):
        series = _stage_series(stage, start)
        acc_series += [series["train_acc"], series["val_acc"]]
        for key, (xs, ys) in series.items():  # one line per stage: no jump joins two stages
            ax, label, color, kw = styles[key]
            if xs:
                ax.plot(xs, ys, color=color, label=None if key in labelled else label, **kw)
                labelled.add(key)
        if len(stages) > 1:
            for ax in (ax_loss, ax_acc):
                if i:
                    ax.axvline(start + 0.5, color="0.4", linestyle="--", linewidth=0.8)
                ax.annotate(stage.name, (start + 0.5 + _stage_length(stage) / 2, 1), xycoords=("data", "axes fraction"),
                            xytext=(0, -3), textcoords="offset points", ha="center", va="top", fontsize=8, color="0.3")
    _finish(ax_loss, ax_acc, acc_series, "loss", "accuracy")
    if title:
        fig.suptitle(title)
    return to_png(fig)


def confusion_figure(cm: np.ndarray, classes: Sequence[str], title: str = "") -> bytes:
    """Confusion matrix (rows: true class, colour: share of the row), counts written in each cell."""
    n = len(classes)
    side = min(12.0, max(4.5, 0.45 * n + 2))
    fig = Figure(figsize=(side, side * 0.9), layout="constrained")
    ax = fig.subplots()
    rows = cm.sum(axis=1, keepdims=True)
    share = np.divide(cm, rows, out=np.zeros_like(cm, dtype=float), where=rows > 0)
    im = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    fig.colorbar(im, ax=ax, shrink=0.8, label="share of the true class")
    if n <= 30:
        for i in range(n):
            for j in range(n):
                if cm[i, j]:
                    ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=7 if n > 12 else 9,
                            color="white" if share[i, j] > 0.5 else "black")
    ticks = range(n) if n <= 40 else range(0, n, max(1, n // 20))
    ax.set_xticks(list(ticks), [classes[i] for i in ticks], rotation=90 if n > 12 else 0)
    ax.set_yticks(list(ticks), [classes[i] for i in ticks])
    ax.set(xlabel="predicted", ylabel="true", title=title or "confusion matrix")
    return to_png(fig)


def per_class_figure(accuracy: Sequence[float], counts: Sequence[int], classes: Sequence[str], title: str = "") -> bytes:
    """Per-class top-1 as bars, the worst classes stand out in red; the class size under each name."""
    n = len(classes)
    fig = Figure(figsize=(min(14.0, max(5.0, 0.4 * n + 2)), 3.4), layout="constrained")
    ax = fig.subplots()
    acc = 100 * np.asarray(accuracy, dtype=float)
    mean = float(np.mean(acc)) if n else 0.0
    colors = ["tab:red" if a < mean - 2 else "tab:green" for a in acc]
    ax.bar(range(n), acc, color=colors)
    ax.axhline(mean, color="0.3", linestyle="--", linewidth=0.8, label=f"mean {mean:.1f}%")
    ax.set_xticks(range(n), [f"{c}\n({k})" for c, k in zip(classes, counts)] if n <= 20 else list(classes),
                  rotation=0 if n <= 20 else 90, fontsize=8)
    lo = max(0.0, min(acc.min() - 3, mean - 10)) if n else 0.0
    ax.set_ylim(lo, 100.5)
    ax.set(ylabel="top-1 %", title=title or "per-class accuracy (val)")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    return to_png(fig)


def _rgb(img: np.ndarray) -> np.ndarray:
    img = np.asarray(img)
    if img.ndim == 2:
        img = img[..., None]
    return np.repeat(img, 3, axis=2) if img.shape[2] == 1 else img[..., :3]


def image_grid_figure(images: Sequence[np.ndarray], captions: Sequence[str], title: str = "", cols: int = 8) -> bytes:
    """Images in a grid with a caption above each, drawn as one mosaic on one axes (fast for many tiles)."""
    tiles = [_rgb(img) for img in images]
    n = len(tiles)
    cols = max(1, min(cols, n))
    rows = max(1, math.ceil(n / cols))
    h = max((t.shape[0] for t in tiles), default=1)
    w = max((t.shape[1] for t in tiles), default=1)
    gap = max(2, w // 14)
    px = 145 / (w + gap)  # figure pixels per image pixel: each column is 1.45 inches at 100 dpi
    band = math.ceil(28 / px)  # room for two caption lines above each tile
    cell_h, cell_w = band + h + gap, w + gap
    mosaic = np.full((rows * cell_h + gap, cols * cell_w + gap, 3), 255, np.uint8)
    spots = []
    for k, tile in enumerate(tiles):
        y0 = (k // cols) * cell_h + gap + band + (h - tile.shape[0]) // 2
        x0 = (k % cols) * cell_w + gap + (w - tile.shape[1]) // 2
        mosaic[y0:y0 + tile.shape[0], x0:x0 + tile.shape[1]] = tile
        spots.append(((k % cols) * cell_w + gap + w / 2, (k // cols) * cell_h + gap + band - 3 / px))
    head = 0.35 if title else 0.0
    width = 1.45 * cols + 0.2
    fig = Figure(figsize=(width, width * mosaic.shape[0] / mosaic.shape[1] + head))
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0 - head / fig.get_figheight()))
    ax.imshow(mosaic, interpolation="nearest" if h < 100 else "antialiased")
    ax.axis("off")
    for (x, y), caption in zip(spots, captions):
        ax.text(x, y, caption, ha="center", va="bottom", fontsize=7.5, linespacing=1.1)
    if title:
        fig.suptitle(title, y=1.0 - 0.05 / fig.get_figheight(), va="top")
    return to_png(fig)


def round_figure(stats, title: str = "") -> bytes:
    """One pseudo-label round: per-class counts before/after balancing, and the confidence histogram."""
    fig = Figure(figsize=(11, 3.4), layout="constrained")
    ax_counts, ax_hist = fig.subplots(1, 2, width_ratios=[3, 2])
    n = max(len(stats.counts_before), len(stats.counts_after))
    names = stats.class_names or [str(i) for i in range(n)]
    x = np.arange(n)
    if stats.counts_before:
        ax_counts.bar(x - 0.2, stats.counts_before, width=0.4, label="accepted (before balancing)", color="tab:blue")
    if stats.counts_after:
        ax_counts.bar(x + 0.2, stats.counts_after, width=0.4, label="after balancing", color="tab:green")
    ax_counts.set_xticks(x, names[:n], rotation=0 if n <= 12 else 90, fontsize=8)
    ax_counts.set(ylabel="images", title="pseudo labels per class")
    ax_counts.legend(fontsize=8)
    hist = list(stats.confidence_hist)
    if hist:
        edges = np.linspace(0, 1, len(hist) + 1)
        ax_hist.bar(edges[:-1], hist, width=1 / len(hist), align="edge", color="tab:purple", alpha=0.8)
    ax_hist.axvline(stats.threshold, color="tab:red", linestyle="--", label=f"threshold {stats.threshold:.2f}")
    ax_hist.set(xlabel="teacher confidence", ylabel="images", title="confidence histogram", xlim=(0, 1))
    ax_hist.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    return to_png(fig)


def rounds_summary_figure(rounds) -> bytes:
    """Acceptance, flip rate and label accuracy across pseudo-label rounds."""
    fig = Figure(figsize=(6, 3.2), layout="constrained")
    ax = fig.subplots()
    xs = [r.round for r in rounds]
    for attr, label in (("acceptance_rate", "acceptance"), ("flip_rate", "flip rate"),
                        ("accuracy", "label accuracy"), ("mean_confidence", "mean confidence")):
        pts = [(x, 100 * getattr(r, attr)) for x, r in zip(xs, rounds) if getattr(r, attr) is not None]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=label)
    ax.set(xlabel="round", ylabel="%", title="pseudo-label rounds", ylim=(0, 102))
    ax.set_xticks(xs)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return to_png(fig)


def leaderboard_figure(board: Sequence[dict]) -> bytes:
    """Augmentation-search trials ranked by val top-1, best at the top."""
    board = list(board)[:25]
    fig = Figure(figsize=(7, 0.35 * len(board) + 1.2), layout="constrained")
    ax = fig.subplots()
    scores = [100 * float(r["score"]) for r in board]
    labels = [f"#{r['trial']} {r.get('label', '')}" for r in board]
    y = np.arange(len(board))[::-1]
    ax.barh(y, scores, color=["tab:green"] + ["tab:blue"] * (len(board) - 1))
    ax.set_yticks(y, labels, fontsize=8)
    if scores:
        ax.set_xlim(max(0.0, min(scores) - 2), min(100.0, max(scores) + 1))
    ax.set(xlabel="val top-1 %", title="augmentation search leaderboard")
    ax.grid(axis="x", alpha=0.3)
    return to_png(fig)


def overlay_figure(runs: Sequence[RunData]) -> bytes:
    """Several runs' val top-1 and losses on shared axes (stages laid end to end)."""
    fig = Figure(figsize=(11, 3.8), layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    acc_series = []
    for i, run in enumerate(runs):
        color = f"C{i % 10}"
        merged, _ = _merged(run.stages)
        ax_loss.plot(*merged["val_loss"], color=color, marker=".", label=f"{run.name} val")
        ax_loss.plot(*merged["train_loss"], color=color, marker=".", linestyle=":", label=f"{run.name} train")
        ax_acc.plot(*merged["val_acc"], color=color, marker=".", label=f"{run.name} val")
        acc_series.append(merged["val_acc"])
    _finish(ax_loss, ax_acc, acc_series, "loss (solid: val, dotted: train)", "val accuracy")
    return to_png(fig)


def _thresholds_vary(stats) -> bool:
    """Whether any class's threshold differs from tau at some interval (FlexMatch), not only FixMatch's tau."""
    return any(abs(t - s.threshold) > 1e-6 for s in stats for t in s.class_thresholds)


def consistency_figure(stats, title: str = "") -> bytes:
    """A consistency stage over its global steps: mask rate and pseudo-label accuracy (accepted and all); the
    per-class thresholds when they vary (FlexMatch); the accepted pseudo-labels per class over the stage."""
    stats = list(stats)
    varying = _thresholds_vary(stats)
    fig = Figure(figsize=(15 if varying else 11, 3.6), layout="constrained")
    axes = list(fig.subplots(1, 3 if varying else 2, width_ratios=[3, 3, 2] if varying else [3, 2]))
    ax_rates, ax_counts = axes[0], axes[-1]
    steps = [s.global_step for s in stats]
    for attr, label, color in (("mask_rate", "mask rate (passed the threshold)", "tab:purple"),
                               ("accuracy", "accuracy of the accepted", "tab:green"),
                               ("accuracy_all", "accuracy of all", "tab:olive")):
        pts = [(x, 100 * getattr(s, attr)) for x, s in zip(steps, stats) if getattr(s, attr) is not None]
        if pts:
            ax_rates.plot([p[0] for p in pts], [p[1] for p in pts], color=color, label=label,
                          marker="." if len(pts) < 40 else None)
    ax_rates.set(xlabel="step", ylabel="%", title="pseudo labels", ylim=(0, 101))
    ax_rates.grid(alpha=0.3)
    ax_rates.legend(fontsize=8, loc="lower right")
    n = max((max(len(s.class_thresholds), len(s.class_accepted)) for s in stats), default=0)
    names = next((s.class_names for s in reversed(stats) if s.class_names), None) or [str(i) for i in range(n)]
    if varying:
        ax_thr = axes[1]
        rows = [s for s in stats if len(s.class_thresholds) == n]
        xs = [s.global_step for s in rows]
        per_class = np.array([s.class_thresholds for s in rows], dtype=float).reshape(len(rows), n)
        if n <= 10:
            for c in range(n):
                ax_thr.plot(xs, per_class[:, c], color=f"C{c}", linewidth=1.2, label=names[c])
            ax_thr.legend(fontsize=7, ncols=2, loc="lower right")
        else:  # too many classes to tell apart: their range and their mean
            ax_thr.fill_between(xs, per_class.min(axis=1), per_class.max(axis=1), color="tab:red", alpha=0.15,
                                label="lowest to highest class")
            ax_thr.plot(xs, per_class.mean(axis=1), color="tab:red", linewidth=1.5, label="mean of the classes")
            ax_thr.legend(fontsize=8, loc="lower right")
        ax_thr.axhline(stats[-1].threshold, color="0.3", linestyle="--", linewidth=0.8)
        ax_thr.annotate(f"τ {stats[-1].threshold:.2f}", (0, stats[-1].threshold), xycoords=("axes fraction", "data"),
                        xytext=(3, 3), textcoords="offset points", fontsize=8, color="0.3")
        ax_thr.set(xlabel="step", ylabel="threshold", title="per-class thresholds", ylim=(0, 1.02))
        ax_thr.grid(alpha=0.3)
    counts = np.zeros(n, dtype=np.int64)
    for s in stats:
        counts[:len(s.class_accepted)] += np.asarray(s.class_accepted, dtype=np.int64)
    x = np.arange(n)
    mean = counts.mean() if n else 0.0
    ax_counts.bar(x, counts, color=["tab:red" if c < 0.5 * mean else "tab:blue" for c in counts])
    if n:
        ax_counts.axhline(mean, color="0.3", linestyle="--", linewidth=0.8, label=f"mean {mean:,.0f}")
        ax_counts.legend(fontsize=8)
    ticks = range(n) if n <= 40 else range(0, n, max(1, n // 20))
    upright = n <= 12 and sum(len(name) for name in names) <= 36  # else the names run into each other
    ax_counts.set_xticks(list(ticks), [names[i] for i in ticks], rotation=0 if upright else 90, fontsize=8)
    ax_counts.set(ylabel="pseudo-labels", title="accepted per class, whole stage")
    ax_counts.grid(axis="y", alpha=0.3)
    if title:
        fig.suptitle(title)
    return to_png(fig)
