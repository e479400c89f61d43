"""Calibration: whether a model's confidences can be trusted, and temperature scaling to make them so.

Expected calibration error (Guo et al. 2017): the images are put in 15 equal-width bins by their top
confidence; ECE is the average over bins of |accuracy − mean confidence|, weighted by the share of
images in the bin. Temperature scaling divides the logits by one scalar T > 0 fitted to minimise the
negative log-likelihood on the val split (never the test split); top-1 is unchanged. A checkpoint's
fitted T (``vistrain calibrate``) is stored in it and used by ``predict``, ``eval`` and teachers
that label pseudo-labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

BINS = 15


@dataclass
class Reliability:
    """Per-bin counts, accuracy and mean confidence, and the ECE they give."""

    edges: np.ndarray  # BINS + 1 bin edges on [0, 1]
    counts: np.ndarray
    accuracy: np.ndarray  # nan for empty bins
    confidence: np.ndarray
    ece: float


def reliability(probs: np.ndarray | torch.Tensor, labels: np.ndarray | torch.Tensor, bins: int = BINS) -> Reliability:
    """The reliability table of softmax outputs *probs* (N, C) against *labels* (N,)."""
    p = np.asarray(probs, dtype=np.float64)
    y = np.asarray(labels)
    conf, pred = p.max(axis=1), p.argmax(axis=1)
    correct = (pred == y).astype(np.float64)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)  # (lo, hi] bins, 0 in the first
    counts = np.bincount(which, minlength=bins).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        acc = np.bincount(which, weights=correct, minlength=bins) / counts
        mean_conf = np.bincount(which, weights=conf, minlength=bins) / counts
    filled = counts > 0
    ece = float((counts[filled] / max(1, len(y)) * np.abs(acc[filled] - mean_conf[filled])).sum())
    return Reliability(edges, counts, acc, mean_conf, ece)


def expected_calibration_error(probs, labels, bins: int = BINS) -> float:
    """ECE of *probs* against *labels* (see the module)."""
    return reliability(probs, labels, bins).ece


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, max_iter: int = 100) -> float:
    """The T > 0 minimising the NLL of softmax(logits / T): L-BFGS on log T, as Guo et al.'s reference code."""
    logits, labels = logits.detach().float(), labels.detach().long()
    log_t = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.detach().exp())


def reliability_png(table: Reliability, path: Path, title: str = "") -> None:
    """Write :func:`reliability_figure` to *path*."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(reliability_figure(table, title))


def reliability_figure(table: Reliability, title: str = "") -> bytes:
    """A reliability diagram as PNG bytes: accuracy per confidence bin against the diagonal, with the ECE."""
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.2, 4.2), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    centres = (table.edges[:-1] + table.edges[1:]) / 2
    width = table.edges[1] - table.edges[0]
    filled = table.counts > 0
    acc, conf = table.accuracy[filled], table.confidence[filled]
    ax.bar(centres[filled], acc, width=width * 0.95, color="#4c72b0", label="accuracy")
    ax.bar(centres[filled], np.abs(conf - acc), bottom=np.minimum(acc, conf), width=width * 0.95, color="none",
           edgecolor="#c44e52", hatch="///", linewidth=0.8, label="gap to mean confidence")
    ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (top class)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"{title}{' - ' if title else ''}ECE {100 * table.ece:.2f} %", fontsize=10)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
