"""A light braille line plot: braille rasterisation into one rich Text, with no NumPy to import."""

from __future__ import annotations

import math
from collections.abc import Sequence

from rich.text import Text
from textual.widget import Widget

from vistrain.report.axes import focus_range

# bit of each dot in a braille cell, indexed [row % 4][column % 2]
_DOT_BITS = ((0x01, 0x08), (0x02, 0x10), (0x04, 0x20), (0x40, 0x80))
Y_LABEL_WIDTH = 8


def _fmt(v: float) -> str:
    return f"{v:.3g}" if abs(v) < 1e4 else f"{v:.1e}"


def rasterise(series: Sequence[tuple[Sequence[float], Sequence[float]]], cols: int, rows: int,
              x_range: tuple[float, float], y_range: tuple[float, float]) -> tuple[list[list[int]], list[list[int]]]:
    """Braille bits [row][col] and the index+1 of the last series drawn in each cell (0 = empty).

    Plain Python rather than NumPy: importing NumPy costs the dashboard process a quarter of a
    second of CPU at start-up (and starts BLAS threads), taken from the training it shares the
    machine with; at the dashboard's sizes this loop is as fast.
    """
    w, h = cols * 2, rows * 4
    bits = [[0] * cols for _ in range(rows)]
    owner = [[0] * cols for _ in range(rows)]
    x0, x1 = x_range
    y0, y1 = y_range
    sx, sy = (w - 1) / (x1 - x0), (h - 1) / (y1 - y0)
    for k, (xs, ys) in enumerate(series, start=1):
        pixels = (((float(x) - x0) * sx, (h - 1) - (float(y) - y0) * sy) for x, y in zip(xs, ys))
        points = [(px, py) for px, py in pixels if math.isfinite(px) and math.isfinite(py)]
        if not points:
            continue
        dots = set()
        add = dots.add
        ax, ay = points[0]
        for bx, by in points[1:]:  # join consecutive points with enough samples to leave no gaps
            dx, dy = bx - ax, by - ay
            n = max(math.ceil(max(abs(dx), abs(dy))), 1)
            for i in range(n):
                add((round(ax + i / n * dx), round(ay + i / n * dy)))
            ax, ay = bx, by
        add((round(ax), round(ay)))
        w_max, h_max = w - 1, h - 1
        for xi, yi in dots:
            xi = 0 if xi < 0 else (w_max if xi > w_max else xi)
            yi = 0 if yi < 0 else (h_max if yi > h_max else yi)
            bits[yi >> 2][xi >> 1] |= _DOT_BITS[yi & 3][xi & 1]
            owner[yi >> 2][xi >> 1] = k
    return bits, owner


class LinePlot(Widget):
    """Several (x, y) series as coloured braille lines, with a legend, y range and x range."""

    DEFAULT_CSS = "LinePlot { width: 1fr; height: 1fr; }"

    def __init__(self, title: str = "", *, follow: bool = False, floor: float | None = None, cap: float | None = None,
                 **kwargs) -> None:
        """*follow*: fit the y axis to the later half of the x span, so early outliers such as the first
        epoch's accuracy don't flatten the part that matters. The axis stays within *floor*..*cap*."""
        super().__init__(**kwargs)
        self.title = title
        self.follow, self.floor, self.cap = follow, floor, cap
        self.series: list[tuple[str, Sequence[float], Sequence[float], str]] = []

    def y_range(self, drawn: Sequence[tuple[Sequence[float], Sequence[float]]]) -> tuple[float, float]:
        """The y range to draw: the data's span plus 5 %, or the later points' span when following."""
        if self.follow:
            fitted = focus_range(drawn, floor=self.floor, cap=self.cap)
            if fitted is not None:
                return fitted
        all_y = [v for _, ys in drawn for v in ys if math.isfinite(v)]
        lo, hi = min(all_y), max(all_y)
        pad = (hi - lo) * 0.05 or max(abs(hi) * 0.05, 1e-3)
        # non-negative data (losses, accuracies) keeps a floor of 0 rather than a negative label
        lo, hi = (max(0.0, lo - pad) if lo >= 0 else lo - pad), hi + pad
        return (lo if self.floor is None else max(self.floor, lo), hi if self.cap is None else min(self.cap, hi))

    def set_series(self, series: list[tuple[str, Sequence[float], Sequence[float], str]]) -> None:
        """Replace the plotted series: (label, xs, ys, colour) each; redraws."""
        self.series = series
        self.refresh()

    def head(self, width: int) -> Text:
        """Title and legend (``━label value`` per series) in *width* cells, each shown whole or not at all (a cut
        value would read as another number): the title gives way first, then the last entries."""
        entries = [(f" ━{label} {_fmt(ys[-1])}", color) for label, xs, ys, color in self.series if len(ys)]
        fits = len(self.title) + sum(len(text) for text, _ in entries) <= width
        head = Text(self.title if fits else "", style="bold")
        for text, color in entries:
            text = text if len(head) else text.lstrip()
            if len(head) + len(text) > width:
                break
            head.append(text, style=color)
        return head

    def render(self) -> Text:
        """Title and legend, then the plot with y labels, then the x range."""
        width, height = self.size.width, self.size.height
        head = self.head(width)
        cols, rows = width - Y_LABEL_WIDTH, height - 2
        drawn = [(xs, ys) for _, xs, ys, _ in self.series]
        all_x = [v for xs, _ in drawn for v in xs]
        all_y = [v for _, ys in drawn for v in ys if math.isfinite(v)]
        if cols < 4 or rows < 1 or not all_x or not all_y:
            head.truncate(max(width, 1))
            return Text("\n").join([head, Text("waiting for data…", style="dim")])
        x_range = (min(all_x), max(all_x)) if max(all_x) > min(all_x) else (min(all_x) - 1, min(all_x) + 1)
        y_range = self.y_range(drawn)
        if self.follow:  # points below the fitted range are left out rather than piled on the bottom row
            drawn = [(xs, [y if y >= y_range[0] else float("nan") for y in ys]) for xs, ys in drawn]
        bits, owner = rasterise(drawn, cols, rows, x_range, y_range)
        colors = [color for *_, color in self.series]
        lines = [head]
        for r in range(rows):
            label = _fmt(y_range[1]) if r == 0 else (_fmt(y_range[0]) if r == rows - 1 else "")
            line = Text(f"{label:>{Y_LABEL_WIDTH - 1}} ", style="dim")
            chars = "".join(chr(0x2800 + b) for b in bits[r])
            row_owner = owner[r]
            start = 0
            for c in range(1, cols + 1):  # one span per run of cells owned by the same series
                if c == cols or row_owner[c] != row_owner[start]:
                    k = row_owner[start]
                    line.append(chars[start:c], style=colors[k - 1] if k else "")
                    start = c
            lines.append(line)
        x_axis = Text(" " * Y_LABEL_WIDTH + f"{_fmt(x_range[0])}", style="dim")
        right = _fmt(x_range[1])
        x_axis.append(" " * max(1, width - len(x_axis) - len(right)) + right, style="dim")
        for line in lines:
            line.truncate(width)
        return Text("\n").join(lines + [x_axis])
